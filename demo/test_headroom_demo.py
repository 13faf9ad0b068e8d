"""The demo's headroom section (`make demo`): the Double-11 lesson as a headroom ratio.

On the naive reference shop, with legacy 3 s slow in the middle of every probe, how many
sessions/s can it take when the shoppers behave like on a normal day, and how many when they
behave like on a sale day? Both searches go into reports/peakchaos.json (``headroom[]``) and the
HTML page, whose headroom overview shows the second search's graceful rate as a multiple of the
first's: tests that misjudge behaviour overstate headroom.
"""

from __future__ import annotations

from tests.acceptance.conftest import NAIVE_LEGACY_ACTIONS
from tests.acceptance.conftest import naive_stack as naive_stack  # noqa: F401 - the fixture, for this folder
from tests.acceptance.test_headroom import LESSON_PROBE, assert_the_lesson, search


def test_double11_shoppers_have_far_less_headroom_than_normal_ones(peakchaos, naive_stack):  # noqa: F811
    common = {"rates": (1, 32), "resolution": 0.5, "repeat": 1, "budget": "150s", "max_probes": 7,
              "legacy_actions": NAIVE_LEGACY_ACTIONS, **LESSON_PROBE}
    normal = search(peakchaos, naive_stack, "normal", **common)
    d11 = search(peakchaos, naive_stack, "double11", **common)
    ratio = assert_the_lesson(normal, d11)
    print(f"\nheadroom of the naive shop under legacy latency: normal shoppers: {normal.summary()}")
    print(f"                                               double11 shoppers: {d11.summary()}")
    print(f"normal / double11 graceful rate: {ratio:.1f}x: a test with normal-day shoppers overstates the headroom that much")
