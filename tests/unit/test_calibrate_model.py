"""Round trip on a known Markov model with states of its own (not the built-in names), in pure
Python: a seeded synthetic access log is calibrated and the recovered matrix, think times and
arrival rate are compared with the model (the issue's acceptance bounds)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy import integrate, stats

from pytest_peakchaos.calibrate import calibrate
from pytest_peakchaos.calibrate.synth import walk_lines, write_log
from pytest_peakchaos.calibrate.verify import compare_to_model

MODEL = {
    "entry": {"landing": 0.55, "catalogue": 0.3, "deal": 0.15},
    "landing": {"catalogue": 0.5, "deal": 0.2, "exit": 0.3},
    "catalogue": {"item": 0.6, "landing": 0.1, "exit": 0.3},
    "deal": {"item": 0.7, "exit": 0.3},
    "item": {"basket": 0.4, "catalogue": 0.3, "deal": 0.1, "exit": 0.2},
    "basket": {"pay": 0.5, "catalogue": 0.3, "exit": 0.2},
    "pay": {"exit": 1.0},
}
THINK = {s: ("exponential", 2.0, 0.0, 12.0) for s in MODEL if s not in ("entry", "pay")}  # pay only exits
THINK["item"] = ("lognormal", 3.0, 0.8, 30.0)
THINK["basket"] = ("exponential", 1.0, 0.0, 2.0)  # capped hard: 13.5 % of the draws sit at the cap
RATE = 4.0


def true_mean(spec: tuple[str, float, float, float]) -> float:
    kind, m, sigma, cap = spec
    dist = stats.expon(scale=m) if kind == "exponential" else stats.lognorm(sigma, scale=m)
    value, _ = integrate.quad(dist.sf, 0, cap)  # E[min(X, cap)]
    return float(value)


@pytest.fixture(scope="module")
def synthetic_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "access.log"
    with path.open("w") as fh:
        write_log(fh, walk_lines(MODEL, {**THINK, "pay": ("exponential", 1.0, 0.0, 5.0)}, rate=RATE, duration=2500.0, seed=7))
    return path


def test_known_model_is_recovered(synthetic_log: Path) -> None:
    cal = calibrate(synthetic_log, timeout=60.0)
    assert cal.states and all(s.endswith("_id") for s in cal.states)  # /landing/123 -> landing_id
    names = {s: f"{s}_id" for s in MODEL if s != "entry"}
    rec = compare_to_model(cal, MODEL, state_of=names, think_means={s: true_mean(t) for s, t in THINK.items()}, rate=RATE)
    print(rec.describe())
    assert rec.ok, rec.describe()
    assert rec.cells_checked >= 15
    assert cal.think["basket_id"].censored > 0  # the cap was found...
    assert cal.think["basket_id"].cap == pytest.approx(2.0, abs=0.01)  # ...where it is
    assert cal.think["item_id"].chosen is not None and cal.think["item_id"].chosen.kind == "lognormal"
    assert cal.think["landing_id"].chosen is not None and cal.think["landing_id"].chosen.kind == "exponential"
    assert 1.0 <= cal.peak_to_mean < 1.5  # a constant rate: small Poisson noise only


def test_a_wrong_model_is_rejected(synthetic_log: Path) -> None:
    """The checks can fail: a model 0.05 off on one row is caught by both the tolerance and chi-square."""
    cal = calibrate(synthetic_log, timeout=60.0)
    wrong = {**MODEL, "catalogue": {"item": 0.55, "landing": 0.15, "exit": 0.3}}
    names = {s: f"{s}_id" for s in MODEL if s != "entry"}
    rec = compare_to_model(cal, wrong, state_of=names, think_means={"landing": 2.5}, rate=RATE * 1.06)
    assert not rec.ok
    text = " ".join(rec.problems)
    assert "catalogue -> item_id" in text and "chi-square rejects" in text
    assert "think time of 'landing'" in text and "arrival rate" in text


def test_sessions_by_client_and_agent_without_a_session_field(tmp_path: Path) -> None:
    path = tmp_path / "nosid.log"
    with path.open("w") as fh:
        write_log(fh, walk_lines(MODEL, {**THINK, "pay": ("exponential", 1.0, 0.0, 5.0)}, rate=2.0, duration=1200.0, seed=3, with_sid=False))
    cal = calibrate(path, timeout=60.0)
    assert cal.session_key == "client address + user agent"
    names = {s: f"{s}_id" for s in MODEL if s != "entry"}
    rec = compare_to_model(cal, MODEL, state_of=names, rate=2.0)
    assert rec.ok, rec.describe()


def test_behaviour_mixes_are_found(tmp_path: Path) -> None:
    """Two populations on the same states that one chain cannot express: k=2 is chosen."""
    import heapq

    browsers = {"entry": {"look": 1.0}, "look": {"look": 0.85, "cart": 0.05, "exit": 0.1}, "cart": {"look": 0.5, "exit": 0.5}}
    buyers = {"entry": {"look": 1.0}, "look": {"cart": 0.8, "look": 0.1, "exit": 0.1}, "cart": {"cart": 0.7, "exit": 0.3}}
    think = {s: ("exponential", 2.0, 0.0, 20.0) for s in ("look", "cart")}
    a = walk_lines(browsers, think, rate=3, duration=800, seed=1)
    b = (ln.replace("sid=s", "sid=b").replace("synthetic ", "synthetic b") for ln in walk_lines(buyers, think, rate=2, duration=800, seed=2))
    path = tmp_path / "mix.log"
    path.write_text("".join(heapq.merge(a, b, key=lambda ln: float(ln.split("msec=")[1].split()[0]))))
    cal = calibrate(path, timeout=120.0, mixes="auto", max_mixes=4)
    assert [t["k"] for t in cal.mix_criterion] == [1, 2, 3, 4]
    assert len(cal.mixes) == 2, cal.mix_criterion
    buy = max(cal.mixes, key=lambda m: m["transitions"]["look_id"].get("cart_id", 0))
    assert buy["transitions"]["look_id"]["cart_id"] > 0.7
    assert 0.3 < buy["share"] < 0.5
    one = calibrate(path, timeout=120.0, mixes=1)
    assert len(one.mixes) == 1 and one.mixes[0]["criterion"] == "the user"
    assert math.isclose(sum(m["share"] for m in cal.mixes), 1.0)
