"""Bad input is refused before anything starts: a table of options, ini values, markers, run()
arguments, profiles, faults and compose files.

Each case runs pytest in-process (pytester) on a little project whose compose file is valid unless
the case says otherwise, and asserts: the run fails (usage error, or the test fails for a run()
argument), the message names the argument and what is valid, and the engine saw no container of
the project created (its events, by the project's label).
"""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_peakchaos.stack import labels

from .test_lifecycle import tiny_compose

pytestmark = pytest.mark.docker

PROJECT = "pcbadinput"
COMPOSE = tiny_compose().replace("name: tiny", f"name: {PROJECT}")


@dataclass(frozen=True)
class Bad:
    id: str
    args: tuple[str, ...] = ()  # command line
    ini: str = ""  # extra ini lines
    test: str = ""  # body of the test file
    files: tuple[tuple[str, str], ...] = ()  # (name, text) written next to it
    compose: str | None = None  # replaces the valid compose file
    expect: tuple[str, ...] = ()  # every one must be in the output


def marker(kw: str) -> str:
    return f"import pytest\nfrom pytest_peakchaos import latency, down\n@pytest.mark.peakchaos({kw})\ndef test_m():\n    pass\n"


def run(kw: str) -> str:
    return f"from pytest_peakchaos import latency, down, cpu\ndef test_r(peakchaos):\n    peakchaos.run({kw})\n"


