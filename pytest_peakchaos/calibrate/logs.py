"""Reading access logs, streaming: nginx/Apache combined (or common) format and JSON lines.

Each parsed line becomes a :class:`Hit` ``(start, end, client, agent, session, method, path,
status)``. Lines that cannot be read are counted per reason with their first example (file and
line number), never fatal unless most lines fail (the caller decides, see ``core``). Files may be
gzip-compressed (detected by their magic bytes, whatever their name). Memory does not grow with
the file: one line at a time, plus a small bounded cache of timestamps.

Extra fields after the combined format are read when present, as ``key=value`` or
``key="value"`` pairs (nginx ``log_format ... sid=$cookie_sid msec=$msec rt=$request_time``):

* ``msec`` (epoch seconds with milliseconds) replaces the second-resolution ``[time]``;
* ``rt`` / ``request_time`` (seconds) says how long the request took, so its start is known;
* the session field (``sid`` by default, ``session_field=``) names the session; a cookie header
  logged as ``"a=1; sid=xyz"`` works too.
"""

from __future__ import annotations

import calendar
import gzip
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

__all__ = ["FORMATS", "Hit", "LineErrors", "CalibrationError", "JsonFields", "read_hits", "detect_format", "open_log"]

FORMATS = ("auto", "combined", "json")


class CalibrationError(ValueError):
    """Calibration cannot go on; the message names the file/argument and what is valid."""


class Hit(NamedTuple):
    start: float  # epoch seconds the request started (end - rt when rt is known)
    end: float  # epoch seconds it ended
    client: str
    agent: str
    session: str | None
    method: str
    path: str  # with query string
    status: int


