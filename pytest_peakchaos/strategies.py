"""Hypothesis strategies for property-based chaos: faults, fault schedules, traffic scales, shoppers.

Every strategy *shrinks toward less*: a failing example found by hypothesis is reduced to fewer
faults, shorter windows that start at the run's beginning, the gentlest parameter values (smaller
latency, more bandwidth, more CPU, ...), the lowest traffic scale and the shortest shopper session
that still fails::

    from hypothesis import given
    from pytest_peakchaos.strategies import fault_schedules, seeds

    @given(schedule=fault_schedules("4s", max_faults=3, kinds=("latency", "down")), seed=seeds())
    def test_browse_survives(schedule, seed): ...

Strategies:

* :func:`faults` -- one fault of any kind in :data:`KINDS` (every Toxiproxy toxic, ``down``, and the
  capacity faults ``cpu`` and ``pause``), without a window;
* :func:`toxic_faults` / :func:`capacity_faults` -- the Toxiproxy toxics / the capacity faults only;
* :func:`fault_schedules` -- a :class:`~pytest_peakchaos.faults.FaultSchedule` of ``min_faults`` to
  ``max_faults`` faults whose windows fit in the run (non-overlapping and ordered, or overlapping);
* :func:`scales` -- a traffic scale factor (multiplies session arrival rates);
* :func:`shopper_sessions` -- a path through a profile's behaviour graph, from ``entry`` to ``exit``;
* :func:`seeds` -- a load seed.

Parameter ranges come from :class:`FaultBounds` (sensible defaults; override any of them). Values
are drawn on integer grids so shrunk examples are round numbers: milliseconds, bytes, hundredths of
a CPU, and windows in multiples of ``step`` seconds. Between kinds, hypothesis finds a fault with
fewer parameters simpler (``down`` before ``latency``; see :func:`faults`).

hypothesis tries the simplest example first (one fault, gentlest values, shortest window at 0 s,
seed 0). Against a live system pick bounds whose gentle end is clearly on one side of what you
test (e.g. a latency well past a timeout), or shrinking will chase a noisy threshold.

Needs ``hypothesis`` (``pip install pytest-peakchaos[dev]`` or ``pip install hypothesis``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

try:
    from hypothesis import assume
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pytest_peakchaos.strategies needs hypothesis: pip install hypothesis "
        "(or pip install 'pytest-peakchaos[dev]')"
    ) from exc

from pytest_peakchaos.faults import (
    DIRECTIONS,
    TOXIC_TYPES,
    Fault,
    FaultSchedule,
    bandwidth,
    cpu,
    down,
    latency,
    limit_data,
    pause,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)
from pytest_peakchaos.units import parse_duration

if TYPE_CHECKING:
    from pytest_peakchaos.faults import Direction, DurationLike
    from pytest_peakchaos.profiles.model import Profile

__all__ = [
    "CAPACITY_KINDS",
    "EXCLUSIVE_KINDS",
    "KINDS",
    "LINK_KINDS",
    "FaultBounds",
    "ShopperSession",
    "ShopperStep",
    "capacity_faults",
    "fault_kind",
    "fault_schedules",
    "faults",
    "scales",
    "seeds",
    "shopper_sessions",
    "toxic_faults",
]

#: Capacity faults: they act on the legacy container (docker backend only).
CAPACITY_KINDS: Final[tuple[str, ...]] = ("cpu", "pause")
#: Faults on the Toxiproxy link: every toxic type, then ``down`` (proxy disabled).
LINK_KINDS: Final[tuple[str, ...]] = (*TOXIC_TYPES, "down")
#: Every kind of fault (the default ``kinds``).
KINDS: Final[tuple[str, ...]] = (*LINK_KINDS, *CAPACITY_KINDS)
#: Kinds of which two faults may not be active at once on a link (see ``FaultSchedule``).
EXCLUSIVE_KINDS: Final[frozenset[str]] = frozenset({"down", "cpu", "pause"})

_INT_MAX: Final = 2**31 - 1


def fault_kind(fault: Fault) -> str:
    """The kind name of a fault as used by ``kinds=``: the toxic type, ``down``, ``cpu`` or ``pause``."""
    toxic_type = getattr(fault, "toxic_type", None)
    return toxic_type if isinstance(toxic_type, str) else fault.kind


# --------------------------------------------------------------------------- bounds


IntRange = tuple[int, int]


@dataclass(frozen=True)
class FaultBounds:
    """Ranges ``(low, high)`` of fault parameters drawn by the strategies (both ends included).

    Each shrinks toward its *gentler* end: latency, jitter, delays and timeouts toward ``low``;
    bandwidth, slice size, data limit and CPUs toward ``high`` (more room = less of a fault).
    Build with keywords (``FaultBounds(latency_ms=(800, 2000))``) or pass a mapping of the same
    names wherever a strategy takes ``bounds=``.
    """

    #: latency toxic: added delay (ms); shrinks toward low
    latency_ms: IntRange = (50, 2000)
    #: latency toxic: jitter (ms), never above the drawn latency; shrinks toward low
    jitter_ms: IntRange = (0, 250)
    #: bandwidth toxic: KB/s per connection; shrinks toward high
    bandwidth_kb_per_s: IntRange = (1, 1024)
    #: timeout toxic: ms until the connection is closed (0 = held open forever); shrinks toward low
    timeout_ms: IntRange = (100, 5000)
    #: reset_peer toxic: ms until the TCP reset (0 = at once); shrinks toward low
    reset_peer_ms: IntRange = (0, 1000)
    #: slow_close toxic: delay of the close (ms); shrinks toward low
    slow_close_ms: IntRange = (100, 3000)
    #: slicer toxic: average slice (bytes); shrinks toward high
    slicer_average_size: IntRange = (1, 512)
    #: slicer toxic: delay between slices (µs); shrinks toward low
    slicer_delay_us: IntRange = (0, 10_000)
    #: limit_data toxic: bytes before the connection is closed; shrinks toward high
    limit_data_bytes: IntRange = (0, 65_536)
    #: cpu fault: CPUs left to legacy (drawn in hundredths); shrinks toward high
    cpus: tuple[float, float] = (0.05, 0.5)

    def __post_init__(self) -> None:
        minimums = {
            "latency_ms": 0,
            "jitter_ms": 0,
            "bandwidth_kb_per_s": 1,
            "timeout_ms": 0,
            "reset_peer_ms": 0,
            "slow_close_ms": 0,
            "slicer_average_size": 1,
            "slicer_delay_us": 0,
            "limit_data_bytes": 0,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            ok = (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                and minimum <= value[0] <= value[1] <= _INT_MAX
            )
            if not ok:
                raise ValueError(
                    f"FaultBounds.{name}: expected (low, high) whole numbers with "
                    f"{minimum} <= low <= high <= {_INT_MAX}, got {value!r}"
                )
        c = self.cpus
        if not (
            isinstance(c, tuple)
            and len(c) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in c)
            and 0.01 <= c[0] <= c[1]
            and math.floor(c[1] * 100 + 1e-9) >= math.ceil(c[0] * 100 - 1e-9)
        ):
            raise ValueError(
                f"FaultBounds.cpus: expected (low, high) CPUs with 0.01 <= low <= high "
                f"(drawn in hundredths), got {c!r}"
            )

    @classmethod
    def of(cls, bounds: FaultBounds | Mapping[str, Any] | None) -> FaultBounds:
        """``bounds`` as a :class:`FaultBounds`: ``None`` gives the defaults; a mapping overrides them."""
        if bounds is None:
            return cls()
        if isinstance(bounds, FaultBounds):
            return bounds
        if not isinstance(bounds, Mapping):
            raise ValueError(f"bounds: expected a FaultBounds or a mapping of its fields, got {bounds!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(bounds) - set(names))
        if unknown:
            raise ValueError(f"bounds: unknown key(s) {', '.join(map(str, unknown))}; valid keys: {', '.join(names)}")
        return cls(**{k: tuple(v) for k, v in bounds.items()})


BoundsLike = FaultBounds | Mapping[str, Any] | None


def _low_first(lo: int, hi: int) -> SearchStrategy[int]:
    """Integers in ``[lo, hi]`` shrinking toward ``lo``."""
    return st.integers(lo, hi)


def _high_first(lo: int, hi: int) -> SearchStrategy[int]:
    """Integers in ``[lo, hi]`` shrinking toward ``hi``."""
    return st.integers(0, hi - lo).map(lambda d: hi - d)


# --------------------------------------------------------------------------- single faults


def _check_kinds(kinds: Iterable[str], valid: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = (kinds,)
    out: list[str] = []
    for k in kinds:
        if k not in valid:
            raise ValueError(f"{what}: unknown kind {k!r}; valid kinds: {', '.join(valid)}")
        if k not in out:
            out.append(k)
    if not out:
        raise ValueError(f"{what}: needs at least one kind; valid kinds: {', '.join(valid)}")
    return tuple(out)


def _check_directions(directions: Iterable[str]) -> tuple[Direction, ...]:
    if isinstance(directions, str):
        directions = (directions,)
    out: list[Direction] = []
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"directions: unknown direction {d!r}; valid directions: downstream, upstream, both")
        if d not in out:
            out.append(cast("Direction", d))
    if not out:
        raise ValueError("directions: needs at least one of downstream, upstream, both")
    return tuple(out)


def _kind_params(kind: str, b: FaultBounds) -> tuple[int, int, int]:
    """Upper ends of the (up to three) parameter draws of ``kind``: each is an offset ``0..end``
    from the gentle end of its range; an end of 0 means no draw."""
    if kind == "latency":
        return b.latency_ms[1] - b.latency_ms[0], b.jitter_ms[1] - b.jitter_ms[0], 0
    if kind == "bandwidth":
        return b.bandwidth_kb_per_s[1] - b.bandwidth_kb_per_s[0], 0, 0
    if kind == "timeout":
        return b.timeout_ms[1] - b.timeout_ms[0], 0, 0
    if kind == "reset_peer":
        return b.reset_peer_ms[1] - b.reset_peer_ms[0], 0, 0
    if kind == "slow_close":
        return b.slow_close_ms[1] - b.slow_close_ms[0], 0, 0
    if kind == "slicer":
        lo, hi = b.slicer_average_size
        return hi - lo, hi - 1, b.slicer_delay_us[1] - b.slicer_delay_us[0]
    if kind == "limit_data":
        return b.limit_data_bytes[1] - b.limit_data_bytes[0], 0, 0
    if kind == "cpu":
        return _cpu_hundredths(b)[1] - _cpu_hundredths(b)[0], 0, 0
    return 0, 0, 0  # down, pause


def _cpu_hundredths(b: FaultBounds) -> tuple[int, int]:
    return math.ceil(b.cpus[0] * 100 - 1e-9), math.floor(b.cpus[1] * 100 + 1e-9)


def _build(kind: str, b: FaultBounds, p: Sequence[int], direction: Direction) -> Fault:
    """The fault of ``kind`` for parameter offsets ``p`` (0 = the gentle end of each range)."""
    if kind == "latency":
        ms = b.latency_ms[0] + p[0]
        return latency(ms, min(b.jitter_ms[0] + p[1], ms), direction=direction)
    if kind == "bandwidth":
        return bandwidth(b.bandwidth_kb_per_s[1] - p[0], direction=direction)
    if kind == "timeout":
        return timeout(b.timeout_ms[0] + p[0], direction=direction)
    if kind == "reset_peer":
        return reset_peer(b.reset_peer_ms[0] + p[0], direction=direction)
    if kind == "slow_close":
        return slow_close(b.slow_close_ms[0] + p[0], direction=direction)
    if kind == "slicer":
        size = b.slicer_average_size[1] - p[0]
        return slicer(size, min(p[1], size - 1), b.slicer_delay_us[0] + p[2], direction=direction)
    if kind == "limit_data":
        return limit_data(b.limit_data_bytes[1] - p[0], direction=direction)
    if kind == "cpu":
        return cpu((_cpu_hundredths(b)[1] - p[0]) / 100)
    if kind == "pause":
        return pause()
    if kind == "down":
        return down()
    raise ValueError(f"unknown fault kind {kind!r}")  # pragma: no cover - kinds are checked before


def faults(
    *,
    kinds: Iterable[str] = KINDS,
    directions: Iterable[str] = ("downstream", "upstream", "both"),
    bounds: BoundsLike = None,
) -> SearchStrategy[Fault]:
    """One fault (no window) of one of ``kinds`` (default: every kind in :data:`KINDS`).

    Shrinks toward the first of ``directions`` and the gentle end of each :class:`FaultBounds`
    range. Between kinds, hypothesis counts a fault with fewer parameters as simpler (``down`` and
    ``pause`` have none; ``cpu`` one; ``bandwidth``, ``timeout``, ``reset_peer``, ``slow_close`` and
    ``limit_data`` a value and a direction; ``latency`` three; ``slicer`` four), and among equals
    the one earlier in ``kinds``: a failure that *any* fault causes shrinks to ``down`` when
    ``down`` is among the kinds. ``cpu``/``pause`` need a capacity target
    (the docker backend); leave them out of ``kinds`` for the local or external backends.
    """
    chosen = _check_kinds(kinds, KINDS, "faults")
    b = FaultBounds.of(bounds)
    dirs = _check_directions(directions)
    return st.one_of(*(_kind_strategy(k, b, dirs) for k in chosen))


def _kind_strategy(kind: str, b: FaultBounds, dirs: tuple[Direction, ...]) -> SearchStrategy[Fault]:
    """Faults of one kind: one draw per parameter that can vary (0 = its gentle end), then the
    direction (toxics only). No draw is made for a value that cannot vary."""
    ends = _kind_params(kind, b)
    toxic = kind in TOXIC_TYPES

    @st.composite
    def _fault(draw: st.DrawFn) -> Fault:
        p = [draw(st.integers(0, end)) if end > 0 else 0 for end in ends]
        direction = dirs[draw(st.integers(0, len(dirs) - 1))] if toxic and len(dirs) > 1 else dirs[0]
        return _build(kind, b, p, direction)

    return _fault()


def toxic_faults(
    *,
    types: Iterable[str] = TOXIC_TYPES,
    directions: Iterable[str] = ("downstream", "upstream", "both"),
    bounds: BoundsLike = None,
) -> SearchStrategy[Fault]:
    """One Toxiproxy toxic of one of ``types`` (default: every toxic type), no window."""
    return faults(kinds=_check_kinds(types, TOXIC_TYPES, "toxic_faults"), directions=directions, bounds=bounds)


def capacity_faults(*, kinds: Iterable[str] = CAPACITY_KINDS, bounds: BoundsLike = None) -> SearchStrategy[Fault]:
    """One capacity fault on the legacy container: ``cpu`` (a CPU quota) or ``pause``, no window."""
    return faults(kinds=_check_kinds(kinds, CAPACITY_KINDS, "capacity_faults"), bounds=bounds)


# --------------------------------------------------------------------------- schedules


def _steps(value: DurationLike, step: float, what: str, *, up: bool) -> int:
    seconds = parse_duration(value, what=what)
    if not math.isfinite(seconds):
        raise ValueError(f"{what}: must be finite, got {value!r}")
    ratio = seconds / step
    return math.ceil(ratio - 1e-9) if up else math.floor(ratio + 1e-9)


def fault_schedules(
    duration: DurationLike,
    *,
    max_faults: int = 3,
    min_faults: int = 1,
    overlapping: bool = True,
    kinds: Iterable[str] = KINDS,
    directions: Iterable[str] = ("downstream", "upstream", "both"),
    bounds: BoundsLike = None,
    elements: SearchStrategy[Fault] | None = None,
    min_length: DurationLike = 1.0,
    max_length: DurationLike | None = None,
    step: DurationLike = 0.5,
) -> SearchStrategy[FaultSchedule]:
    """A :class:`FaultSchedule` for a run of ``duration``: ``min_faults`` to ``max_faults`` faults,
    each with a window (``start``, ``length``) inside the run.

    * Windows are multiples of ``step`` seconds, at least ``min_length`` (and at most
      ``max_length``) long.
    * ``overlapping=False``: windows are ordered and disjoint (one fault at a time; faults are
      listed in time order). ``overlapping=True``: toxics may overlap anything; ``down``, ``cpu``
      and ``pause`` never overlap a fault of their own kind (``FaultSchedule`` forbids it; extra
      ones that cannot fit are dropped).
    * Faults come from ``elements`` if given, else from :func:`faults` with ``kinds``,
      ``directions`` and ``bounds``.

    Shrinks toward fewer faults, windows starting at 0 and lasting ``min_length``, and gentler
    faults (see :func:`faults`).
    """
    step_s = parse_duration(step, what="fault_schedules: step")
    if not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"fault_schedules: step must be a positive duration, got {step!r}")
    run_s = parse_duration(duration, what="fault_schedules: duration")
    if not (math.isfinite(run_s) and run_s > 0):
        raise ValueError(f"fault_schedules: duration must be a positive finite duration, got {duration!r}")
    total = _steps(run_s, step_s, "fault_schedules: duration", up=False)
    shortest = max(1, _steps(min_length, step_s, "fault_schedules: min_length", up=True))
    if shortest > total:
        raise ValueError(
            f"fault_schedules: min_length {min_length!r} (rounded up to {shortest * step_s:g}s, a multiple of "
            f"step {step_s:g}s) does not fit in the run of {run_s:g}s"
        )
    longest = total if max_length is None else _steps(max_length, step_s, "fault_schedules: max_length", up=False)
    if longest < shortest:
        raise ValueError(
            f"fault_schedules: max_length {max_length!r} is shorter than min_length {min_length!r} "
            f"(in steps of {step_s:g}s)"
        )
    longest = min(longest, total)
    for name, value in (("max_faults", max_faults), ("min_faults", min_faults)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"fault_schedules: {name} must be a whole number >= 0, got {value!r}")
    if min_faults > max_faults:
        raise ValueError(f"fault_schedules: min_faults ({min_faults}) is more than max_faults ({max_faults})")
    fit = total // shortest
    if not overlapping and max_faults > fit:
        raise ValueError(
            f"fault_schedules: {max_faults} non-overlapping faults of at least {shortest * step_s:g}s do not fit "
            f"in {run_s:g}s; at most {fit} do (lower max_faults or min_length, or allow overlapping)"
        )
    if elements is None:
        chosen = _check_kinds(kinds, KINDS, "fault_schedules")
        if min_faults > fit and set(chosen) <= EXCLUSIVE_KINDS:
            raise ValueError(
                f"fault_schedules: {min_faults} faults of kinds {', '.join(chosen)} (which may not overlap their own "
                f"kind) of at least {shortest * step_s:g}s do not fit in {run_s:g}s"
            )
        elements = faults(kinds=chosen, directions=directions, bounds=bounds)

    def at(steps: int) -> float:
        return round(steps * step_s, 9)

    def _window(draw: st.DrawFn, cursor: int, reserve: int) -> tuple[int, int] | None:
        """A window starting at or after ``cursor`` that leaves room for ``reserve`` more minimal
        ones; the gap shrinks toward 0 and the length toward the shortest."""
        slack = total - cursor - shortest * (reserve + 1)
        # the same two draws even when there is no room, so that a long window never looks
        # simpler to hypothesis by sparing the draws of faults that no longer fit after it
        gap = draw(st.integers(0, max(slack, 0)))
        length = shortest + draw(st.integers(0, max(min(slack - gap, longest - shortest), 0)))
        if slack < 0:
            return None
        return cursor + gap, length

    @st.composite
    def _schedules(draw: st.DrawFn) -> FaultSchedule:
        # ``max_faults`` slots at fixed places in hypothesis' choice sequence: first one "is this
        # fault there?" flag per slot, then every slot's fault and window, drawn whether or not
        # the slot is used. Dropping a fault is then a single flag going to False (a step the
        # shrinker always tries), and it moves nothing else: the remaining faults keep their values.
        used = [draw(st.booleans()) for _ in range(max_faults)]
        for i in reversed(range(max_faults)):  # too few: the last free slots fill up to min_faults
            if sum(used) >= min_faults:
                break
            used[i] = True
        placed: list[tuple[int, int, Fault]] = []  # (start step, length steps, fault)
        cursors: dict[str, int] = {}  # end of the last window on each track
        for i in range(max_faults):
            fault = draw(elements)
            kind = fault_kind(fault)
            window: tuple[int, int] | None
            if not overlapping:  # one track for all, leaving room for the used slots after this one
                track = ""
                window = _window(draw, cursors.get(track, 0), sum(used[i + 1 :]))
            elif kind in EXCLUSIVE_KINDS:  # a track per kind: never overlaps its own kind
                track = kind
                window = _window(draw, cursors.get(track, 0), 0)
            else:  # toxics go anywhere
                track = "*"
                start = draw(st.integers(0, total - shortest))
                window = (start, shortest + draw(st.integers(0, min(total - start, longest) - shortest)))
            if not used[i] or window is None:  # unused, or no room left on its track
                continue
            if track != "*":
                cursors[track] = window[0] + window[1]
            placed.append((window[0], window[1], fault))
        assume(len(placed) >= min_faults)
        ordered = sorted(enumerate(placed), key=lambda item: (item[1][0], item[0]))
        return FaultSchedule(
            [dataclasses.replace(f, start=at(start), length=at(length)) for _, (start, length, f) in ordered],
            run_s,
        )

    return _schedules()


# --------------------------------------------------------------------------- load knobs


def scales(lo: float = 0.5, hi: float = 4.0) -> SearchStrategy[float]:
    """A traffic scale factor in ``[lo, hi]`` (multiplies session arrival rates); shrinks to ``lo``."""
    for name, value in (("lo", lo), ("hi", hi)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"scales: {name} must be a finite number >= 0, got {value!r}")
    if lo > hi:
        raise ValueError(f"scales: lo ({lo!r}) is more than hi ({hi!r})")
    low, high = float(lo), float(hi)
    return st.floats(0.0, high - low, allow_nan=False, allow_infinity=False).map(
        lambda x: min(high, round(low + x, 4))
    )


def seeds() -> SearchStrategy[int]:
    """A load seed (same seed, same shopper paths); shrinks to 0."""
    return st.integers(0, _INT_MAX)


# --------------------------------------------------------------------------- shopper sessions


@dataclass(frozen=True)
class ShopperStep:
    """One action of a generated shopper session; ``sku`` for product and cart actions."""

    action: str
    sku: int | None = None

    def describe(self) -> str:
        return self.action if self.sku is None else f"{self.action}({self.sku})"


@dataclass(frozen=True)
class ShopperSession:
    """A path through a profile's behaviour graph: ``entry``, the ``steps``, ``exit``.

    Only transitions with a non-zero probability are taken; ``remove_from_cart`` and ``checkout``
    only with something in the cart (the load engine's rule); a removal removes a line that is in
    the cart; ``add_to_cart`` right after ``view_product`` adds the product just viewed.
    """

    profile: str
    steps: tuple[ShopperStep, ...]
    legacy_actions: frozenset[str] = frozenset()

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(s.action for s in self.steps)

    @property
    def path(self) -> tuple[str, ...]:
        """The states visited, ``("entry", ..., "exit")``."""
        return ("entry", *self.actions, "exit")

    @property
    def legacy_calls(self) -> int:
        """Steps whose request reaches legacy (the profile's ``legacy_actions``)."""
        return sum(1 for a in self.actions if a in self.legacy_actions)

    def describe(self) -> str:
        return " → ".join(["entry", *(s.describe() for s in self.steps), "exit"])

    def __len__(self) -> int:
        return len(self.steps)


_WEIGHT_GRID: Final = 10_000


def _exact_lengths(
    transitions: Mapping[str, Mapping[str, float]], needs_cart: frozenset[str], limit: int
) -> list[set[str]]:
    """``can[r]``: the states from which a session can end at ``exit`` after exactly ``r`` more
    actions, never entering a state that needs a cart (so it holds whatever the cart holds)."""
    can: list[set[str]] = [{s for s, row in transitions.items() if row.get("exit", 0.0) > 0}]
    for _ in range(limit):
        prev = can[-1]
        can.append(
            {
                s
                for s, row in transitions.items()
                if any(p > 0 and t != "exit" and t not in needs_cart and t in prev for t, p in row.items())
            }
        )
    return can


def shopper_sessions(
    profile: Profile | str = "double11",
    *,
    max_actions: int | None = 40,
) -> SearchStrategy[ShopperSession]:
    """A shopper session walking ``profile``'s behaviour graph from ``entry`` to ``exit``.

    A session first draws its length (1 to ``max_actions`` actions, default 40; ``None``: the
    profile's own ``max_actions``), then walks that many steps, each along a transition of
    non-zero probability drawn in proportion to the profile's probabilities among the targets
    from which ``exit`` can still be reached in the steps left; ``remove_from_cart`` and
    ``checkout`` only with something in the cart (the load engine's rule). Products come from the
    profile's catalogue.

    Shrinks toward shorter sessions, each row's likeliest targets and low skus (the hottest deals).
    Shrinking is a local search: it finds a short session with the property, not always the
    shortest (e.g. a session that must pay shrinks to 4-20 actions, the shortest being 4).
    """
    # via pytest_peakchaos.load, which imports the profile modules in an order that always works
    from pytest_peakchaos.load import load_profile
    prof = load_profile(profile)
    behaviour = prof.behaviour
    limit = behaviour.max_actions if max_actions is None else max_actions
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"shopper_sessions: max_actions must be a whole number >= 1 or None, got {max_actions!r}")
    limit = min(limit, behaviour.max_actions)
    transitions = behaviour.transitions
    binds = prof.bindings
    needs_cart = frozenset(a for a, b in binds.items() if b.needs_cart)
    cart_op = {a: b.cart for a, b in binds.items() if b.cart}
    draws_sku = frozenset(a for a, b in binds.items() if "sku" in b.draw)
    can = _exact_lengths(transitions, needs_cart, limit)
    lengths = [n for n in range(limit + 1) if n >= 1 and "entry" in can[n]]
    if not lengths:
        raise ValueError(
            f"shopper_sessions: profile {prof.name!r} has no path from entry to exit of at most {limit} actions; "
            "raise max_actions"
        )
    order = {s: i for i, s in enumerate(("entry", *behaviour.actions, "exit"))}
    # each row's targets, likeliest first (a draw of 0 picks the likeliest), with integer weights
    rows: dict[str, list[tuple[str, int]]] = {}
    for src, row in transitions.items():
        targets = sorted((t for t, p in row.items() if p > 0 and t != "exit"), key=lambda t: (-row[t], order[t]))
        rows[src] = [(t, max(1, round(row[t] * _WEIGHT_GRID))) for t in targets]
    catalog = prof.catalog
    first_sku, last_sku = catalog.first_sku, catalog.first_sku + catalog.products - 1

    @st.composite
    def _sessions(draw: st.DrawFn) -> ShopperSession:
        wanted = draw(st.integers(lengths[0], lengths[-1]))
        size = max((n for n in lengths if n <= wanted), default=lengths[0])
        steps: list[ShopperStep] = []
        cart: list[int] = []
        state = "entry"
        last_viewed: int | None = None
        for n in range(size):
            left = size - n - 1  # actions after this one
            choices = [(t, w) for t, w in rows[state] if t in can[left] and (cart or t not in needs_cart)]
            pick = draw(st.integers(0, sum(w for _, w in choices) - 1))
            nxt = choices[-1][0]
            for t, w in choices:
                if pick < w:
                    nxt = t
                    break
                pick -= w
            sku: int | None = None
            op = cart_op.get(nxt)
            if nxt in draws_sku:
                sku = last_viewed = draw(st.integers(first_sku, last_sku))
            if op == "add":
                if sku is None:
                    sku = last_viewed if state in draws_sku and last_viewed is not None else draw(
                        st.integers(first_sku, last_sku)
                    )
                if sku not in cart:
                    cart.append(sku)
            elif op == "remove":
                sku = draw(st.sampled_from(cart))
                cart.remove(sku)
            elif op == "clear":
                cart.clear()
            steps.append(ShopperStep(nxt, sku))
            state = nxt
        return ShopperSession(prof.name, tuple(steps), frozenset(prof.legacy_actions))

    return _sessions()
