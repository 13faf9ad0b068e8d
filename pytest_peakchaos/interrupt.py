"""Clean stops on SIGINT and SIGTERM, with uvloop or plain asyncio; a second signal exits at once.

A signal in the middle of an experiment must not land as a ``KeyboardInterrupt`` inside the event
loop: uvloop then blocks in ``loop.close()`` for over a minute with a fault still on the link. So:

* :func:`install` (the plugin calls it at configure; library users may call it themselves) puts
  one handler on SIGINT and SIGTERM. The first signal sets :func:`requested` and, unless a
  :func:`held` section is running, raises ``KeyboardInterrupt`` right away (pytest's own
  interrupted path: exit code 2, fixtures torn down).
* :func:`hold` / :func:`release` bracket the load and its fault schedule. Inside, the signal only
  sets the flag: the load engine sees it (``run_engine``'s stop flag) and stops within ~0.5 s, the
  schedule is stopped and the link reset, and :func:`release` raises ``KeyboardInterrupt`` then.
* A second signal skips the rest of teardown: it prints what is left (from the callbacks given
  to :func:`on_force`) and how to prune it, and exits with status 2 at once.

Plain Python, no pytest. Only the main thread can install handlers; elsewhere everything here is
a no-op apart from the flag.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["install", "installed", "uninstall", "hold", "release", "requested", "signal_name", "on_force", "INTERRUPTED_EXIT"]

#: pytest's ExitCode.INTERRUPTED
INTERRUPTED_EXIT = 2
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_lock = threading.Lock()
_flag = threading.Event()
_state: dict[str, Any] = {"signal": None, "count": 0, "holds": 0, "previous": {}, "temporary": False, "fd": None}
_force_reports: list[Callable[[], list[str]]] = []


def _say(line: str) -> None:
    """One line to the terminal: the stderr saved at install, past pytest's output capturing."""
    fd = _state.get("fd")
    try:
        if fd is not None:
            os.write(fd, (line + "\n").encode(errors="replace"))
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):  # a closed stream must not stop the exit
        pass


def signal_name(signum: int | None = None) -> str:
    num = _state["signal"] if signum is None else signum
    if num is None:
        return "no signal"
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def installed() -> bool:
    """Whether :func:`install` put the handlers in place (and :func:`uninstall` did not yet remove them)."""
    return bool(_state["previous"])


def requested() -> bool:
    """True once SIGINT or SIGTERM arrived (the load engine polls this)."""
    return _flag.is_set()


def _handler(signum: int, frame: FrameType | None) -> None:
    _state["count"] += 1
    if _state["count"] >= 2:
        _force_exit(signum)
        return
    _state["signal"] = signum
    _flag.set()
    if _state["holds"] > 0:
        _say(f"[peakchaos] {signal_name(signum)}: stopping the load, reverting faults, then tearing down "
             "(again to exit at once)")
        return
    _say(f"[peakchaos] {signal_name(signum)}: interrupted; tearing down (again to exit at once)")
    raise KeyboardInterrupt(signal_name(signum))


def _force_exit(signum: int) -> None:
    lines = [f"[peakchaos] second {signal_name(signum)}: exiting now without teardown"]
    for report in list(_force_reports):
        try:
            lines.extend(report())
        except Exception as exc:  # noqa: BLE001
            lines.append(f"  (could not list what is left: {exc})")
    for line in lines:
        _say(line)
    os._exit(INTERRUPTED_EXIT)


def on_force(report: Callable[[], list[str]]) -> Callable[[], None]:
    """Register ``report`` (lines: what is left, how to prune) for a forced exit; returns an unregister."""
    _force_reports.append(report)

    def remove() -> None:
        if report in _force_reports:
            _force_reports.remove(report)

    return remove


def install() -> bool:
    """Handle SIGINT and SIGTERM as described above (main thread only). False when not possible."""
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        if _state["previous"]:
            return True
        _flag.clear()
        _state.update(signal=None, count=0, temporary=False)
        try:
            _state["fd"] = os.dup(2)
        except OSError:
            _state["fd"] = None
        for sig in SIGNALS:
            _state["previous"][sig] = signal.getsignal(sig)
            signal.signal(sig, _handler)
    return True


def uninstall() -> None:
    """Restore the handlers that were there before :func:`install`."""
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        for sig, previous in _state["previous"].items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        _state["previous"] = {}
        fd, _state["fd"] = _state.get("fd"), None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def hold() -> None:
    """Enter a section that a signal must not cut (load + fault schedule): the signal only asks to stop.

    Installs the handlers for the section when nobody did (library use from a script).
    """
    if not _state["previous"] and install():
        _state["temporary"] = True
    _state["holds"] += 1


def release() -> None:
    """Leave the section; ``KeyboardInterrupt`` now if a signal arrived meanwhile."""
    _state["holds"] = max(0, _state["holds"] - 1)
    if _state["holds"] == 0 and _state["temporary"]:
        _state["temporary"] = False
        uninstall()
    if _state["holds"] == 0 and _flag.is_set():
        raise KeyboardInterrupt(signal_name())


def reset() -> None:
    """Forget an earlier signal (tests; a new session)."""
    _flag.clear()
    _state.update(signal=None, count=0)
