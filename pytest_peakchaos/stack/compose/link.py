"""The ``x-peakchaos`` block: the links Toxiproxy sits on, and where the ledger is read.

A link needs only ``service`` and ``port``: Toxiproxy then answers to that service's names on the
run network (transparent interception) and the real service sits on a private network only
Toxiproxy joins. ``env`` additionally rewrites a client variable (holding ``host:port`` or a URL)
to point at Toxiproxy. ``client`` names the service the load goes to; it defaults to the service
that depends on the legacy one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .specs import DEFAULT_LISTEN_PORT, LedgerSpec, LinkSpec, ServiceSpec
from .values import _check_keys, _Ctx, _got, _integer, _join, _list, _mapping, _port, _require, _string

_LINK_KEYS = ("name", "service", "port", "client", "env", "listen_port")
_LINK_NEEDS = "a link needs service and port (optional: name, client, env, listen_port)"
_LEDGER_KEYS = ("service", "port", "path", "key", "sql", "database", "user", "python")
_LINK_NAME = re.compile(r"^[a-z0-9_-]+$")
_TOXIPROXY_API_PORT = 8474
_PYTHON_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$")


def _known_service(ctx: _Ctx, key: str, value: object, services: Mapping[str, ServiceSpec]) -> str:
    name = _string(ctx, key, value, "a service name")
    if name not in services:
        ctx.fail(key, f"no service named {name!r}; services in this file: {', '.join(services)}")
    return name


def _parse_peakchaos(
    ctx: _Ctx, raw: object, services: Mapping[str, ServiceSpec]
) -> tuple[list[LinkSpec], LedgerSpec | None]:
    key = "x-peakchaos"
    if raw is None:
        return [], None
    data = _mapping(ctx, key, raw, "a mapping with links and ledger")
    _check_keys(ctx, key, data, ("links", "ledger"), "x-peakchaos")
    links: list[LinkSpec] = []
    if data.get("links") is not None:
        lkey = _join(key, "links")
        items = _list(ctx, lkey, data["links"], "a list of links")
        per_service: dict[str, int] = {}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("service"), str):
                per_service[item["service"]] = per_service.get(item["service"], 0) + 1
        names: dict[str, str] = {}
        listen: dict[int, str] = {}
        for i, item in enumerate(items):
            ikey = _join(lkey, i)
            link = ctx.guard(_parse_link, ctx, ikey, i, item, services, per_service)
            if link is None:
                continue
            if link.name in names:
                ctx.guard(ctx.fail, _join(ikey, "name"), f"link name {link.name!r} is already used by {names[link.name]}; names must be unique")
                continue
            names[link.name] = ikey
            if link.listen_port in listen:
                how = (
                    " (the default, the legacy port)" if link.env is None
                    else "" if isinstance(item, dict) and item.get("listen_port") is not None
                    else f" (the default, {DEFAULT_LISTEN_PORT} + {i})"
                )
                ctx.guard(
                    ctx.fail,
                    _join(ikey, "listen_port"),
                    f"{link.listen_port}{how} is already used by {listen[link.listen_port]}; Toxiproxy listens on one "
                    "port per link: give this link its own listen_port and env (the client variable is then "
                    "rewritten to that port)",
                )
                continue
            listen[link.listen_port] = ikey
            links.append(link)
    ledger = None
    if data.get("ledger") is not None:
        ledger = ctx.guard(_parse_ledger, ctx, _join(key, "ledger"), data["ledger"], services)
    return links, ledger


def _parse_ledger(ctx: _Ctx, gkey: str, raw: object, services: Mapping[str, ServiceSpec]) -> LedgerSpec:
    data = _mapping(ctx, gkey, raw, "a mapping: {service, port, path} (HTTP), {service, sql} or {python: module:function}")
    _check_keys(ctx, gkey, data, _LEDGER_KEYS, "x-peakchaos.ledger")
    key_field = "idempotency_key"
    if data.get("key") is not None:
        key_field = _string(ctx, _join(gkey, "key"), data["key"], "the field naming an order's idempotency key")
    if data.get("python") is not None:
        ref = _string(ctx, _join(gkey, "python"), data["python"], "'module:function'")
        if not _PYTHON_REF.match(ref):
            ctx.fail(_join(gkey, "python"), f"expected 'module:function' (called with the stack, returns a list of orders), {_got(ref)}")
        return LedgerSpec(None, None, None, kind="python", key=key_field, callable=ref)
    if data.get("sql") is not None:
        needs = "a SQL ledger needs service and sql (optional: database, user, key)"
        service = _known_service(ctx, _join(gkey, "service"), _require(ctx, gkey, data, "service", "the ledger", needs), services)
        query = _string(ctx, _join(gkey, "sql"), data["sql"], "a SELECT query")
        database = _string(ctx, _join(gkey, "database"), data["database"], "a database name") if data.get("database") is not None else None
        user = _string(ctx, _join(gkey, "user"), data["user"], "a database user") if data.get("user") is not None else None
        return LedgerSpec(service, None, None, kind="sql", key=key_field, query=query, database=database, user=user)
    needs = "an HTTP ledger needs service, port and path (GET http://<service>:<port><path> lists the orders); or use sql: or python:"
    service = _known_service(ctx, _join(gkey, "service"), _require(ctx, gkey, data, "service", "the ledger", needs), services)
    port = _port(ctx, _join(gkey, "port"), _require(ctx, gkey, data, "port", "the ledger", needs))
    path = _string(ctx, _join(gkey, "path"), _require(ctx, gkey, data, "path", "the ledger", needs), "a URL path such as '/orders'")
    if not path.startswith("/"):
        ctx.fail(_join(gkey, "path"), f"must start with '/', e.g. '/orders', {_got(path)}")
    return LedgerSpec(service, port, path, kind="http", key=key_field)


def _infer_client(service: str, services: Mapping[str, ServiceSpec]) -> str | None:
    """The service the load goes to: one depending on ``service``, else one publishing a port."""
    others = [s for s in services.values() if s.name != service]
    for svc in others:
        if any(d.service == service for d in svc.depends_on) and svc.ports:
            return svc.name
    for svc in others:
        if any(d.service == service for d in svc.depends_on):
            return svc.name
    for svc in others:
        if svc.ports:
            return svc.name
    return others[0].name if others else None


def _parse_link(
    ctx: _Ctx, key: str, index: int, raw: object, services: Mapping[str, ServiceSpec], per_service: Mapping[str, int]
) -> LinkSpec:
    data = _mapping(ctx, key, raw, "a mapping with service and port (optional: name, client, env, listen_port)")
    _check_keys(ctx, key, data, _LINK_KEYS, "a link")
    service = _known_service(ctx, _join(key, "service"), _require(ctx, key, data, "service", "a link", _LINK_NEEDS), services)
    port = _port(ctx, _join(key, "port"), _require(ctx, key, data, "port", "a link", _LINK_NEEDS))
    ckey = _join(key, "client")
    if data.get("client") is not None:
        client = _known_service(ctx, ckey, data["client"], services)
        if client == service:
            ctx.fail(ckey, f"the client must be another service than the legacy service {service!r} it calls")
    else:
        inferred = _infer_client(service, services)
        if inferred is None:
            ctx.fail(key, f"the stack has no service besides {service!r} to call it; add the cloud service")
        client = inferred
    env = None
    if data.get("env") is not None:
        env = _check_env(ctx, _join(key, "env"), data["env"], services[client], service, port)
    name = service if per_service.get(service, 1) <= 1 else f"{service}-{port}"
    if data.get("name") is not None:
        name = _string(ctx, _join(key, "name"), data["name"], "a link name")
    if not _LINK_NAME.match(name):
        ctx.fail(
            _join(key, "name"),
            f"link name {name!r} may use only a-z, 0-9, '_' and '-'"
            + ("" if data.get("name") is not None else " (it defaults to the service name; set name explicitly)"),
        )
    listen_port = port if env is None else DEFAULT_LISTEN_PORT + index
    if data.get("listen_port") is not None:
        listen_port = _integer(ctx, _join(key, "listen_port"), data["listen_port"], 1024, 65535, "a port number (1024..65535)")
        if env is None:
            ctx.fail(
                _join(key, "listen_port"),
                f"a transparent link listens on the legacy port ({port}) under the legacy's own name; "
                f"listen_port needs env (the client variable rewritten to Toxiproxy), or remove it",
            )
    elif listen_port > 65535:
        ctx.fail(_join(key, "listen_port"), f"the default {listen_port} is not a port; set listen_port explicitly")
    if listen_port == _TOXIPROXY_API_PORT:
        ctx.fail(
            _join(key, "listen_port" if data.get("listen_port") is not None else "port"),
            f"{listen_port} is Toxiproxy's own API port; set env and a listen_port other than {_TOXIPROXY_API_PORT}",
        )
    svc = services[service]
    names = tuple(dict.fromkeys([service, *svc.aliases]))
    return LinkSpec(name=name, service=service, port=port, client=client, env=env, listen_port=listen_port, names=names)


def _check_env(ctx: _Ctx, key: str, raw: object, client: ServiceSpec, service: str, port: int) -> str:
    env = _string(ctx, key, raw, "an environment variable name")
    authority = f"{service}:{port}"
    if env not in client.environment:
        ctx.fail(
            key,
            f"service {client.name!r} has no environment variable {env!r}; set it under services.{client.name}.environment "
            f"to the legacy address in the form the app reads (e.g. {env}: {authority}, or a URL if it takes one), or "
            "remove env: transparent links need no variable",
        )
    value = client.environment[env]
    if not re.search(rf"(?<![A-Za-z0-9_.-]){re.escape(authority)}(?![0-9])", value):
        bare_host = value.strip() in (service, *client.aliases) or re.fullmatch(r"[A-Za-z0-9_.-]+", value.strip() or "-")
        if bare_host:
            ctx.fail(
                key,
                f"services.{client.name}.environment.{env} is {value!r}, a bare host name: peakchaos can only rewrite a "
                f"'host:port'. Remove env from the link: transparent interception makes {value.strip()!r} reach "
                "Toxiproxy with no variable changed",
            )
        ctx.fail(
            key,
            f"services.{client.name}.environment.{env} is {value!r}, which does not contain {authority!r}; peakchaos "
            f"rewrites that host:port to point at Toxiproxy. Write the legacy address with that host and port, or "
            "remove env: transparent links need no variable",
        )
    return env


def check_link_ports(ctx: _Ctx, links: Sequence[LinkSpec]) -> None:
    """Two transparent links on the same port of different services would share one Toxiproxy port."""
    # (already caught as a duplicate listen_port; kept as a separate hook for backends with one IP per name)
    del ctx, links
