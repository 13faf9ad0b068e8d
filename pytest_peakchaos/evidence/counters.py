"""Counters of what reached legacy: its own ``GET /stats``, or Toxiproxy's per-proxy byte metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from pytest_peakchaos.checks import CounterReading

_HTTP_TIMEOUT_S = 2.0

Counter = Callable[[], "CounterReading | None"]


def _get_json(url: str, timeout: float = _HTTP_TIMEOUT_S) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - stack URLs are 127.0.0.1
        return json.loads(resp.read().decode())


def legacy_stats_counter(url: str) -> Counter:
    """Calls legacy received, from its ``GET /stats`` (``{"requests": {"stock": n, "orders_post": n, ...}}``).

    Counts ``stock`` + ``orders_post`` when present (``orders_get`` is the ledger, read by
    peakchaos itself), else every number under ``requests``. ``None`` when it does not answer so.
    """
    stats_url = url.rstrip("/") + "/stats"

    def read() -> CounterReading | None:
        try:
            body = _get_json(stats_url)
        except (OSError, ValueError, urllib.error.URLError):
            return None
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, dict):
            return None
        nums = {k: v for k, v in reqs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if "stock" in nums or "orders_post" in nums:
            value = float(nums.get("stock", 0) + nums.get("orders_post", 0))
        elif nums:
            value = float(sum(nums.values()))
        else:
            return None
        return CounterReading(value, "calls", f"GET {stats_url} requests.stock+orders_post")

    return read


def toxiproxy_bytes_counter(api_url: str, proxy: str, *, metrics_on: bool = False) -> Counter:
    """Bytes cloud sent to legacy through Toxiproxy (``GET /metrics``, needs ``-proxy-metrics``).

    Bytes are not calls: the amplification check then compares bytes per legacy-bound action with
    the baseline phase's. ``None`` when ``/metrics`` does not answer. Toxiproxy shows a proxy's
    series only once bytes crossed it, so with ``metrics_on`` (the stack started Toxiproxy with
    ``-proxy-metrics`` itself) an answer without the series reads 0 so far; without ``metrics_on``
    it is ``None`` (a Toxiproxy run by someone else may have the metrics off).
    """
    metrics_url = api_url.rstrip("/") + "/metrics"

    def read() -> CounterReading | None:
        try:
            with urllib.request.urlopen(metrics_url, timeout=_HTTP_TIMEOUT_S) as resp:  # noqa: S310 - 127.0.0.1
                text = resp.read().decode(errors="replace")
        except (OSError, urllib.error.URLError):
            return None
        total = 0.0
        seen = False
        for line in text.splitlines():
            if not line.startswith("toxiproxy_proxy_received_bytes_total{"):
                continue
            labels, _, value = line.rpartition("}")
            if f'proxy="{proxy}"' in labels and 'direction="upstream"' in labels:
                try:
                    total += float(value.strip())
                    seen = True
                except ValueError:
                    continue
        source = f"Toxiproxy {metrics_url} upstream bytes of proxy {proxy!r}"
        if not seen:
            if not metrics_on:
                return None
            return CounterReading(0.0, "bytes", source + " (no series yet: 0 so far)")
        return CounterReading(total, "bytes", source)

    return read
