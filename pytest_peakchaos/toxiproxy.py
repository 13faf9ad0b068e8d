"""A small, timeout-bounded client for the Toxiproxy HTTP API.

It is built on the ``toxiproxy-python`` package (0.1.1), whose ``toxiproxy.api.APIConsumer`` does
the HTTP calls and maps 404/409/400 answers to its exceptions. That package has two traps:

* the API address lives in *class attributes* of ``APIConsumer`` (``host``, ``port``), shared by the
  whole process: two clients, two xdist-free threads or two stacks would talk to each other's
  servers. Here every :class:`ToxiproxyClient` gets its *own subclass* of ``APIConsumer`` with its
  own ``host``/``port``; the package's global class is never modified.
* its high-level ``Toxiproxy``/``Proxy`` objects pass no timeout to ``requests``, so a hung server
  call (Toxiproxy #412/#558: a toxic ``DELETE`` blocking 25 s+ under load) hangs the test. Here
  every call goes through ``APIConsumer.get/post/delete`` with an explicit ``timeout``, and a call
  that runs out of time raises :class:`ToxiproxyTimeout`.

``requests`` and ``toxiproxy`` are imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = [
    "ProxyHandle",
    "ToxicInfo",
    "ToxiproxyClient",
    "ToxiproxyConflict",
    "ToxiproxyError",
    "ToxiproxyNotFound",
    "ToxiproxyTimeout",
]

DEFAULT_API_PORT = 8474


class ToxiproxyError(RuntimeError):
    """A Toxiproxy API call failed (unreachable, rejected, or an unexpected answer)."""


class ToxiproxyTimeout(ToxiproxyError):
    """A Toxiproxy API call did not answer within its timeout."""


class ToxiproxyNotFound(ToxiproxyError):
    """The proxy or toxic does not exist (HTTP 404)."""


class ToxiproxyConflict(ToxiproxyError):
    """The proxy or toxic already exists (HTTP 409)."""


@dataclass(frozen=True)
class ToxicInfo:
    """A toxic as the server reports it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ToxicInfo:
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            stream=str(data.get("stream", "downstream")),
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


