"""Your own stack, unchanged: transparent links, project files, a PostgreSQL legacy, an SQL ledger.

One stack (compose/examples/postgres/compose.yml): a small cloud service ("relay") whose config
FILE names an HTTP legacy and a PostgreSQL database by service name, no proxy variable anywhere.
The images are built once and cached by the engine (the PostgreSQL image is the slow one the first
time: Debian's package through apt).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos import down, latency
from pytest_peakchaos.stack.compose import load_compose
from pytest_peakchaos.stack.docker import DockerStack
from pytest_peakchaos.stack.ledger import ledger_reader

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "compose" / "examples" / "postgres" / "compose.yml"


@pytest.fixture(scope="module")
def stack(docker_engine: Any) -> Iterator[DockerStack]:
    environ = dict(os.environ)
    environ.setdefault("PEAKCHAOS_BASE_IMAGE", "peakchaos/python-base:bookworm")
    spec = load_compose(EXAMPLE, environ=environ)
    with DockerStack(spec, client=docker_engine, startup_timeout_s=300) as running:
        assert isinstance(running, DockerStack)
        yield running


def get(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, Any, float]:
    t0 = time.perf_counter()
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
            status, body = resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        status, body = err.code, json.loads(err.read() or b"null")
        err.close()
    return status, body, time.perf_counter() - t0


def median_ms(url: str, n: int = 5) -> float:
    times = []
    for _ in range(n):
        status, body, seconds = get(url)
        assert status == 200, body
        times.append(seconds)
    return statistics.median(times) * 1000


def in_cloud(stack: DockerStack, code: str) -> str:
    return stack.exec("cloud", ["python3", "-c", code]).strip()


CONNECT = (
    "import socket,sys\n"
    "try:\n socket.create_connection(({host!r}, {port}), timeout=2).close(); print('open')\n"
    "except OSError as e:\n print('refused' if isinstance(e, ConnectionRefusedError) else 'unreachable')\n"
)


def test_the_example_parses_with_notes_for_ignored_keys() -> None:
    spec = load_compose(EXAMPLE, environ={})
    assert [(link.service, link.port, link.env, link.client) for link in spec.links] == [
        ("db", 5432, None, "cloud"), ("legacy", 9000, None, "cloud"),
    ]
    assert any(n.startswith("restart (db): ignored") for n in spec.notes)
    cloud = spec.services["cloud"]
    assert [(f.source.name, f.target, f.read_only) for f in cloud.files] == [("relay.ini", "/etc/relay/relay.ini", True)]
    assert not any("legacy" in v or "db" in v for v in cloud.environment.values()), "no proxy variable"


def test_latency_on_the_database_link_shows_on_db_calls_only(stack: DockerStack) -> None:
    cloud = stack.url("cloud")
    base_db, base_fast, base_http = median_ms(f"{cloud}/db"), median_ms(f"{cloud}/fast"), median_ms(f"{cloud}/legacy")
    with stack.link("db").apply(latency(ms=150)):
        slow_db, slow_fast, slow_http = median_ms(f"{cloud}/db"), median_ms(f"{cloud}/fast"), median_ms(f"{cloud}/legacy")
    # a fresh connection + startup + one query: server answers arrive late at least once (150 ms),
    # usually twice; the margin is for a busy machine
    assert slow_db - base_db >= 120, (base_db, slow_db)
    assert slow_fast - base_fast < 100, (base_fast, slow_fast)
    assert slow_http - base_http < 100, (base_http, slow_http)


def test_every_fault_reaches_a_cloud_that_hard_codes_the_legacy_host(stack: DockerStack) -> None:
    cloud = stack.url("cloud")
    base = median_ms(f"{cloud}/legacy")
    with stack.link("legacy").apply(latency(ms=200)):
        slow = median_ms(f"{cloud}/legacy")
    assert slow - base >= 150, (base, slow)
    with stack.link("legacy").apply(down()):
        status, body, _ = get(f"{cloud}/legacy")
    assert status == 503, body
    assert get(f"{cloud}/legacy")[0] == 200


def test_legacy_is_unreachable_from_the_cloud_except_through_toxiproxy(stack: DockerStack) -> None:
    legacy = stack.container("legacy")
    legacy.reload()
    networks = legacy.attrs["NetworkSettings"]["Networks"]
    assert list(networks) == [stack.private_network_name], "legacy sits on the private network only"
    legacy_ip = networks[stack.private_network_name]["IPAddress"]
    toxiproxy = stack.container("toxiproxy")
    toxiproxy.reload()
    tox_ip = toxiproxy.attrs["NetworkSettings"]["Networks"][stack.network_name]["IPAddress"]
    resolved = in_cloud(stack, "import socket; print(socket.gethostbyname('legacy'))")
    assert resolved == tox_ip, "the legacy name answers with Toxiproxy"
    assert in_cloud(stack, CONNECT.format(host=legacy_ip, port=9000)) == "unreachable"
    private = in_cloud(stack, f"import socket\ntry:\n socket.gethostbyname({stack.private_alias('legacy')!r}); print('resolved')\nexcept OSError: print('unknown')")
    assert private == "unknown"
    assert in_cloud(stack, CONNECT.format(host="legacy", port=9000)) == "open"
    with stack.link("legacy").apply(down()):
        assert in_cloud(stack, CONNECT.format(host="legacy", port=9000)) == "refused"


def test_project_file_is_a_copy_and_read_only(stack: DockerStack) -> None:
    mounts = stack.container("cloud").attrs["Mounts"]
    assert [m for m in mounts if m["Type"] == "bind"] == [], "nothing of the host is mounted"
    text = in_cloud(stack, "print(open('/etc/relay/relay.ini').read())")
    assert text == (EXAMPLE.parent / "relay.ini").read_text().strip()
    mode = in_cloud(stack, "import os; print(oct(os.stat('/etc/relay/relay.ini').st_mode & 0o777))")
    assert mode == "0o444"
    assert in_cloud(stack, "import os; print(os.access('/etc/relay/relay.ini', os.W_OK))") == "False"


def test_the_ledger_is_read_by_sql_and_amplification_counted_at_the_link(stack: DockerStack) -> None:
    cloud = stack.url("cloud")
    keys = [f"k-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    counter_before = _link_bytes(stack, "db")
    for key in keys + keys[:1]:  # the repeat is idempotent
        assert get(f"{cloud}/orders?key={key}&sku=7", method="POST")[0] == 201
    rows = stack.ledger()
    mine = [r for r in rows if r["idempotency_key"] in keys]
    assert sorted(r["idempotency_key"] for r in mine) == sorted(keys) and all(r["sku"] == 7 for r in mine)
    with stack.link("db").apply(down()):  # read on the private side, not through the proxy
        assert len(stack.ledger()) == len(rows)
    assert _link_bytes(stack, "db") > counter_before
    reader = ledger_reader(stack, {"service": "db", "sql": "SELECT idempotency_key AS k FROM orders", "user": "shop", "database": "shop", "key": "k"})
    assert {r["idempotency_key"] for r in reader()} >= set(keys)


def _link_bytes(stack: DockerStack, proxy: str) -> float:
    from pytest_peakchaos.experiment import toxiproxy_bytes_counter

    reading = toxiproxy_bytes_counter(stack.toxiproxy.api_url, proxy)()
    assert reading is not None, "Toxiproxy runs with -proxy-metrics"
    return float(reading.value)