PROFILE_BASE = "base: normal\n"
CASES = [
    # ---- options
    Bad("opt-scale-abc", ("--peakchaos-scale=abc",), expect=("--peakchaos-scale", "'abc'", "greater than 0")),
    Bad("opt-scale-0", ("--peakchaos-scale=0",), expect=("--peakchaos-scale", "greater than 0")),
    Bad("opt-scale-neg", ("--peakchaos-scale=-1",), expect=("--peakchaos-scale", "greater than 0")),
    Bad("opt-scale-inf", ("--peakchaos-scale=inf",), expect=("--peakchaos-scale", "greater than 0")),
    Bad("opt-seed-abc", ("--peakchaos-seed=abc",), expect=("--peakchaos-seed", "whole number")),
    Bad("opt-seed-float", ("--peakchaos-seed=1.5",), expect=("--peakchaos-seed", "whole number")),
    Bad("opt-seed-neg", ("--peakchaos-seed=-3",), expect=("--peakchaos-seed", "whole number >= 0")),
    Bad("opt-timeout-0", ("--peakchaos-startup-timeout=0",), expect=("--peakchaos-startup-timeout", "greater than 0")),
    Bad("opt-timeout-abc", ("--peakchaos-startup-timeout=soon",), expect=("--peakchaos-startup-timeout", "'soon'")),
    Bad("opt-timeout-neg", ("--peakchaos-startup-timeout=-5s",), expect=("--peakchaos-startup-timeout",)),
    Bad("opt-report-file", ("--peakchaos-report=stack.yml",), expect=("--peakchaos-report", "is a file", "expected a folder")),
    Bad("opt-report-under-file", ("--peakchaos-report=stack.yml/sub",), expect=("--peakchaos-report", "has a file in its path")),
    Bad("opt-image-space", ("--peakchaos-toxiproxy-image=a b",), expect=("--peakchaos-toxiproxy-image", "without spaces")),
    Bad("opt-stack-missing", ("--peakchaos-stack=nope.yml",), expect=("nope.yml",)),
    # ---- ini
    Bad("ini-keep-maybe", ini="peakchaos_keep = maybe", expect=("peakchaos_keep", "'maybe'", "true, yes")),
    Bad("ini-keep-2", ini="peakchaos_keep = 2", expect=("peakchaos_keep", "true, yes")),
    Bad("ini-scale-abc", ini="peakchaos_scale = abc", expect=("peakchaos_scale", "greater than 0")),
    Bad("ini-scale-0", ini="peakchaos_scale = 0", expect=("peakchaos_scale", "greater than 0")),
    Bad("ini-seed-x", ini="peakchaos_seed = x", expect=("peakchaos_seed", "whole number")),
    Bad("ini-timeout-0", ini="peakchaos_startup_timeout = 0s", expect=("peakchaos_startup_timeout", "greater than 0")),
    Bad("ini-timeout-unit", ini="peakchaos_startup_timeout = 3 fortnights", expect=("peakchaos_startup_timeout",)),
    Bad("ini-report-file", ini="peakchaos_report = stack.yml", expect=("peakchaos_report", "is a file")),
    Bad("ini-image-space", ini="peakchaos_toxiproxy_image = x y", expect=("peakchaos_toxiproxy_image", "without spaces")),
    # ---- markers (at collection)
    Bad("mk-positional", test=marker("'double11'"), expect=("test_m", "keyword arguments only", "valid keywords")),
    Bad("mk-unknown", test=marker("durration='5s'"), expect=("test_m", "durration", "valid keywords")),
    Bad("mk-duration-0", test=marker("duration=0"), expect=("test_m", "duration", "> 0")),
    Bad("mk-duration-abc", test=marker("duration='abc'"), expect=("test_m", "duration")),
    Bad("mk-duration-list", test=marker("duration=[5]"), expect=("test_m", "duration", "30s")),
    Bad("mk-scale-abc", test=marker("scale='abc'"), expect=("test_m", "scale", "> 0")),
    Bad("mk-scale-0", test=marker("scale=0"), expect=("test_m", "scale", "> 0")),
    Bad("mk-seed-str", test=marker("seed='x'"), expect=("test_m", "seed", "whole number")),
    Bad("mk-checks-unknown", test=marker("checks={'nope': 1}"), expect=("test_m", "checks")),
    Bad("mk-checks-list", test=marker("checks=[1]"), expect=("test_m", "checks", "dict of overrides")),
    Bad("mk-workers-0", test=marker("workers=0"), expect=("test_m", "workers", ">= 1")),
    Bad("mk-legacy-unknown", test=marker("legacy_actions=['fly']"), expect=("test_m", "legacy_actions", "valid values")),
    Bad("mk-link-int", test=marker("link=3"), expect=("test_m", "link", "name of a link")),
    Bad("mk-timeout-0", test=marker("request_timeout=0"), expect=("test_m", "request_timeout", "> 0")),
    # ---- profiles (named in markers: loaded at collection; in run(): before the stack)
    Bad("pf-unknown-name", test=marker("profile='blackfriday'"), expect=("test_m", "blackfriday", "double11, normal")),
    Bad("pf-missing-file", test=marker("profile='nope.yml'"), expect=("test_m", "nope.yml", "double11, normal")),
    Bad("pf-syntax", test=marker("profile='p.yml'"), files=(("p.yml", "arrival: [\n"),), expect=("test_m", "p.yml", "not valid YAML")),
    Bad("pf-unknown-key", test=marker("profile='p.yml'"), files=(("p.yml", PROFILE_BASE + "bogus: 1\n"),), expect=("bogus", "valid keys")),
    Bad("pf-shape", test=marker("profile='p.yml'"), files=(("p.yml", PROFILE_BASE + "arrival: {shape: zigzag, rate: 1, duration: 10s}\n"),), expect=("zigzag", "valid values")),
    Bad("pf-rate", test=marker("profile='p.yml'"), files=(("p.yml", PROFILE_BASE + "arrival: {shape: constant, rate: -5, duration: 10s}\n"),), expect=("rate", ">= 0")),
    Bad("pf-patience", test=marker("profile='p.yml'"), files=(("p.yml", PROFILE_BASE + "patience: {wait: -1s}\n"),), expect=("patience.wait",)),
    Bad("pf-transition", test=marker("profile='p.yml'"), files=(("p.yml", PROFILE_BASE + "behaviour: {transitions: {entry: {home: 2.0}}}\n"),), expect=("transitions.entry.home", "<= 1")),
    Bad("pf-bindings", test=marker("profile='p.yml'"), files=(("p.yml", PROFILE_BASE + "bindings: nosuchshop\n"),), expect=("nosuchshop", "reference_shop")),
    Bad("pf-base", test=marker("profile='p.yml'"), files=(("p.yml", "base: nosuchbase\n"),), expect=("nosuchbase", "double11, normal")),
    Bad("pf-type", test=run("profile=3, duration='5s'"), expect=("profile", "built-in name")),
    Bad("pf-run-name", test=run("profile='blackfriday', duration='5s'"), expect=("blackfriday", "double11, normal")),
    # ---- faults
    Bad("ft-string", test=run("duration='5s', faults='latency'"), expect=("faults", "list of faults")),
    Bad("ft-single", test=run("duration='5s', faults=latency(ms=100)"), expect=("faults", "wrap the single fault in a list")),
    Bad("ft-not-fault", test=run("duration='5s', faults=[1]"), expect=("faults[0]", "latency(), down()")),
    Bad("ft-dict", test=run("duration='5s', faults={'latency': 100}"), expect=("faults", "list of faults")),
    Bad("ft-beyond", test=run("duration='5s', faults=[latency(ms=100, start='4s', length='5s')]"), expect=("faults",)),
    Bad("ft-latency-neg", test=run("duration='5s', faults=[latency(ms=-1)]"), expect=("ms",)),
    Bad("ft-jitter", test=run("duration='5s', faults=[latency(ms=10, jitter=50)]"), expect=("jitter",)),
    Bad("ft-cpu-0", test=run("duration='5s', faults=[cpu(0)]"), expect=("cpu",)),
    Bad("mk-faults-string", test=marker("duration='5s', faults='down'"), expect=("test_m", "faults", "list of faults")),
    # ---- run() arguments (checked in the fixture before the stack starts)
    Bad("run-scale-abc", test=run("duration='5s', scale='abc'"), expect=("scale", "> 0", "'abc'")),
    Bad("run-scale-0", test=run("duration='5s', scale=0"), expect=("scale", "> 0")),
    Bad("run-scale-neg", test=run("duration='5s', scale=-1"), expect=("scale", "> 0")),
    Bad("run-duration-0", test=run("duration=0"), expect=("duration", "> 0")),
    Bad("run-duration-neg", test=run("duration='-5s'"), expect=("duration",)),
    Bad("run-duration-abc", test=run("duration='soon'"), expect=("duration", "soon")),
    Bad("run-seed-float", test=run("duration='5s', seed=1.5"), expect=("seed", "whole number")),
    Bad("run-unknown", test=run("duration='5s', scael=2"), expect=("scael", "valid arguments")),
    Bad("run-max-req-0", test=run("duration='5s', max_requests=0"), expect=("max_requests", ">= 1")),
    Bad("run-cap-str", test=run("duration='5s', concurrency_cap='many'"), expect=("concurrency_cap", "whole number")),
    Bad("run-timeout-0", test=run("duration='5s', request_timeout=0"), expect=("request_timeout", "> 0")),
    Bad("run-settle-neg", test=run("duration='5s', settle=-1"), expect=("settle", "zero or positive")),
    Bad("run-legacy-str", test=run("duration='5s', legacy_actions='checkout'"), expect=("legacy_actions", "list of action names")),
    Bad("run-workers-0", test=run("duration='5s', workers=0"), expect=("workers", ">= 1")),
    Bad("run-checks-bad", test=run("duration='5s', checks='strict'"), expect=("checks", "dict of overrides")),
    # ---- compose (at configure)
    Bad("cp-yaml", compose="services: [\n", expect=("stack.yml",)),
    Bad("cp-no-services", compose="name: x\n", expect=("stack.yml", "services")),
    Bad("cp-link-service", compose=COMPOSE.replace("{service: backend,", "{service: nosuch,"), expect=("stack.yml", "nosuch")),
    Bad("cp-link-client", compose=COMPOSE.replace("client: front,", "client: nosuch,"), expect=("stack.yml", "nosuch")),
    Bad("cp-link-env", compose=COMPOSE.replace("env: BACKEND}", "env: NOPE}"), expect=("stack.yml", "NOPE")),
]


