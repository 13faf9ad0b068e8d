"""A per-session cookie jar: enough of RFC 6265 for a framework's session cookie.

``Set-Cookie`` lines are honoured with ``Path`` (default: the request path's directory),
``Expires`` and ``Max-Age`` (``Max-Age`` wins; zero or a past date deletes the cookie) and
``Secure`` (sent over https only). ``Domain`` is ignored: a session talks to one host. A line that
cannot be parsed raises ``BadCookie`` (the engine counts it and keeps going).
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

__all__ = ["BadCookie", "CookieJar", "path_matches"]

_BAD_NAME = set(' \t\r\n;,="()<>@:\\/[]?{}')


class BadCookie(ValueError):
    """A ``Set-Cookie`` value that is not a cookie."""


def path_matches(request_path: str, cookie_path: str) -> bool:
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def _default_path(request_path: str) -> str:
    p = request_path.split("?", 1)[0]
    if not p.startswith("/") or p.count("/") <= 1:
        return "/"
    return p[: p.rindex("/")]


class CookieJar:
    """Cookies of one session: ``{(name, path): (value, expires_at or None, secure)}``."""

    __slots__ = ("cookies", "_seen")

    def __init__(self) -> None:
        self.cookies: dict[tuple[str, str], tuple[str, float | None, bool]] = {}
        # a server that sends the same Set-Cookie on every response: parsed once per session
        self._seen: dict[tuple[str, str], tuple[tuple[str, str], str, float | None, float | None, bool]] = {}

    def __len__(self) -> int:
        return len(self.cookies)

    def set(self, header_value: str, request_path: str, now: float | None = None) -> None:
        """Apply one ``Set-Cookie`` value received for ``request_path``; ``BadCookie`` if malformed."""
        now = time.time() if now is None else now
        memo = self._seen.get((header_value, request_path))
        if memo is not None:
            m_key, m_value, m_age, m_exp, m_secure = memo
            if m_age is not None:
                m_exp = now + m_age
            if m_exp is not None and m_exp <= now:
                self.cookies.pop(m_key, None)
            else:
                self.cookies[m_key] = (m_value, m_exp, m_secure)
            return
        pairs = header_value.split(";")
        first = pairs[0]
        if "=" not in first:
            raise BadCookie(f"no name=value pair in {header_value[:120]!r}")
        name, value = first.split("=", 1)
        name, value = name.strip(), value.strip()
        if not name or any(c in _BAD_NAME for c in name) or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise BadCookie(f"bad cookie name or value in {header_value[:120]!r}")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        path = _default_path(request_path)
        expires: float | None = None
        max_age: float | None = None
        secure = False
        for attr in pairs[1:]:
            k, _, v = attr.partition("=")
            k, v = k.strip().lower(), v.strip()
            if k == "path":
                path = v if v.startswith("/") else _default_path(request_path)
            elif k == "max-age":
                try:
                    max_age = float(int(v))
                except ValueError:
                    raise BadCookie(f"Max-Age is not a whole number in {header_value[:120]!r}") from None
            elif k == "expires":
                try:
                    expires = parsedate_to_datetime(v).timestamp()
                except (TypeError, ValueError, IndexError, OverflowError):
                    raise BadCookie(f"Expires is not a date in {header_value[:120]!r}") from None
            elif k == "secure":
                secure = True
        key = (name, path)
        if len(self._seen) < 64:
            self._seen[(header_value, request_path)] = (key, value, max_age, expires, secure)
        if max_age is not None:
            expires = now + max_age
        if expires is not None and expires <= now:
            self.cookies.pop(key, None)
            return
        self.cookies[key] = (value, expires, secure)

    def header(self, request_path: str, https: bool = False, now: float | None = None) -> str | None:
        """The ``Cookie:`` value for a request to ``request_path`` (longest paths first), or None."""
        if not self.cookies:
            return None
        now = time.time() if now is None else now
        p = request_path.split("?", 1)[0]
        out: list[tuple[int, str]] = []
        expired = []
        for (name, cpath), (value, exp, secure) in self.cookies.items():
            if exp is not None and exp <= now:
                expired.append((name, cpath))
                continue
            if secure and not https:
                continue
            if path_matches(p, cpath):
                out.append((-len(cpath), f"{name}={value}"))
        for k in expired:
            del self.cookies[k]
        if not out:
            return None
        out.sort(key=lambda x: x[0])
        return "; ".join(c for _, c in out)
