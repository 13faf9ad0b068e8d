"""The engine's think-time scheduler (load/scheduler.py): order, never early, bounded, stops by itself."""

from __future__ import annotations

import asyncio
import time

from pytest_peakchaos.load.scheduler import Scheduler


def _with_loop(fn):  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    try:
        return fn(loop)
    finally:
        loop.close()


def test_fires_in_due_order_and_equal_times_in_push_order() -> None:
    def body(loop: asyncio.AbstractEventLoop) -> None:
        fired: list[tuple[str, float]] = []
        s: Scheduler[str] = Scheduler(loop, lambda item, now: fired.append((item, now)), clock=lambda: 0.0)
        for name, when in [("a", 3.0), ("b", 1.0), ("c", 2.0), ("d", 1.0), ("e", 7.0)]:
            s.push(when, name)
        assert s.service(2.5) == 3  # never before its due instant: 3.0 and 7.0 wait
        assert [n for n, _ in fired] == ["b", "d", "c"]
        assert all(now == 2.5 for _, now in fired)
        assert len(s) == 2
        assert s.service(10.0) == 2
        assert [n for n, _ in fired] == ["b", "d", "c", "a", "e"]
        # within one slot (1 ms) too: only the entries already due fire, in due order
        for name, when in [("y", 20.0007), ("x", 20.0002), ("z", 20.0004)]:
            s.push(when, name)
        assert s.service(20.0005) == 2 and [n for n, _ in fired[-2:]] == ["x", "z"]
        assert s.next_due() == 20.0007 and s.service(20.0006) == 0
        assert s.service(20.0007) == 1 and fired[-1] == ("y", 20.0007)
        s.close()

    _with_loop(body)


def test_one_pass_is_bounded_by_the_entries_present_when_it_began() -> None:
    def body(loop: asyncio.AbstractEventLoop) -> None:
        calls = []
        s: Scheduler[int] = Scheduler(loop, lambda item, now: None, clock=lambda: 0.0)

        def again(item: int, now: float) -> None:  # every firing schedules another one that is already due
            calls.append(item)
            s.push(now, item + 1)

        s.fire = again
        s.push(0.0, 0)
        s.push(0.0, 100)
        assert s.service(1.0) == 2  # not an endless loop: the re-pushed entries wait for the next pass
        assert calls == [0, 100]
        assert len(s) == 2
        s.close()
        assert len(s) == 0 and s.service(5.0) == 0
        s.push(0.0, 7)  # closed: nothing is taken any more
        assert len(s) == 0

    _with_loop(body)


def test_on_a_loop_it_fires_everything_then_arms_nothing() -> None:
    def body(loop: asyncio.AbstractEventLoop) -> None:
        fired: list[int] = []
        done = loop.create_future()
        t0 = time.monotonic()

        def fire(item: int, now: float) -> None:
            assert now >= t0 + item * 0.01  # the clock at firing is at or after the entry's due instant
            fired.append(item)
            if len(fired) == 4:
                done.set_result(None)

        s: Scheduler[int] = Scheduler(loop, fire)
        s.push(t0 + 30.0, 99)  # armed first, far away ...
        for i in (3, 1, 2, 0):  # ... each earlier entry re-arms the timer
            s.push(t0 + i * 0.01, i)
        loop.run_until_complete(asyncio.wait_for(done, 5.0))
        assert fired == [0, 1, 2, 3]
        assert len(s) == 1 and s.wake_at == t0 + 30.0  # the far entry is still armed, alone
        s.close()
        assert s.handle is None and len(s) == 0
        loop.run_until_complete(asyncio.sleep(0.02))
        assert fired == [0, 1, 2, 3]

        # emptied by firing, it arms nothing more: the loop has nothing of the scheduler's left to run
        s2: Scheduler[int] = Scheduler(loop, lambda item, now: fired.append(item))
        s2.push(time.monotonic(), 5)
        loop.run_until_complete(asyncio.sleep(0.02))
        assert fired[-1] == 5 and len(s2) == 0 and s2.handle is None and s2.fired == 1

    _with_loop(body)


def test_entries_spread_inside_milliseconds_take_a_pass_or_two_per_slot_not_one_per_loop_iteration() -> None:
    # uvloop counts timer delays in whole milliseconds: a sub-millisecond delay used to fire at once,
    # find nothing due yet and re-arm, so the loop spun (14 passes per request at 2,500 sessions/s).
    from pytest_peakchaos.load.engine import new_event_loop

    loop = new_event_loop()  # uvloop's loop where it is installed, as in a run
    try:
        fired: list[tuple[float, float]] = []
        t0 = time.monotonic() + 0.005
        n = 400
        done = loop.create_future()

        def fire(when: float, now: float) -> None:
            fired.append((when, now))
            if len(fired) == n and not done.done():
                done.set_result(None)

        passes = [0]

        class Counting(Scheduler[float]):
            def _service(self) -> None:
                passes[0] += 1
                super()._service()

        s = Counting(loop, fire)
        for i in range(n):  # 400 entries over 40 ms: ~10 in every 1 ms slot, at sub-millisecond offsets
            when = t0 + i * 0.0001
            s.push(when, when)
        loop.run_until_complete(asyncio.wait_for(done, 5.0))
        assert len(fired) == n
        assert all(now >= when for when, now in fired)  # never early
        assert passes[0] <= 3 * 41, passes[0]  # at most a few passes per slot (it was one per loop iteration)
        s.close()
    finally:
        loop.close()


def test_with_early_an_entry_fires_at_most_that_much_before_its_due_instant() -> None:
    def body(loop: asyncio.AbstractEventLoop) -> None:
        fired: list[tuple[str, float]] = []
        s: Scheduler[str] = Scheduler(loop, lambda item, now: fired.append((item, now)), clock=lambda: 0.0, early=0.0005)
        for name, when in [("a", 20.0002), ("b", 20.0007), ("c", 20.0013)]:
            s.push(when, name)
        assert s.service(20.0001) == 1 and fired == [("a", 20.0001)]  # 0.1 ms early: within 0.5 ms
        assert s.service(20.0001) == 0  # b is 0.6 ms away
        assert s.service(20.0003) == 1 and fired[-1] == ("b", 20.0003)
        assert s.service(20.0007) == 0 and s.service(20.0008) == 1  # c: 0.5 ms early at most
        s.close()

    _with_loop(body)

    from pytest_peakchaos.load.engine import new_event_loop

    loop = new_event_loop()
    try:  # on a real loop: every entry within [due - early, ...), in a pass or two per slot
        lateness: list[float] = []
        n = 300
        done = loop.create_future()

        def fire(when: float, now: float) -> None:
            lateness.append(now - when)
            if len(lateness) == n and not done.done():
                done.set_result(None)

        s = Scheduler(loop, fire, early=0.0005)
        t0 = time.monotonic() + 0.005
        for i in range(n):
            s.push(t0 + i * 0.0001, t0 + i * 0.0001)
        loop.run_until_complete(asyncio.wait_for(done, 5.0))
        assert min(lateness) >= -0.0005 - 1e-9
        s.close()
    finally:
        loop.close()
