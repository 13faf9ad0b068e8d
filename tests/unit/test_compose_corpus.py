"""A corpus of realistic compose files (tests/compose_corpus/): each parses, or is rejected only for
reasons in the policy's reject list, with every problem in one message.

Each file says what it expects in its first lines: ``# expect: ok`` or ``# expect-reject: <key
path>, ...`` (the exact list of problems). ``NAME.override.yml`` is merged onto ``NAME.yml``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_peakchaos.stack.compose import ComposeError, load_compose, policy

CORPUS = Path(__file__).resolve().parents[1] / "compose_corpus"
FILES = sorted(p for p in CORPUS.glob("*.yml") if not p.name.endswith(".override.yml"))
#: reasons a file may be rejected for: the policy's rejected keys, and the mounts/ports rules
POLICY_REASONS = [r.text for r in policy.SERVICE.values() if r.decision == policy.REJECTED] + [
    r.text for r in policy.TOP_LEVEL.values() if r.decision == policy.REJECTED
] + [
    "the Docker socket would give the container control of the engine",
    "is outside the project folder",
    "is in your home folder",
    "device files",
    "peakchaos publishes ports on 127.0.0.1 only",
]
ENVIRON = {"DB_PASSWORD": "from-the-shell"}


def _expectation(path: Path) -> list[str] | None:
    head = path.read_text().splitlines()[:3]
    for line in head:
        if line.startswith("# expect: ok"):
            return None
        match = re.match(r"# expect-reject: (.*)", line)
        if match:
            return [k.strip() for k in match[1].split(",")]
    raise AssertionError(f"{path.name}: no '# expect:' line")


def test_the_corpus_is_big_enough() -> None:
    assert len(FILES) >= 25


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_file(path: Path) -> None:
    expected = _expectation(path)
    paths = [path]
    override = path.with_name(path.stem + ".override.yml")
    if override.is_file():
        paths.append(override)
    if expected is None:
        spec = load_compose(paths, environ=ENVIRON)
        assert spec.services
        return
    with pytest.raises(ComposeError) as info:
        load_compose(paths, environ=ENVIRON)
    problems = info.value.problems
    assert [p.key for p in problems] == expected, str(info.value)
    for problem in problems:
        assert any(reason in problem.detail for reason in POLICY_REASONS), f"not a policy reason: {problem}"


def test_corpus_details() -> None:
    """A few things the corpus shows work as compose does."""
    env = load_compose(CORPUS / "09-dotenv.yml", environ={}).services
    assert env["app"].image == "local/shop-app:1.2.3" and env["app"].environment["SECRET_KEY"] == "dev-only"
    assert env["db"].environment["POSTGRES_PASSWORD"] == "secret"
    merged = load_compose([CORPUS / "24-override-base.yml", CORPUS / "24-override-base.override.yml"], environ={})
    web = merged.services["web"]
    assert web.build is not None and web.build.target == "dev" and web.image == "shop/web:1"
    assert web.environment == {"ERP_URL": "http://erp:8080", "DEBUG": "1"}
    assert any(n.startswith("restart (erp)") for n in merged.notes)
    profiles = load_compose(CORPUS / "10-profiles.yml", environ={})
    assert list(profiles.services) == ["app", "db"]
    names = load_compose(CORPUS / "11-container-names.yml", environ={}).links[0].names
    assert names == ("legacy", "legacy-erp", "erp01")
    worker = load_compose(CORPUS / "17-celery-worker.yml", environ={}).services["worker"]
    assert worker.command == ["celery", "-A", "shop", "worker", "-l", "info"] and worker.ports == []
