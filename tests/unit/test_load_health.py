"""The generator-health series of a load result: saturated seconds, the one-line reason, merge and
the JSON round trip (the engine's measurements themselves: tests/integration/test_generator_health.py)."""

from __future__ import annotations

from pytest_peakchaos.load.health import HealthSampler
from pytest_peakchaos.load.result import GeneratorHealth, LoadResult, seconds_phrase, seconds_text


def _health(delays_ms: dict[int, float], t0: float = 100.0) -> GeneratorHealth:
    h = HealthSampler(t0)
    for sec, ms in delays_ms.items():
        for i in range(200):  # 200 ticks per second, one of them ``ms`` late
            expected = t0 + sec + i * 0.005
            h.loop_lag(expected, expected + (ms / 1000.0 if i == 7 else 0.0002), 0)
        h.send_delay(sec, 300.0)
    return h.finish(t0 + max(delays_ms) + 1.0)


def test_seconds_text_joins_runs() -> None:
    assert seconds_text([3, 4, 5, 9, 12, 11]) == "3–5, 9, 11–12"
    assert seconds_text([]) == ""


def test_seconds_phrase_names_one_second_or_several() -> None:
    assert seconds_phrase([2]) == "second 2"
    assert seconds_phrase([27, 22, 23]) == "seconds 22–23, 27"


def test_saturated_seconds_and_reason() -> None:
    g = _health({0: 0.5, 1: 130.0, 2: 131.0, 3: 0.5})
    # one tick woke 130 ms late: it stands for the 26 ticks the blocked loop missed, so the second is
    # saturated although only one sample arrived
    assert g.saturated_seconds(5.0) == [1, 2]
    assert g.seconds[1].lag.count >= 200 + 25
    h = HealthSampler(100.0)
    for sec in (0, 1, 2, 3):
        late = 0.130 if sec in (1, 2) else 0.0002
        for i in range(200):
            e = 100.0 + sec + i * 0.005
            h.loop_lag(e, e + late, 3 if sec == 2 else 0)
    g = h.finish(104.0)
    # second 2's last ticks woke up to 130 ms into second 3: what was due then was late too
    assert g.saturated_seconds(5.0) == [1, 2, 3]
    assert g.saturated_in(0.0, 2.0, 5.0) == [1]
    assert 120.0 <= g.delay_p99_ms(1) <= 140.0
    text = g.describe(5.0)
    assert text.startswith("the load generator was saturated: its own p99 delay was 13")
    assert "seconds 1–3" in text and "add workers" in text
    assert g.seconds[2].conn_queue_max == 3
    assert g.describe(500.0) == ""


def test_send_delay_counts() -> None:
    h = HealthSampler(0.0)
    for _ in range(99):
        h.send_delay(4, 200.0)
    h.send_delay(4, 80_000.0)
    h.send_delay(4, 90_000.0)
    g = h.finish(5.0)
    assert 78.0 <= g.seconds[4].send_p99_ms <= 92.0
    assert g.saturated_seconds(10.0) == [4]


def test_merge_and_round_trip() -> None:
    a = _health({0: 0.5, 1: 0.5})
    b = _health({1: 0.5, 2: 0.5})
    a.merge(b)
    assert sorted(a.seconds) == [0, 1, 2]
    assert a.seconds[1].send.count == 2
    r = LoadResult(seed=1, profile="p", run_id="x", t0=0.0, duration_s=3.0)
    r.generator = a
    back = LoadResult.from_dict(r.to_dict())
    assert back.generator.to_dict() == a.to_dict()
    assert "generator" in r.to_dict(histograms=False)
    r2 = LoadResult(seed=1, profile="p", run_id="y", t0=0.0, duration_s=3.0)
    r2.generator = _health({2: 0.5})
    back.merge(r2)
    assert back.generator.seconds[2].send.count == 2


def test_collector_pauses_are_recorded() -> None:
    import gc

    h = HealthSampler(__import__("time").monotonic())
    h.install()
    try:
        gc.collect()
    finally:
        h.uninstall()
    g = h.finish(h.t0 + 1.0)
    assert sum(r.gc_count for r in g.seconds.values()) >= 1  # gc.collect() runs 1 callback pair per call
    assert h._on_gc not in gc.callbacks


def test_a_loop_blocked_across_seconds_marks_every_second_it_blocked() -> None:
    h = HealthSampler(10.0)
    for i in range(200):
        e = 10.0 + i * 0.005
        h.loop_lag(e, e + 0.0002, 0)
    h.loop_lag(11.0, 14.5, 0)  # the ticker due at 1.0 s woke at 4.5 s: seconds 1-4 had no other sample
    g = h.finish(15.0)
    assert g.saturated_seconds(50.0) == [1, 2, 3, 4]
    assert g.seconds[1].lag_max_ms > 3400 and 400 <= g.seconds[4].lag_max_ms <= 600


def test_a_phase_is_judged_by_its_merged_p99_not_by_one_bad_second() -> None:
    h = HealthSampler(0.0)
    for sec in range(10):
        for i in range(200):
            e = sec + i * 0.005
            late = 0.080 if (sec == 5 and i == 0) else 0.0002  # second 5: an 80 ms stall (16 missed ticks)
            h.loop_lag(e, e + late, 0)
    g = h.finish(10.0)
    assert g.saturated_seconds(50.0) == [5]
    assert g.window_delay_p99_ms(0, 10) < 5.0
    assert g.saturated_window(0, 10, 50.0) == ""
    why = g.saturated_window(5, 6, 50.0)
    assert why.startswith("the load generator was saturated: its own p99 delay was 7") and "(worst: second 5)" in why
