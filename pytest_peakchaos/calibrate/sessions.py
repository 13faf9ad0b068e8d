"""Sessions from a stream of requests, and what they do, in memory that does not grow with the log.

A session is the requests of one session id (a cookie or session field) or, without one, of one
client address + user agent, until a gap longer than the inactivity ``timeout``. Per session the
accumulator counts transitions ``entry -> first state``, ``state -> next state`` and ``last state
-> exit``, and the think time of each step: the gap from the end of a request to the start of the
next one (a step's think time belongs to the state being left).

Edges of the log are handled so they bias nothing:

* a session whose first request comes within ``timeout`` of the log's start may have begun
  before it: its ``entry`` transition is not counted (``edge_sessions_left``);
* a request within ``timeout`` (plus the longest request seen, since lines are written when
  requests end) of the log's end has an undecided outcome (next request or exit): its outgoing
  transition is not counted, whatever followed (counts are held per second for that window and
  dropped at the end). Dropping by time, not by outcome, keeps the rows unbiased.

Memory: the open sessions (bounded by concurrent shoppers, not by the log), one reservoir of think
times per state (``reservoir`` samples, seeded), per-second arrival counts (re-binned coarser past
200 000 buckets), the pending last ``timeout`` of transition counts, and a reservoir of whole
sessions for behaviour mixes.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .logs import Hit

__all__ = ["ENTRY", "EXIT", "Observed", "Sessioniser"]

ENTRY = -1
EXIT = -2
OTHER = "other"
MAX_KEYS = 5000


@dataclass
class ThinkSamples:
    n: int = 0
    total: float = 0.0
    sample: list[float] = field(default_factory=list)


@dataclass
class Observed:
    """What the stream showed (before fitting)."""

    keys: list[str]  # state keys by index
    visits: list[int]
    transitions: dict[tuple[int, int], int]  # (from, to) -> n; from ENTRY, to EXIT
    think: list[ThinkSamples]
    arrivals: dict[int, int]  # bucket index -> sessions started
    bucket_s: float
    t_first: float
    t_last: float
    last_arrival: float  # start of the last session to begin
    sessions: int
    requests: int
    edge_sessions_left: int  # entry not counted
    entry_left: dict[int, int]  # their first states (a fallback when no entry was decided)
    edge_steps_right: int  # outgoing transition not counted
    split_by_timeout: int
    with_session_id: int
    session_sample: list[tuple[int, ...]]  # complete sessions (reservoir), visits by key index
    hits_unmatched: int
    unmatched_examples: list[str]


class _Open:
    """One session in progress."""

    __slots__ = ("state", "last_end", "left", "seq")

    def __init__(self, state: int, last_end: float, left: bool, seq: list[int] | None) -> None:
        self.state = state
        self.last_end = last_end
        self.left = left
        self.seq = seq


class Sessioniser:
    """Feed hits with :meth:`add`; :meth:`finish` returns the :class:`Observed` counts."""

    def __init__(
        self,
        state_of: Callable[[str, str], str | None],
        *,
        timeout: float,
        reservoir: int = 20_000,
        session_reservoir: int = 0,
        seed: int = 0,
        use_session_id: bool = True,
    ) -> None:
        self.state_of = state_of
        self.timeout = float(timeout)
        self.reservoir = reservoir
        self.session_reservoir = session_reservoir
        self.rng = random.Random(seed)
        self.use_session_id = use_session_id
        self.index: dict[str, int] = {}
        self.keys: list[str] = []
        self.visits: list[int] = []
        self.think: list[ThinkSamples] = []
        self.committed: dict[tuple[int, int], int] = {}
        self.pending: dict[int, dict[tuple[int, int], int]] = {}
        self.commit_upto = -(1 << 62)  # seconds below this are committed
        self.open: OrderedDict[object, _Open] = OrderedDict()
        self.arrivals: dict[int, int] = {}
        self.bucket_s = 1.0
        self.t_first: float | None = None
        self.t_max = float("-inf")
        self.last_arrival = float("-inf")
        self.next_house = float("-inf")
        self.grace = 0.0  # the longest request seen (capped at the timeout)
        self.sessions = 0
        self.requests = 0
        self.edge_left = 0
        self.entry_left: dict[int, int] = {}
        self.edge_right = 0
        self.splits = 0
        self.with_sid = 0
        self.sample: list[tuple[int, ...]] = []
        self.sample_seen = 0
        self.unmatched = 0
        self.unmatched_examples: list[str] = []

    # -- helpers ----------------------------------------------------------------------------------
    def _key(self, key: str) -> int:
        i = self.index.get(key)
        if i is None:
            if len(self.keys) >= MAX_KEYS and key != OTHER:
                return self._key(OTHER)
            i = self.index[key] = len(self.keys)
            self.keys.append(key)
            self.visits.append(0)
            self.think.append(ThinkSamples())
        return i

    def _count(self, frm: int, to: int, at: float) -> None:
        """Count a transition out of a request that ended at ``at``."""
        sec = int(at)
        if sec < self.commit_upto:
            c = self.committed
        else:
            c = self.pending.get(sec)  # type: ignore[assignment]
            if c is None:
                c = self.pending[sec] = {}
        c[(frm, to)] = c.get((frm, to), 0) + 1

    def _commit(self) -> None:
        """Seconds older than the last ``timeout`` (+ the longest request, + 1 s) are decided: fold
        them into the totals."""
        limit = int(self.t_max - self.timeout - self.grace - 1.0)
        if limit <= self.commit_upto:
            return
        pend = self.pending
        c = self.committed
        if limit - self.commit_upto <= len(pend):
            secs: Iterable[int] = range(self.commit_upto, limit)
        else:
            secs = sorted(k for k in pend if k < limit)
        for sec in secs:
            d = pend.pop(sec, None)
            if d:
                for k, n in d.items():
                    c[k] = c.get(k, 0) + n
        self.commit_upto = limit

    def _think(self, state: int, gap: float) -> None:
        ts = self.think[state]
        ts.n += 1
        ts.total += gap
        if len(ts.sample) < self.reservoir:
            ts.sample.append(gap)
        else:
            j = self.rng.randrange(ts.n)
            if j < self.reservoir:
                ts.sample[j] = gap

    def _arrive(self, t: float) -> None:
        assert self.t_first is not None
        b = int((t - self.t_first) / self.bucket_s) if t >= self.t_first else 0
        self.arrivals[b] = self.arrivals.get(b, 0) + 1
        if len(self.arrivals) > 200_000:
            self.bucket_s *= 2
            merged: dict[int, int] = {}
            for k, v in self.arrivals.items():
                merged[k // 2] = merged.get(k // 2, 0) + v
            self.arrivals = merged

    def _close(self, sess: _Open, *, exit_known: bool) -> None:
        if exit_known:
            self._count(sess.state, EXIT, sess.last_end)
            if sess.seq is not None and not sess.left:
                self._keep_session(tuple(sess.seq))
        else:
            self.edge_right += 1

    def _keep_session(self, seq: tuple[int, ...]) -> None:
        self.sample_seen += 1
        if len(self.sample) < self.session_reservoir:
            self.sample.append(seq)
        else:
            j = self.rng.randrange(self.sample_seen)
            if j < self.session_reservoir:
                self.sample[j] = seq

    def _expire(self) -> None:
        # Lines come when requests *end*: a next request that started within the timeout may still
        # be running, so a session ends only once the longest request seen has also passed.
        limit = self.t_max - self.timeout - self.grace
        op = self.open
        for _ in range(len(op)):
            k = next(iter(op))
            sess = op[k]
            if sess.last_end >= limit:
                break
            del op[k]
            self._close(sess, exit_known=True)

    # -- feeding ----------------------------------------------------------------------------------
    def add(self, hit: Hit) -> None:
        key = self.state_of(hit.method, hit.path)
        if key is None:
            self.unmatched += 1
            if len(self.unmatched_examples) < 5:
                self.unmatched_examples.append(f"{hit.method} {hit.path[:120]}")
            return
        s = self._key(key)
        self.requests += 1
        self.visits[s] += 1
        start, end = hit.start, hit.end
        if end - start > self.grace:
            self.grace = min(end - start, self.timeout)
        if self.t_first is None:
            self.t_first = start
        if end > self.t_max:
            self.t_max = end
            if end >= self.next_house:  # once per second of log time: end idle sessions, fold old counts
                self.next_house = end + 1.0
                self._expire()
                self._commit()
        if hit.session is not None and self.use_session_id:
            skey: object = hit.session
            self.with_sid += 1
        else:
            skey = (hit.client, hit.agent)
        sess = self.open.get(skey)
        if sess is not None and start - sess.last_end > self.timeout:
            self.splits += 1
            del self.open[skey]
            self._close(sess, exit_known=True)
            sess = None
        if sess is None:
            self.sessions += 1
            if start > self.last_arrival:
                self.last_arrival = start
            self._arrive(start)
            left = start < self.t_first + self.timeout
            if left:
                self.edge_left += 1
                self.entry_left[s] = self.entry_left.get(s, 0) + 1
            else:
                self._count(ENTRY, s, start)
            self.open[skey] = _Open(s, end, left, [s] if self.session_reservoir else None)
            return
        self._count(sess.state, s, sess.last_end)
        gap = start - sess.last_end
        self._think(sess.state, gap if gap > 0.0 else 0.0)
        sess.state = s
        if end > sess.last_end:
            sess.last_end = end
        seq = sess.seq
        if seq is not None and len(seq) < 500:
            seq.append(s)
        self.open.move_to_end(skey)

    def feed(self, hits: Iterable[Hit]) -> None:
        add = self.add
        for h in hits:
            add(h)

    def finish(self) -> Observed:
        """End of the log: requests in its last ``timeout`` have no decided outcome."""
        limit = self.t_max - self.timeout - self.grace
        for sess in self.open.values():
            if sess.last_end < limit:
                self._close(sess, exit_known=True)
            else:
                self._close(sess, exit_known=False)
        self.open.clear()
        c = self.committed
        for sec, d in self.pending.items():
            if sec + 1 <= limit:
                for k, n in d.items():
                    c[k] = c.get(k, 0) + n
            else:
                self.edge_right += sum(d.values())
        self.pending.clear()
        return Observed(
            keys=list(self.keys),
            visits=list(self.visits),
            transitions=dict(c),
            think=list(self.think),
            arrivals=dict(self.arrivals),
            bucket_s=self.bucket_s,
            t_first=self.t_first if self.t_first is not None else 0.0,
            t_last=self.t_max if self.t_first is not None else 0.0,
            last_arrival=self.last_arrival if self.t_first is not None else 0.0,
            sessions=self.sessions,
            requests=self.requests,
            edge_sessions_left=self.edge_left,
            entry_left=dict(self.entry_left),
            edge_steps_right=self.edge_right,
            split_by_timeout=self.splits,
            with_session_id=self.with_sid,
            session_sample=list(self.sample),
            hits_unmatched=self.unmatched,
            unmatched_examples=list(self.unmatched_examples),
        )
