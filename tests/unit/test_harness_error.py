"""HarnessError carries what broke as ``problem``, apart from its message (stack/health.py)."""

from __future__ import annotations

import pickle

from pytest_peakchaos.stack.base import StackError
from pytest_peakchaos.stack.health import HarnessError


def test_the_problem_is_an_attribute_and_the_message_says_there_is_no_verdict() -> None:
    e = HarnessError("the Toxiproxy container peakchaos-pc-1-toxiproxy is exited (exit code 137)")
    assert e.problem == "the Toxiproxy container peakchaos-pc-1-toxiproxy is exited (exit code 137)"
    assert str(e) == "harness error (no verdict on the shop): " + e.problem
    assert isinstance(e, StackError)


def test_a_whole_message_can_replace_the_prefixed_one_and_both_survive_pickling() -> None:
    e = HarnessError("the engine does not answer", "not run: the harness broke earlier in the session: the engine does not answer")
    assert e.problem == "the engine does not answer"
    assert str(e).startswith("not run: ")
    for err in (e, HarnessError("Toxiproxy does not answer")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is HarnessError and back.problem == err.problem and str(back) == str(err)