class ToxiproxyClient:
    """Client for one Toxiproxy server, e.g. ``ToxiproxyClient("http://127.0.0.1:8474")``.

    ``timeout`` (seconds) bounds every call unless a call passes its own.
    """

    def __init__(self, api_url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(api_url if "://" in api_url else f"http://{api_url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"api_url must look like http://127.0.0.1:8474, got {api_url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"api_url must be the server root (http://host:port), got {api_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._host = parts.hostname
        self._port = parts.port or DEFAULT_API_PORT
        host_in_url = f"[{self._host}]" if ":" in self._host else self._host
        self._api_url = f"http://{host_in_url}:{self._port}"
        self.timeout = float(timeout)
        self._consumer_cls: Any = None
        self._consumer_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    @property
    def api_url(self) -> str:
        return self._api_url

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self._api_url!r}, timeout={self.timeout!r})"

    def _consumer(self) -> Any:
        """This client's private subclass of ``toxiproxy.api.APIConsumer``."""
        with self._consumer_lock:
            if self._consumer_cls is None:
                from toxiproxy.api import APIConsumer

                host = f"[{self._host}]" if ":" in self._host else self._host
                self._consumer_cls = type(
                    f"APIConsumer_{self._port}", (APIConsumer,), {"host": host, "port": self._port}
                )
            return self._consumer_cls

    def _request(
        self, method: str, path: str, *, json: Any = None, timeout: float | None = None
    ) -> Any:
        """Call the API; return the decoded JSON body (text if not JSON, ``None`` if empty)."""
        import requests
        from toxiproxy import exceptions as tx

        consumer = self._consumer()
        limit = self.timeout if timeout is None else timeout
        what = f"{method} {self._api_url}{path}"
        try:
            if method == "GET":
                response = consumer.get(path, timeout=limit)
            elif method == "POST":
                response = consumer.post(path, json=json, timeout=limit)
            elif method == "DELETE":
                response = consumer.delete(path, timeout=limit)
            else:  # pragma: no cover - internal misuse
                raise ValueError(f"unsupported method {method!r}")
        except requests.Timeout as exc:
            raise ToxiproxyTimeout(f"{what}: no answer within {limit:g}s") from exc
        except requests.RequestException as exc:
            raise ToxiproxyError(f"{what}: cannot reach the Toxiproxy API ({exc})") from exc
        except tx.NotFound as exc:
            raise ToxiproxyNotFound(f"{what}: not found ({_text(exc)})") from exc
        except tx.ProxyExists as exc:
            raise ToxiproxyConflict(f"{what}: already exists ({_text(exc)})") from exc
        except tx.InvalidToxic as exc:
            raise ToxiproxyError(f"{what}: rejected as invalid ({_text(exc)})") from exc
        if response.status_code >= 400:
            raise ToxiproxyError(f"{what}: HTTP {response.status_code} {response.text.strip()}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    # ------------------------------------------------------------------ server

    def version(self, timeout: float | None = None) -> str:
        """Server version (``"2.12.0"``; builds from ``go install`` report ``"git"``)."""
        data = self._request("GET", "/version", timeout=timeout)
        if isinstance(data, Mapping):
            return str(data.get("version", ""))
        return str(data or "").strip()

    def wait_ready(self, timeout_s: float = 10.0) -> str:
        """Poll ``/version`` until the server answers; return its version.

        Raises :class:`ToxiproxyError` naming the address and the last error after ``timeout_s``.
        """
        from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

        deadline = time.monotonic() + timeout_s
        retrying = Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(0.05),
            retry=retry_if_exception_type(ToxiproxyError),
        )
        try:
            for attempt in retrying:
                with attempt:
                    remaining = max(0.05, min(self.timeout, deadline - time.monotonic()))
                    return self.version(timeout=remaining)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise ToxiproxyError(
                f"Toxiproxy API at {self._api_url} not ready after {timeout_s:g}s: {last}"
            ) from last
        raise AssertionError("unreachable")  # pragma: no cover

    def reset(self, timeout: float | None = None) -> None:
        """``POST /reset``: re-enable every proxy and remove every toxic, on the whole server."""
        self._request("POST", "/reset", timeout=timeout)

    # ------------------------------------------------------------------ proxies

    def _handle(self, data: Any) -> ProxyHandle:
        if not isinstance(data, Mapping) or "name" not in data:
            raise ToxiproxyError(f"{self._api_url}: unexpected proxy description {data!r}")
        return ProxyHandle(
            self,
            name=str(data["name"]),
            listen=str(data["listen"]),
            upstream=str(data["upstream"]),
            enabled=bool(data.get("enabled", True)),
        )

    def create_proxy(
        self, name: str, listen: str, upstream: str, enabled: bool = True, timeout: float | None = None
    ) -> ProxyHandle:
        """Create a proxy (``POST /proxies``); :class:`ToxiproxyConflict` if the name is taken.

        ``listen`` like ``"127.0.0.1:0"`` picks a free port; the handle carries the real one.
        """
        if not name:
            raise ValueError("proxy name must not be empty")
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._handle(self._request("POST", "/proxies", json=body, timeout=timeout))

    def populate(
        self, name: str, listen: str, upstream: str, enabled: bool = True, timeout: float | None = None
    ) -> ProxyHandle:
        """Create or replace a proxy (``POST /populate``, idempotent).

        An existing proxy with the same ``listen`` and ``upstream`` is kept as it is (toxics too).
        """
        if not name:
            raise ValueError("proxy name must not be empty")
        body = [{"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}]
        data = self._request("POST", "/populate", json=body, timeout=timeout)
        for item in (data or {}).get("proxies", []) if isinstance(data, Mapping) else []:
            if isinstance(item, Mapping) and item.get("name") == name:
                handle = self._handle(item)
                if handle.enabled != enabled:
                    handle.set_enabled(enabled, timeout_s=timeout)
                return handle
        return self.proxy(name, timeout=timeout)

    def proxy(self, name: str, timeout: float | None = None) -> ProxyHandle:
        """The proxy called ``name``; :class:`ToxiproxyNotFound` if there is none."""
        return self._handle(self._request("GET", _path("proxies", name), timeout=timeout))

    def proxies(self, timeout: float | None = None) -> dict[str, ProxyHandle]:
        data = self._request("GET", "/proxies", timeout=timeout)
        if not isinstance(data, Mapping):
            raise ToxiproxyError(f"{self._api_url}: unexpected /proxies answer {data!r}")
        return {str(name): self._handle(item) for name, item in data.items()}

    def delete_proxy(self, name: str, timeout: float | None = None, *, missing_ok: bool = False) -> bool:
        """Delete a proxy; returns ``False`` if it did not exist and ``missing_ok`` is set."""
        try:
            self._request("DELETE", _path("proxies", name), timeout=timeout)
        except ToxiproxyNotFound:
            if missing_ok:
                return False
            raise
        return True


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else ""
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace").strip()
    return str(arg).strip()


class ProxyHandle:
    """One proxy on a :class:`ToxiproxyClient`'s server.

    ``listen`` is the address the server really listens on (with the chosen port when it was
    created with port 0).
    """

    def __init__(self, client: ToxiproxyClient, *, name: str, listen: str, upstream: str, enabled: bool = True) -> None:
        self._client = client
        self._name = name
        self._listen = listen
        self._upstream = upstream
        self.enabled = enabled

    @property
    def client(self) -> ToxiproxyClient:
        return self._client

    @property
    def name(self) -> str:
        return self._name

    @property
    def listen(self) -> str:
        return self._listen

    @property
    def upstream(self) -> str:
        return self._upstream

    @property
    def listen_host(self) -> str:
        return self._listen.rsplit(":", 1)[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self._listen.rsplit(":", 1)[1])

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"ProxyHandle({self._name!r}, listen={self._listen!r}, upstream={self._upstream!r}, {state})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self._name, "listen": self._listen, "upstream": self._upstream, "enabled": self.enabled}

    def _toxics_path(self, *more: str) -> str:
        return _path("proxies", self._name, "toxics", *more)

    def refresh(self, timeout_s: float | None = None) -> ProxyHandle:
        """Reload ``listen``/``upstream``/``enabled`` from the server."""
        fresh = self._client.proxy(self._name, timeout=timeout_s)
        self._listen, self._upstream, self.enabled = fresh.listen, fresh.upstream, fresh.enabled
        return self

    def add_toxic(
        self,
        type: str,  # noqa: A002 - Toxiproxy's field name
        stream: str = "downstream",
        attributes: Mapping[str, Any] | None = None,
        toxicity: float = 1.0,
        name: str | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """Add a toxic; returns its name (default ``<type>_<stream>``, as Toxiproxy names it)."""
        if stream not in ("upstream", "downstream"):
            raise ValueError(f"stream must be upstream or downstream, got {stream!r}")
        toxic_name = name or f"{type}_{stream}"
        body = {
            "name": toxic_name,
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes or {}),
        }
        data = self._client._request("POST", self._toxics_path(), json=body, timeout=timeout_s)
        if isinstance(data, Mapping) and "name" in data:
            return str(data["name"])
        return toxic_name

    def remove_toxic(self, name: str, timeout_s: float | None = None, *, missing_ok: bool = True) -> bool:
        """Delete a toxic within ``timeout_s`` (:class:`ToxiproxyTimeout` otherwise).

        Returns ``False`` if it was already gone (and ``missing_ok``).
        """
        try:
            self._client._request("DELETE", self._toxics_path(name), timeout=timeout_s)
        except ToxiproxyNotFound:
            if missing_ok:
                return False
            raise
        return True

    def toxics(self, timeout_s: float | None = None) -> list[ToxicInfo]:
        data = self._client._request("GET", self._toxics_path(), timeout=timeout_s)
        if not isinstance(data, list):
            raise ToxiproxyError(f"{self._name}: unexpected toxics answer {data!r}")
        return [ToxicInfo.from_api(item) for item in data]

    def set_enabled(self, enabled: bool, timeout_s: float | None = None) -> None:
        """Enable or disable the proxy (disabled: it stops listening and drops its connections)."""
        self._client._request("POST", _path("proxies", self._name), json={"enabled": enabled}, timeout=timeout_s)
        self.enabled = enabled

    def reset_toxics(self, timeout_s: float | None = None) -> list[str]:
        """Remove every toxic of this proxy (only this one); returns the names removed."""
        removed = []
        for info in self.toxics(timeout_s=timeout_s):
            if self.remove_toxic(info.name, timeout_s=timeout_s):
                removed.append(info.name)
        return removed

    def recreate(self, timeout_s: float | None = None) -> None:
        """Delete the proxy and create it again with the same name, listen, upstream and state.

        This drops all its toxics and live connections; it is the way out when a toxic ``DELETE``
        hangs (Toxiproxy #412/#558), since deleting the proxy closes the connections the toxic is
        stuck on. The enabled state is read from the server first when it answers.
        """
        try:  # learn the current state (a server-wide /reset may have re-enabled it)
            self.enabled = self._client.proxy(self._name, timeout=timeout_s).enabled
        except ToxiproxyError:
            pass  # keep the last known state
        self._client.delete_proxy(self._name, timeout=timeout_s, missing_ok=True)
        body = {"name": self._name, "listen": self._listen, "upstream": self._upstream, "enabled": self.enabled}
        try:
            data = self._client._request("POST", "/proxies", json=body, timeout=timeout_s)
        except ToxiproxyConflict:
            # The earlier (timed-out) DELETE may still be racing us: delete once more.
            self._client.delete_proxy(self._name, timeout=timeout_s, missing_ok=True)
            data = self._client._request("POST", "/proxies", json=body, timeout=timeout_s)
        if isinstance(data, Mapping) and "listen" in data:
            self._listen = str(data["listen"])
            self.enabled = bool(data.get("enabled", self.enabled))
