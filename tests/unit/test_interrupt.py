"""The signal handler's two modes (held: only a flag; not held: KeyboardInterrupt), in-process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from pytest_peakchaos import interrupt


@pytest.fixture
def installed() -> Iterator[None]:
    before = {sig: signal.getsignal(sig) for sig in interrupt.SIGNALS}
    ours = signal.getsignal(signal.SIGINT) is interrupt._handler  # this session's plugin installed it
    assert interrupt.install()
    interrupt.reset()
    try:
        yield
    finally:
        if not ours:
            interrupt.uninstall()
        interrupt.reset()
        assert {sig: signal.getsignal(sig) for sig in interrupt.SIGNALS} == before


def _deliver(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    for _ in range(100):  # the handler runs at the next bytecode boundary of the main thread
        time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_outside_a_held_section_the_signal_interrupts_at_once(installed: None, sig: signal.Signals) -> None:
    with pytest.raises(KeyboardInterrupt, match=sig.name):
        _deliver(sig)
    assert interrupt.requested() and interrupt.signal_name() == sig.name


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_inside_a_held_section_it_only_asks_to_stop_and_release_interrupts(installed: None, sig: signal.Signals) -> None:
    interrupt.hold()
    try:
        _deliver(sig)  # no exception here: the load engine polls requested()
        assert interrupt.requested()
    finally:
        with pytest.raises(KeyboardInterrupt):
            interrupt.release()


def test_release_without_a_signal_is_quiet(installed: None) -> None:
    interrupt.hold()
    interrupt.release()
    assert not interrupt.requested()


def test_hold_installs_for_itself_when_nobody_did() -> None:
    if signal.getsignal(signal.SIGINT) is interrupt._handler:
        interrupt.uninstall()  # this session's own handler: put back below
        try:
            test_hold_installs_for_itself_when_nobody_did()
        finally:
            interrupt.install()
        return
    before = signal.getsignal(signal.SIGTERM)
    interrupt.hold()
    try:
        assert signal.getsignal(signal.SIGTERM) is not before
    finally:
        interrupt.release()
    assert signal.getsignal(signal.SIGTERM) is before
    assert not interrupt.requested()
