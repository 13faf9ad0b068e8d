"""The ``local`` and ``external`` backends, for real: the reference shop's apps and a toxiproxy-server
as plain processes (``LocalStack``), and an ``ExternalStack`` pointed at those endpoints, which
starts and removes nothing. Scenario A and B shapes give the docker backend's verdicts
(tests/acceptance: A passes, B fails on isolation) through the external backend."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pytest_peakchaos import cpu, latency
from pytest_peakchaos.experiment import Experiment
from pytest_peakchaos.stack import load_stack_file, make_stack
from pytest_peakchaos.stack.base import StackError
from pytest_peakchaos.stack.external import ExternalStack, load_external
from pytest_peakchaos.stack.local import LocalSpec, LocalStack, load_local

from .toxiproxy_local import find_toxiproxy_server
from ..conftest import AB_CHECKS, unavailable

ROOT = Path(__file__).resolve().parents[2]
LOCAL_SHOP = ROOT / "compose" / "shop.local.yml"
#: the naive shop as in tests/acceptance (legacy ~75 requests/s)
NAIVE = {"cloud": {"MODE": "naive"}, "legacy": {"WORKERS": "2", "WORK_MS": "4", "IO_MS": "20"}}
NAIVE_LEGACY_ACTIONS = frozenset({"view_product", "add_to_cart", "remove_from_cart", "checkout"})
#: scenario A/B shapes, shortened: double11 at 3/4 of its rates, legacy slow in the middle
AB = {"profile": "double11", "duration": "24s", "scale": 0.75}
AB_FAULTS = [latency(ms=800, jitter=200, start="6s", length="10s")]


def _with_env(spec: LocalSpec, overrides: dict[str, dict[str, str]]) -> LocalSpec:
    services = {
        name: dataclasses.replace(svc, environment={**svc.environment, **overrides.get(name, {})})
        for name, svc in spec.services.items()
    }
    return dataclasses.replace(spec, services=services)


@pytest.fixture(scope="module", autouse=True)
def _toxiproxy_binary() -> Iterator[None]:
    binary = find_toxiproxy_server()
    if binary is None:
        unavailable("no toxiproxy-server binary: run the project setup (it installs .state/bin/toxiproxy-server)")
    old = os.environ.get("PEAKCHAOS_TOXIPROXY_SERVER")
    os.environ["PEAKCHAOS_TOXIPROXY_SERVER"] = str(binary)
    yield
    if old is None:
        os.environ.pop("PEAKCHAOS_TOXIPROXY_SERVER", None)
    else:
        os.environ["PEAKCHAOS_TOXIPROXY_SERVER"] = old


def _external_file(tmp: Path, local: LocalStack, proxy: str = "legacy") -> Path:
    doc = {
        "kind": "external",
        "name": "staging-like",
        "services": {"cloud": local.url("cloud"), "legacy": local.url("legacy")},
        "toxiproxy": local.toxiproxy.api_url,
        "links": {"legacy": {"proxy": proxy, "client": "cloud", "service": "legacy"}},
        "ledger": {"service": "legacy", "path": "/orders"},
    }
    path = tmp / "external.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(stack: ExternalStack, **kwargs: object):  # type: ignore[no-untyped-def]
    result = Experiment(stack, seed=20261201).run(**AB, faults=AB_FAULTS, checks=AB_CHECKS, request_timeout="3s", settle="5s", **kwargs)  # type: ignore[arg-type]
    print(result.summary())
    return result


def test_external_backend_verdicts_match_the_docker_backends(tmp_path: Path) -> None:
    """A (resilient) passes and B (naive) fails on isolation through an external stack; the external
    stack started nothing and leaves the endpoints running, with no toxic left on the proxy."""
    for mode, overrides in (("resilient", {}), ("naive", NAIVE)):
        local = LocalStack(_with_env(load_local(LOCAL_SHOP), overrides))
        local.start()
        try:
            procs_before = {n: p.pid for n, p in local.processes().items()}
            ext = make_stack(load_stack_file(_external_file(tmp_path, local)))
            assert isinstance(ext, ExternalStack)
            with ext:
                if mode == "resilient":
                    result = _run(ext)
                    result.assert_graceful()
                    assert [e["action"] for e in result.fault_events] == ["apply", "revert"]
                else:
                    result = _run(ext, legacy_actions=NAIVE_LEGACY_ACTIONS)
                    assert not result.passed
                    assert not result.check("isolation", "fault").passed, result.table()
                with pytest.raises(ValueError, match="need the docker backend"):
                    ext.link().activate(cpu(0.1))
            # nothing was stopped or removed, and what the run applied is gone
            assert {n: p.pid for n, p in local.processes().items()} == procs_before
            assert all(p.poll() is None for p in local.processes().values())
            assert local.toxiproxy.proxy("legacy").toxics() == []
        finally:
            local.stop()
        assert local.processes() == {}


def test_external_stack_bad_input_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({
        "kind": "external", "services": {"cloud": "http://10.1.2.3:80", "x": "ftp://h"},
        "toxiproxy": "http://127.0.0.1:8474", "links": {"legacy": {"client": "nope", "port": 1}},
        "ledgr": {},
    }))
    with pytest.raises(StackError) as info:
        load_external(bad)
    text = str(info.value)
    assert str(bad) in text and "problem(s)" in text
    for part in ("services.cloud", "not a loopback address", "services.x", "http:// or https://",
                 "links.legacy.port: unknown key", "links.legacy.client", "one of: cloud, x",
                 "(top level).ledgr: unknown key", "valid keys: kind, name, services"):
        assert part in text, text


def test_external_stack_without_such_proxy_is_a_clear_error(tmp_path: Path) -> None:
    local = LocalStack(load_local(LOCAL_SHOP))
    local.start()
    try:
        ext = ExternalStack(load_external(_external_file(tmp_path, local, proxy="no-such-proxy")))
        with pytest.raises(StackError, match=r"has no proxy 'no-such-proxy'; its proxies: legacy"):
            ext.start()
    finally:
        local.stop()


def test_local_stack_file_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "local.yml"
    bad.write_text(yaml.safe_dump({
        "kind": "local",
        "services": {"a": {"command": "python app.py", "environment": {"X": "{link:nope}"}, "health": "x"}},
        "links": {"l": {"service": "a", "client": "b"}},
    }))
    with pytest.raises(StackError) as info:
        load_local(bad)
    text = str(info.value)
    for part in ("services.a.command: expected a list of arguments", "services.a.health", "links.l.client",
                 "{link:nope} names no link; valid: l"):
        assert part in text, text