def _texts(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


TABLE_START = time.time()


def _created(client: Any, since: float) -> list[str]:
    """Containers of the project created since ``since`` (events up to now: answers at once)."""
    events = client.events(
        since=int(since) - 1, until=int(time.time()), decode=True,
        filters={"type": "container", "event": "create", "label": f"{labels.PROJECT}={PROJECT}"},
    )
    return [str(e.get("Actor", {}).get("Attributes", {}).get("name", "?")) for e in events]


#: the default run takes every fourth case (every kind is among them; ~1 s a case on a busy
#: 2-core machine); the whole table runs with -m slow / PEAKCHAOS_SLOW=1
PARAMS = [pytest.param(c, id=c.id, marks=() if i % 4 == 0 else pytest.mark.slow) for i, c in enumerate(CASES)]


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_is_refused_before_anything_starts(case: Bad, pytester: pytest.Pytester, docker_engine: Any) -> None:
    pytester.path.joinpath("stack.yml").write_text(case.compose if case.compose is not None else COMPOSE)
    pytester.makeini("[pytest]\npeakchaos_stack = stack.yml\n" + case.ini + "\n")
    for name, text in case.files:
        pytester.path.joinpath(name).write_text(text)
    pytester.makepyfile(test_bad=case.test or "def test_nothing():\n    pass\n")
    since = time.time()
    # in-process and without the heavy third-party plugins: ~0.3 s a case
    result = pytester.runpytest_inprocess(
        "-p", "peakchaos", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:locust", *case.args
    )
    text = _texts(result)
    assert result.ret != 0, text
    missing = [e for e in case.expect if e not in text]
    assert not missing, f"message lacks {missing}:\n{text}"
    assert "stack" not in text.split("[peakchaos]", 1)[-1][:40] or "up in" not in text, text
    assert _created(docker_engine, since) == [], "a container was created"
    assert docker_engine.containers.list(all=True, filters={"label": f"{labels.PROJECT}={PROJECT}"}) == []


def test_no_container_of_the_table_was_ever_created(docker_engine: Any) -> None:
    """After the table (runs last in this file): the engine's events since the table began."""
    time.sleep(1.1)  # events are asked for up to a whole second
    assert _created(docker_engine, TABLE_START) == []


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 60
    kinds = {c.id.split("-")[0] for c in CASES}
    assert {"opt", "ini", "mk", "pf", "ft", "run", "cp"} <= kinds
    assert {c.id.split("-")[0] for c in CASES[::4]} == kinds