_COMBINED = re.compile(
    r'^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}|-) (?P<bytes>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?(?P<rest>.*)$'
)
_PAIR = re.compile(r'(\w+)=("[^"]*"|\S+)')
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_CLF_TIME = re.compile(r"^(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))? ([+-])(\d{2})(\d{2})$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


@dataclass
class LineErrors:
    """Lines that could not be used: count and first example per reason."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, where: str, line: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if reason not in self.examples:
            text = line.rstrip("\n")
            self.examples[reason] = f"{where}: {text[:200]}{'…' if len(text) > 200 else ''}"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class JsonFields:
    """Which JSON keys hold what (first present key wins; dotted paths reach into objects)."""

    time: tuple[str, ...] = ("msec", "time", "timestamp", "@timestamp", "ts", "time_local", "time_iso8601")
    method: tuple[str, ...] = ("method", "request_method")
    path: tuple[str, ...] = ("path", "uri", "request_uri", "url")
    request: tuple[str, ...] = ("request",)  # "GET /x HTTP/1.1", used when method/path are absent
    status: tuple[str, ...] = ("status", "status_code")
    client: tuple[str, ...] = ("remote_addr", "client", "client_ip", "ip", "remote_ip")
    agent: tuple[str, ...] = ("http_user_agent", "user_agent", "agent", "ua")
    session: tuple[str, ...] = ("session", "session_id", "sid")
    request_time: tuple[str, ...] = ("request_time", "rt", "duration")

    @classmethod
    def parse(cls, specs: Sequence[str]) -> JsonFields:
        """From ``["time=ts", "path=req.uri", ...]`` (CLI ``--field``); unknown names are errors."""
        valid = [f for f in cls.__dataclass_fields__]
        changes: dict[str, tuple[str, ...]] = {}
        for spec in specs:
            name, sep, keys = spec.partition("=")
            if not sep or name not in valid or not keys:
                raise CalibrationError(f"--field {spec!r}: expected NAME=KEY[,KEY...] with NAME one of {', '.join(valid)}")
            changes[name] = tuple(k for k in keys.split(",") if k)
        return cls(**{**{f: getattr(cls(), f) for f in valid}, **changes})


def open_log(path: str | os.PathLike[str]) -> IO[str]:
    """A text stream over ``path``; gzip by magic bytes. Errors name the file."""
    p = Path(path)
    try:
        raw = open(p, "rb")  # noqa: SIM115 - returned wrapped
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot open the log ({exc.strerror or exc})") from None
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        raw.close()
        return gzip.open(p, "rt", encoding="utf-8", errors="replace", newline=None)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)


def detect_format(path: str | os.PathLike[str], sample: int = 50) -> str | None:
    """``combined`` or ``json`` when most of the first non-empty lines are of that format, else
    ``None`` (also for an empty file)."""
    seen = combined = jsonish = 0
    with open_log(path) as fh:
        try:
            for line in fh:
                s = line.strip()
                if not s:
                    continue
                seen += 1
                if s.startswith("{"):
                    try:
                        if isinstance(json.loads(s), dict):
                            jsonish += 1
                    except ValueError:
                        pass
                elif _COMBINED.match(s):
                    combined += 1
                if seen >= sample:
                    break
        except (OSError, EOFError) as exc:
            raise CalibrationError(f"{path}: cannot read the log ({exc})") from None
    if seen == 0:
        return None
    if combined * 2 > seen:
        return "combined"
    if jsonish * 2 > seen:
        return "json"
    return "unknown"


class _Clock:
    """Timestamp strings to epoch seconds, with a small bounded cache (many lines share a second)."""

    def __init__(self) -> None:
        self.cache: dict[str, float] = {}

    def clf(self, text: str) -> float | None:
        v = self.cache.get(text)
        if v is not None:
            return v
        m = _CLF_TIME.match(text)
        if m is None:
            return None
        day, mon, year, hh, mm, ss, frac, sign, zh, zm = m.groups()
        month = _MONTHS.get(mon)
        if month is None:
            return None
        try:
            t = float(calendar.timegm((int(year), month, int(day), int(hh), int(mm), int(ss), 0, 0, 0)))
        except (ValueError, OverflowError):
            return None
        if frac:
            t += float("0." + frac)
        off = (int(zh) * 3600 + int(zm) * 60) * (1 if sign == "+" else -1)
        t -= off
        if len(self.cache) > 50_000:
            self.cache.clear()
        self.cache[text] = t
        return t

    def any(self, value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            v = float(value)
            return v / 1000.0 if v > 1e11 else v  # epoch milliseconds
        if isinstance(value, str):
            t = self.clf(value)
            if t is not None:
                return t
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                try:
                    return self.any(float(value))
                except ValueError:
                    return None
        return None


def _get(doc: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if "." in k:
            cur: Any = doc
            for part in k.split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            if cur is not None:
                return cur
        elif k in doc and doc[k] is not None:
            return doc[k]
    return None


def _session_in(rest: str, name: str) -> str | None:
    """The value of ``name=...`` in the extra fields after the combined format (a key=value field,
    or a cookie inside a quoted Cookie header)."""
    i = rest.find(name + "=")
    while i >= 0:
        if i == 0 or rest[i - 1] in ' \t;"':
            j = i + len(name) + 1
            k = j
            n = len(rest)
            while k < n and rest[k] not in ' \t;"':
                k += 1
            value = rest[j:k]
            return value if value and value != "-" else None
        i = rest.find(name + "=", i + 1)
    return None


def read_hits(
    paths: Sequence[str | os.PathLike[str]],
    errors: LineErrors,
    *,
    fmt: str = "auto",
    session_field: str = "sid",
    json_fields: JsonFields | None = None,
    time_is: str = "end",
    counter: list[int] | None = None,
) -> Iterator[Hit]:
    """Parsed requests of ``paths`` in file order. Unreadable lines go to ``errors``;
    ``counter[0]`` counts non-empty lines read. ``time_is``: whether a line's timestamp is when
    the request ended (nginx ``$time_local``/``$msec``) or started (Apache ``%t``)."""
    if fmt not in FORMATS:
        raise CalibrationError(f"format: unknown log format {fmt!r}; valid values: {', '.join(FORMATS)}")
    if time_is not in ("end", "start"):
        raise CalibrationError(f"time_is: expected 'end' (nginx) or 'start' (Apache %t), got {time_is!r}")
    fields = json_fields or JsonFields()
    clock = _Clock()
    count = counter if counter is not None else [0]
    at_end = time_is == "end"
    for path in paths:
        kind = fmt
        if kind == "auto":
            detected = detect_format(path)
            if detected is None:
                continue  # empty: the caller reports "no lines"
            if detected == "unknown":
                with open_log(path) as fh:
                    first = next((ln.strip() for ln in fh if ln.strip()), "")
                raise CalibrationError(
                    f"{path}: unknown log format: most of its first lines are neither the nginx/Apache combined "
                    f"(or common) format nor JSON objects; valid formats: combined, json. First line: {first[:160]!r}"
                )
            kind = detected
        name = str(path)
        with open_log(path) as fh:
            try:
                if kind == "combined":
                    yield from _combined(fh, name, errors, clock, count, session_field, at_end)
                else:
                    yield from _json_lines(fh, name, errors, clock, count, fields, at_end)
            except (OSError, EOFError) as exc:  # truncated gzip, I/O error
                errors.add("file unreadable past this point", f"{name}:{count[0] + 1}", str(exc))


def _combined(fh: IO[str], name: str, errors: LineErrors, clock: _Clock, count: list[int], sfield: str, at_end: bool) -> Iterator[Hit]:
    match = _COMBINED.match
    lineno = 0
    for line in fh:
        lineno += 1
        if not line or line.isspace():
            continue
        count[0] += 1
        m = match(line.rstrip("\r\n"))
        if m is None:
            errors.add("not the combined/common log format", f"{name}:{lineno}", line)
            continue
        client, ts_text, request, status_s, _b, _ref, agent, rest = m.groups()
        parts = request.split(" ")
        if len(parts) < 2 or parts[0] not in _METHODS or not parts[1].startswith("/"):
            errors.add("request line is not 'METHOD /path PROTOCOL'", f"{name}:{lineno}", line)
            continue
        t: float | None = None
        rt = 0.0
        session = None
        if rest:
            if "msec=" in rest or "rt=" in rest or "request_time=" in rest:
                for k, v in _PAIR.findall(rest):
                    if k == "msec":
                        try:
                            t = float(v.strip('"'))
                        except ValueError:
                            pass
                    elif k in ("rt", "request_time"):
                        try:
                            rt = max(0.0, float(v.strip('"')))
                        except ValueError:
                            pass
            session = _session_in(rest, sfield)
        if t is None:
            t = clock.clf(ts_text)
            if t is None:
                errors.add("timestamp is not dd/Mon/yyyy:HH:MM:SS +zzzz", f"{name}:{lineno}", line)
                continue
        start, end = (t - rt, t) if at_end else (t, t + rt)
        yield Hit(start, end, client, agent or "", session, parts[0], parts[1], int(status_s) if status_s != "-" else 0)


def _json_lines(fh: IO[str], name: str, errors: LineErrors, clock: _Clock, count: list[int], f: JsonFields, at_end: bool) -> Iterator[Hit]:
    lineno = 0
    for line in fh:
        lineno += 1
        if not line or line.isspace():
            continue
        count[0] += 1
        try:
            doc = json.loads(line)
        except ValueError:
            errors.add("not a JSON object", f"{name}:{lineno}", line)
            continue
        if not isinstance(doc, dict):
            errors.add("not a JSON object", f"{name}:{lineno}", line)
            continue
        method = _get(doc, f.method)
        path = _get(doc, f.path)
        if method is None or path is None:
            req = _get(doc, f.request)
            if isinstance(req, str) and len(req.split(" ")) >= 2:
                method, path = req.split(" ")[:2]
        if not isinstance(method, str) or method.upper() not in _METHODS:
            errors.add(f"no HTTP method (keys {', '.join(f.method + f.request)})", f"{name}:{lineno}", line)
            continue
        if not isinstance(path, str) or not path.startswith("/"):
            if isinstance(path, str) and "://" in path:
                path = "/" + path.split("://", 1)[1].partition("/")[2]
            else:
                errors.add(f"no path starting with '/' (keys {', '.join(f.path)})", f"{name}:{lineno}", line)
                continue
        t = clock.any(_get(doc, f.time))
        if t is None:
            errors.add(f"no readable timestamp (keys {', '.join(f.time)})", f"{name}:{lineno}", line)
            continue
        rt_v = _get(doc, f.request_time)
        try:
            rt = max(0.0, float(rt_v)) if rt_v is not None else 0.0
        except (TypeError, ValueError):
            rt = 0.0
        status_v = _get(doc, f.status)
        try:
            status = int(status_v) if status_v is not None else 0
        except (TypeError, ValueError):
            status = 0
        sess = _get(doc, f.session)
        start, end = (t - rt, t) if at_end else (t, t + rt)
        yield Hit(start, end, str(_get(doc, f.client) or "-"), str(_get(doc, f.agent) or ""),
                  None if sess in (None, "", "-") else str(sess), method.upper(), path, status)
