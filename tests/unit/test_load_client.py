"""The HTTP/1.1 response parser and request serialization of the load client."""

from __future__ import annotations

import pytest

from pytest_peakchaos.load.client import _parse_response, build_request, parse_base_url

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


def test_content_length_complete_and_partial() -> None:
    assert _parse_response(OK, False, False) == (200, b'{"ok":true}', True)
    for cut in range(1, len(OK)):
        assert _parse_response(OK[:cut], False, False) is None


def test_keep_alive_rules() -> None:
    close = OK.replace(b"Content-Type", b"Connection: close\r\nContent-Type")
    assert _parse_response(close, False, False) == (200, b'{"ok":true}', False)
    http10 = OK.replace(b"HTTP/1.1", b"HTTP/1.0")
    assert _parse_response(http10, False, False)[2] is False  # type: ignore[index]
    http10_ka = http10.replace(b"Content-Type", b"Connection: keep-alive\r\nContent-Type")
    assert _parse_response(http10_ka, False, False)[2] is True  # type: ignore[index]
    lower = b"HTTP/1.1 503 x\r\ncontent-length: 2\r\nconnection: Close\r\n\r\n{}"
    assert _parse_response(lower, False, False) == (503, b"{}", False)


def test_chunked_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n"
    assert _parse_response(raw, False, False) == (200, b"Wikipedia", True)
    assert _parse_response(raw[:-2], False, False) is None
    assert _parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", False, False) == (-1, b"", False)


def test_close_delimited_needs_eof() -> None:
    raw = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"
    assert _parse_response(raw, False, False) is None
    assert _parse_response(raw, False, True) == (200, b"hello", False)


def test_no_body_statuses_and_interim() -> None:
    assert _parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", False, False) == (204, b"", True)
    assert _parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", True, False) == (200, b"", True)
    assert _parse_response(b"HTTP/1.1 100 Continue\r\n\r\n" + OK, False, False) == (200, b'{"ok":true}', True)


def test_malformed() -> None:
    assert _parse_response(b"SMTP nope\r\n\r\n", False, False) == (-1, b"", False)
    assert _parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", False, False) == (-1, b"", False)
    assert _parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", False, False) == (-1, b"", False)


def test_build_request_and_base_url() -> None:
    raw = build_request("POST", "/carts/c1/items", "127.0.0.1:8000", body=b'{"sku":1}', content_type="application/json",
                        headers=(("Idempotency-Key", "k"),))
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /carts/c1/items HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert b"\r\nIdempotency-Key: k" in head and b"\r\nContent-Length: 9" in head
    assert body == b'{"sku":1}'
    assert parse_base_url("http://127.0.0.1:8000/api/") == ("127.0.0.1", 8000, "/api")
    assert parse_base_url("http://localhost") == ("localhost", 80, "")
    assert parse_base_url("https://127.0.0.1") == ("127.0.0.1", 443, "")
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        parse_base_url("ftp://127.0.0.1")


def test_cookie_jar_path_expiry_and_secure() -> None:
    from pytest_peakchaos.load.cookies import BadCookie, CookieJar

    jar = CookieJar()
    now = 1_760_000_000.0
    jar.set("sid=abc; Path=/; HttpOnly", "/login", now)
    jar.set("pre=1; Path=/login", "/login", now)
    jar.set("cart=9", "/carts/7/items", now)  # default path: the request path's directory
    jar.set("short=x; Max-Age=10", "/", now)
    jar.set("old=x; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "/", now)
    jar.set('q="quoted"; Path=/; Secure', "/", now)
    assert jar.header("/login", now=now) == "pre=1; sid=abc; short=x"
    assert jar.header("/loginx", now=now) == "sid=abc; short=x"  # /login does not match /loginx
    assert jar.header("/carts/7/items/3?x=1", now=now) == "cart=9; sid=abc; short=x"
    assert jar.header("/", https=True, now=now) == "sid=abc; short=x; q=quoted"
    assert jar.header("/", now=now + 11) == "sid=abc"  # Max-Age passed
    jar.set("short=x; Max-Age=10", "/", now + 20)  # the same line again (parsed once): a fresh expiry
    assert jar.header("/", now=now + 29) == "sid=abc; short=x"
    assert jar.header("/", now=now + 31) == "sid=abc"
    jar.set("sid=gone; Path=/; Max-Age=0", "/", now)
    assert jar.header("/", now=now + 11) is None
    for bad in ("novalue", "=x", "a b=1", "x=1; Max-Age=soon", "x=1; Expires=someday"):
        with pytest.raises(BadCookie):
            jar.set(bad, "/", now)


def test_templates_parse_and_render() -> None:
    from pytest_peakchaos.profiles.template import Template, TemplateError, fields

    t = Template("/u/{user.name}/{{literal}}/{sku}")
    assert t.render({"user": {"name": "a b"}, "sku": 7}, lambda v: str(v).replace(" ", "+")) == "/u/a+b/{literal}/7"
    assert fields("{a}-{b.c}") == {"a", "b.c"}
    assert Template("{cart}").typed({"cart": [1, 2]}) == [1, 2]
    for bad in ("{a", "a}", "{a:>3}", "{1x}"):
        with pytest.raises(TemplateError):
            Template(bad)


def test_retry_after_is_noted_only_when_missing_on_429_503() -> None:
    from pytest_peakchaos.load.client import _retry_after_flag

    with_it = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n"
    without = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    in_body = b"HTTP/1.1 429 Too Many\r\nContent-Length: 16\r\n\r\n\r\nRetry-After: 1\r\n"
    assert _retry_after_flag(with_it) is None
    assert _retry_after_flag(without) == "no_retry_after"
    assert _retry_after_flag(in_body) == "no_retry_after"  # the header, not the body
