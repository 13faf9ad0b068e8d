"""Ledger sources (HTTP JSON, SQL via psql, Python callable) and the ``ledger=`` adapter, without Docker."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from pytest_peakchaos.stack.base import Stack, StackError
from pytest_peakchaos.stack.compose import FileMount, LedgerSpec, load_compose
from pytest_peakchaos.stack.ledger import ledger_reader, read_ledger
from pytest_peakchaos.stack.projectfiles import archive


class FakeStack(Stack):
    """Only what ledger sources use: ``url``, ``exec`` and ``spec``."""

    def __init__(self, spec: Any, port: int = 0, sql_out: str = "[]") -> None:
        super().__init__()
        self.spec = spec
        self.run_id = "pc-test"
        self.port = port
        self.sql_out = sql_out
        self.execs: list[tuple[str, list[str], str | None]] = []

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def logs(self, tail: int = 200) -> dict[str, str]:
        return {}

    @property
    def toxiproxy(self) -> Any:
        raise StackError("none")

    def endpoint(self, service: str, port: int | None = None) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def exec(self, service: str, argv: list[str], *, user: str | None = None, timeout_s: float = 10.0) -> str:
        self.execs.append((service, argv, user))
        return self.sql_out


@pytest.fixture()
def orders_server() -> Iterator[int]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"orders": [{"order_ref": "a", "sku": 1}, {"order_ref": "b", "sku": 2}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture()
def spec(tmp_path: Path) -> Any:
    path = tmp_path / "c.yml"
    path.write_text("services:\n  db: {image: postgres}\n  app: {image: app}\n")
    return load_compose(path, environ={})


def test_http_ledger_with_a_key_field(spec: Any, orders_server: int) -> None:
    stack = FakeStack(spec, port=orders_server)
    rows = read_ledger(stack, LedgerSpec("db", 9000, "/orders", key="order_ref"))
    assert [r["idempotency_key"] for r in rows] == ["a", "b"] and rows[0]["order_ref"] == "a"


def test_sql_ledger_runs_psql_inside_the_database(spec: Any) -> None:
    stack = FakeStack(spec, sql_out='[{"idempotency_key": "k1", "sku": 3}]\n')
    rows = read_ledger(stack, LedgerSpec("db", None, None, kind="sql", query="SELECT idempotency_key, sku FROM orders;", database="shop", user="shop"))
    assert rows == [{"idempotency_key": "k1", "sku": 3}]
    service, argv, user = stack.execs[0]
    assert service == "db" and argv[0] == "psql" and user == "postgres"
    assert argv[-1] == "SELECT coalesce(json_agg(t), '[]'::json) FROM (SELECT idempotency_key, sku FROM orders) AS t"
    assert ["-U", "shop"] == argv[argv.index("-U") : argv.index("-U") + 2] and "shop" == argv[argv.index("-d") + 1]


def test_sql_ledger_that_answers_no_json_is_a_clear_error(spec: Any) -> None:
    stack = FakeStack(spec, sql_out="ERROR: relation does not exist")
    with pytest.raises(StackError, match="ledger SQL on db gave no JSON"):
        read_ledger(stack, LedgerSpec("db", None, None, kind="sql", query="SELECT 1"))


def test_python_ledger_and_the_adapter(spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("my_ledger")
    module.orders = lambda stack: [{"ref": stack.run_id}]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_ledger", module)
    stack = FakeStack(spec)
    assert read_ledger(stack, LedgerSpec(None, None, None, kind="python", callable="my_ledger:orders")) == [{"ref": "pc-test"}]
    assert ledger_reader(stack, "my_ledger:orders")() == [{"ref": "pc-test"}]
    fn = lambda: [{"idempotency_key": "x"}]  # noqa: E731
    assert ledger_reader(stack, fn) is fn
    stack.sql_out = '[{"k": "z"}]'
    assert ledger_reader(stack, {"service": "db", "sql": "SELECT 1 AS k", "key": "k"})() == [{"k": "z", "idempotency_key": "z"}]
    with pytest.raises(TypeError, match="expected a callable"):
        ledger_reader(stack, 5)  # type: ignore[arg-type]


def test_ledger_rows_must_be_a_list_of_mappings(spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bad_ledger")
    module.orders = lambda stack: [1, 2]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bad_ledger", module)
    with pytest.raises(StackError, match="expected a mapping per order"):
        read_ledger(FakeStack(spec), LedgerSpec(None, None, None, kind="python", callable="bad_ledger:orders"))


def test_project_files_archive_keeps_read_only_read_only(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.ini").write_text("a=1\n")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    data = archive([
        FileMount(tmp_path / "conf", "/etc/app", True, "v0"),
        FileMount(tmp_path / "run.sh", "/usr/local/bin/run.sh", False, "v1"),
    ])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"etc/app", "etc/app/a.ini", "usr/local/bin/run.sh"}
    assert members["etc/app"].mode == 0o555 and members["etc/app/a.ini"].mode == 0o444
    assert members["usr/local/bin/run.sh"].mode == 0o777
    assert all(m.uid == 0 for m in members.values())
