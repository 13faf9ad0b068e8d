"""peakchaos calibrate: log formats, templating, route maps, bad input, atomic outputs, the CLI
(`calibrate` and `report`)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from pytest_peakchaos.calibrate import CalibrationError, JsonFields, calibrate, write_outputs
from pytest_peakchaos.calibrate.logs import LineErrors, read_hits
from pytest_peakchaos.calibrate.routes import RouteMap, state_name, template_path
from pytest_peakchaos.calibrate.synth import walk_lines, write_log
from pytest_peakchaos.cli import main

MODEL = {
    "entry": {"home": 0.7, "deal": 0.3},
    "home": {"deal": 0.5, "exit": 0.5},
    "deal": {"home": 0.3, "deal": 0.3, "exit": 0.4},
}
THINK = {"home": ("exponential", 2.0, 0.0, 20.0), "deal": ("exponential", 1.0, 0.0, 10.0)}


def synth(path: Path, *, duration: float = 600.0, seed: int = 1, **kw: object) -> Path:
    with path.open("w") as fh:
        write_log(fh, walk_lines(MODEL, THINK, rate=3.0, duration=duration, seed=seed, **kw))  # type: ignore[arg-type]
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return synth(tmp_path / "access.log")


# --------------------------------------------------------------------------- formats


def test_combined_line_with_extra_fields() -> None:
    errors = LineErrors()
    p = Path(__file__).parent / "_calib_one.log"
    try:
        p.write_text(
            '203.0.113.9 - - [10/Oct/2024:13:55:36 +0200] "GET /products/17?ref=ad HTTP/1.1" 200 2326 "https://x/" '
            '"Mozilla/5.0" "a=1; sid=abc123" msec=1728561336.250 rt=0.125\n'
            '203.0.113.9 - - [10/Oct/2024:13:55:40 +0200] "POST /carts/9/items HTTP/1.1" 201 10\n'  # common format
        )
        hits = list(read_hits([p], errors))
    finally:
        p.unlink()
    assert not errors.counts
    a, b = hits
    assert (a.method, a.path, a.status, a.session, a.agent) == ("GET", "/products/17?ref=ad", 200, "abc123", "Mozilla/5.0")
    assert a.end == pytest.approx(1728561336.250) and a.start == pytest.approx(1728561336.125)
    assert b.end == b.start == 1728561340.0  # 13:55:40 +0200 is 11:55:40 UTC
    assert b.session is None and b.agent == ""


def test_gzip_and_json_lines_give_the_same_calibration(tmp_path: Path, log: Path) -> None:
    gz = tmp_path / "access.log.1"  # gzip detected by magic bytes, not by name
    gz.write_bytes(gzip.compress(log.read_bytes()))
    js = tmp_path / "access.jsonl"
    with js.open("w") as out:
        for h in read_hits([log], LineErrors()):
            out.write(json.dumps({"ts": h.end, "req": {"uri": h.path}, "verb": h.method, "code": h.status,
                                  "session_id": h.session, "took": round(h.end - h.start, 3)}) + "\n")
    base = calibrate(log, timeout=60)
    fields = JsonFields.parse(["time=ts", "path=req.uri", "method=verb", "status=code", "request_time=took"])
    for other in (calibrate(gz, timeout=60), calibrate(js, timeout=60, json_fields=fields)):
        assert other.states == base.states and other.counts == base.counts and other.sessions == base.sessions


def test_json_field_spec_errors_name_the_valid_fields() -> None:
    with pytest.raises(CalibrationError, match="NAME one of time, method, path"):
        JsonFields.parse(["when=ts"])


@pytest.mark.parametrize(
    ("path", "template", "name"),
    [
        ("/", "/", "home"),
        ("/products/17", "/products/{id}", "products_id"),
        ("/carts/pc-1a2b3c4d-17/items", "/carts/{id}/items", "carts_id_items"),
        ("/u/3f2b8c1e-9a7d-4c1e-8f00-1234567890ab/orders/5", "/u/{uuid}/orders/{id}", "u_uuid_orders_id"),
        ("/search?q=tv&page=2", "/search", "search"),
        ("/a/1/b/2", "/a/{id}/b/{id2}", "a_id_b_id2"),
        ("/static/v2/about", "/static/v2/about", "static_v2_about"),
    ],
)
def test_automatic_templating(path: str, template: str, name: str) -> None:
    tpl, _ = template_path(path)
    assert tpl == template
    assert state_name("GET", tpl) == name
    assert state_name("POST", tpl) == f"post_{name}"


def test_query_names_become_binding_placeholders(tmp_path: Path) -> None:
    p = tmp_path / "q.log"
    p.write_text("".join(
        f'10.0.0.{i} - - [10/Oct/2024:13:55:{i:02d} +0000] "GET /search?q=t{i}&page={i} HTTP/1.1" 200 1 "-" "ua"\n' for i in range(10)
    ))
    cal = calibrate(p, timeout=60)
    assert cal.bindings["search"] == ("GET", "/search?page={page}&q={q}")


# --------------------------------------------------------------------------- route maps


def test_route_map_names_states_and_counts_unmatched(tmp_path: Path, log: Path) -> None:
    rm = {"routes": {"GET /home/{n}": "landing"}}  # /deal/... matches nothing: counted, not fatal
    cal = calibrate(log, routes=rm, timeout=60)
    assert cal.states == ["landing"]
    assert cal.dropped["no route matches"] > 0 and "GET /deal/" in cal.dropped_examples["no route matches"]
    assert any("match no route" in w for w in cal.warnings)
    assert cal.bindings["landing"] == ("GET", "/home/{n}")


def test_route_map_that_matches_nothing_is_an_error(tmp_path: Path, log: Path) -> None:
    f = tmp_path / "routes.yml"
    f.write_text('routes:\n  "GET /products/{sku}": view_product\n')
    with pytest.raises(CalibrationError, match=r"routes.yml: the route map matches none of the \d+ requests.*GET /products/\{sku\}.*look like: GET /"):
        calibrate(log, routes=f, timeout=60)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"routes": {"FETCH /x": "s"}}, "unknown method 'FETCH'; valid values: GET"),
        ({"routes": {"GET x": "s"}}, "must start with '/'"),
        ({"routes": {"GET /x": "bad name!"}}, "state_name"),
        ({"routes": {}}, "no routes"),
        ({"routes": ["GET /x"]}, "expected a mapping"),
    ],
)
def test_bad_route_maps(data: object, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        RouteMap.from_mapping(data, "routes.yml")


# --------------------------------------------------------------------------- bad input


def test_malformed_lines_are_counted_with_an_example(tmp_path: Path, log: Path) -> None:
    lines = log.read_text().splitlines(keepends=True)
    lines.insert(10, "garbage that is no log line\n")
    lines.insert(20, '1.2.3.4 - - [99/Foo/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n')
    lines.insert(30, '1.2.3.4 - - [10/Oct/2024:00:00:00 +0000] "\\x16\\x03\\x01" 400 1 "-" "x"\n')
    p = tmp_path / "dirty.log"
    p.write_text("".join(lines))
    cal = calibrate(p, timeout=60)
    assert cal.dropped == {"not the combined/common log format": 1, "timestamp is not dd/Mon/yyyy:HH:MM:SS +zzzz": 1,
                           "request line is not 'METHOD /path PROTOCOL'": 1}
    assert cal.dropped_examples["not the combined/common log format"] == f"{p}:11: garbage that is no log line"
    assert cal.requests == len(lines) - 3


def test_a_log_most_of_whose_lines_fail_is_an_error(tmp_path: Path, log: Path) -> None:
    good = log.read_text().splitlines(keepends=True)[:20]
    p = tmp_path / "mostly-bad.log"
    p.write_text("".join(good) + "".join(f"{i} bad bad bad\n" for i in range(30)))  # detection passes on the head
    with pytest.raises(CalibrationError, match=r"30 of 50 lines cannot be read, most of the log: 30 × not the combined"):
        calibrate(p, timeout=60, fmt="combined")


def test_empty_unknown_and_missing_logs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("\n\n")
    with pytest.raises(CalibrationError, match="empty.log: empty log: no lines"):
        calibrate(empty)
    unknown = tmp_path / "app.log"
    unknown.write_text("2024-10-10 12:00:00 INFO started\n" * 5)
    with pytest.raises(CalibrationError, match="app.log: unknown log format.*valid formats: combined, json"):
        calibrate(unknown)
    with pytest.raises(CalibrationError, match="nope.log: no such log file"):
        calibrate(tmp_path / "nope.log")
    with pytest.raises(CalibrationError, match="format: unknown log format 'clf'; valid values: auto, combined, json"):
        calibrate(empty, fmt="clf")
    with pytest.raises(CalibrationError, match="mixes: expected a number of groups"):
        calibrate(empty, mixes=0)


def test_nothing_is_half_written(tmp_path: Path, log: Path) -> None:
    out = tmp_path / "profile.yml"
    out.write_text("previous\n")
    bad = tmp_path / "app.log"
    bad.write_text("not a log\n" * 5)
    assert main(["calibrate", str(bad), "-o", str(out), "--report", str(tmp_path / "r.html")]) == 2
    assert out.read_text() == "previous\n" and not (tmp_path / "r.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["access.log", "app.log", "profile.yml"]  # no temp files left


# --------------------------------------------------------------------------- outputs + CLI


def test_profile_yaml_has_the_measured_header_and_loads(tmp_path: Path, log: Path) -> None:
    cal = calibrate(log, timeout=60, routes={"routes": {"GET /home/{n}": "home", "GET /deal/{sku}": "view_product"}})
    paths = write_outputs(cal, profile=tmp_path / "p.yml", report=tmp_path / "r.html")
    text = paths["profile"].read_text()
    head = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any(f"sessions: {cal.sessions} by session field 'sid'" in ln for ln in head)
    assert any("dropped lines: none" in ln for ln in head)
    doc = yaml.safe_load(text)
    assert doc["arrival"]["shape"] == "step"
    assert set(doc["behaviour"]["transitions"]) == {"entry", "home", "view_product"}
    assert doc["bindings"]["view_product"] == {"method": "GET", "path": "/deal/{sku}", "draw": ["sku"]}
    assert "peakchaos calibrate:" in doc["sources"]["calibration"]
    from pytest_peakchaos.profiles import load_profile

    doc["bindings"]["home"]["path"] = "/home/1"  # the user finishes the binding...
    (tmp_path / "p.yml").write_text(yaml.safe_dump(doc))
    prof = load_profile(tmp_path / "p.yml")  # ...and it is a profile
    assert prof.behaviour.transitions["view_product"]["home"] == pytest.approx(0.3, abs=0.05)
    page = paths["report"].read_text()
    assert page.count("<svg") >= 3 and "Transition matrix" in page and "Think times" in page
    assert "<script" not in page and 'href="http' not in page and "src=" not in page  # self-contained


def test_cli_calibrate_prints_or_writes(tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", str(log), "--timeout", "1m"]) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out)["behaviour"]["transitions"]["entry"]
    assert "peakchaos calibrate:" in err and "sessions" in err
    assert main(["calibrate", str(log), "-o", str(tmp_path / "x.yml"), "--mixes", "2", "--timeout", "1m"]) == 0
    assert (tmp_path / "x.yml").is_file() and (tmp_path / "x.mix1.yml").is_file() and (tmp_path / "x.mix2.yml").is_file()
    assert main(["calibrate", str(log), "--timeout", "soon"]) == 2
    assert "--timeout: cannot read 'soon' as a duration" in capsys.readouterr().err
    assert main(["calibrate", str(log), "--mixes", "2"]) == 2
    assert "give -o" in capsys.readouterr().err
    assert main(["calibrate", str(log), "--max-states", "0"]) == 2
    assert "max_states (--max-states): expected a number >= 1, got 0" in capsys.readouterr().err


def _report_docs(tmp_path: Path) -> tuple[Path, Path]:
    from tests.unit.test_report import make_document, make_run

    from pytest_peakchaos.report import write_json

    a, b = tmp_path / "a" / "peakchaos.json", tmp_path / "b" / "peakchaos.json"
    write_json(make_document(make_run(profile="normal", duration=12, fault=(3.0, 8.0))), a)
    doc_b = make_document(make_run(profile="double11", naive=True, duration=12, fault=(3.0, 8.0)))
    doc_b["stack"] = "compose/naive.yml"
    write_json(doc_b, b)
    return a, b


@pytest.mark.slow
def test_cli_report_rerenders_one(tmp_path: Path) -> None:
    a, _ = _report_docs(tmp_path)
    assert main(["report", str(a)]) == 0
    assert "<svg" in (a.parent / "peakchaos.html").read_text()


def test_cli_report_combines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_peakchaos.report import load_json

    a, b = _report_docs(tmp_path)
    assert main(["report", str(a), str(b), "-o", str(tmp_path / "all")]) == 0
    combined = load_json(tmp_path / "all" / "peakchaos.json")
    assert [r["profile"] for r in combined["runs"]] == ["normal", "double11"]
    assert [r["stack"] for r in combined["runs"]] == ["not recorded", "compose/naive.yml"]
    assert combined["runs"][1]["source"]["file"] == str(b)
    page = (tmp_path / "all" / "peakchaos.html").read_text()
    assert "normal" in page and "double11" in page and page.count("<svg") >= 6
    capsys.readouterr()
    assert main(["report", str(a), str(b)]) == 2
    assert "needs -o/--output DIR" in capsys.readouterr().err
    assert main(["report", str(a), str(b), "-o", str(a.parent)]) == 2  # would overwrite an input
    assert "is one of the inputs" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "peakchaos/1"}')
    assert main(["report", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err and not (tmp_path / "peakchaos.html").exists()


def test_memory_is_bounded_by_concurrent_sessions_not_by_the_log(tmp_path: Path) -> None:
    """Idle sessions are ended and old counts folded as the log's time advances: what is held
    stays at about arrival rate x timeout, however long the log."""
    from pytest_peakchaos.calibrate.routes import AutoTemplater
    from pytest_peakchaos.calibrate.sessions import Sessioniser

    held = []
    sess = Sessioniser(AutoTemplater(), timeout=30.0, reservoir=100)
    for i, hit in enumerate(read_hits([synth(tmp_path / "long.log", duration=3000.0)], LineErrors())):
        sess.add(hit)
        if i % 2000 == 1999:
            held.append((len(sess.open), len(sess.pending)))
    assert len(held) >= 5
    assert max(o for o, _ in held) < 3.0 * (30 + 20) * 2  # rate 3/s x (timeout + a session's length), with margin
    assert max(p for _, p in held) <= 30 + 3  # seconds of undecided transition counts
    assert max(len(t.sample) for t in sess.think) <= 100
    obs = sess.finish()
    assert obs.sessions > 8000 and not sess.open


def test_any_state_format_declares_draws(log: Path) -> None:
    from pytest_peakchaos.calibrate.emit import profile_document

    cal = calibrate(log, timeout=60, routes={"routes": {"GET /home/{n}": "home", "GET /deal/{sku}": "deal"}})
    assert "draw" not in profile_document(cal, draws=False)["bindings"]["deal"]
    doc = profile_document(cal)
    assert doc["bindings"]["deal"] == {"method": "GET", "path": "/deal/{sku}", "draw": ["sku"]}
    assert "draw" not in doc["bindings"]["home"]
