"""Behaviour graphs with the profile's own states and session state, driven against the in-process
target: transitions match the matrix (chi-square), login with a CSRF form, a session cookie,
server-made cart ids, the cart's contents at checkout, data-driven users, TLS, counted warnings."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from pytest_peakchaos.load import run_load
from pytest_peakchaos.profiles import profile_from_yaml_text
from tests.unit.test_load_target import Target


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom (regularized upper
    incomplete gamma Q(dof/2, x/2), series / continued fraction as in Numerical Recipes 6.2)."""
    a, z = dof / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    gln = math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= z / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return 1.0 - total * math.exp(-z + a * math.log(z) - gln)
    b = z + 1 - a
    c = 1 / 1e-300
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-z + a * math.log(z) - gln) * h


def test_chi2_sf_matches_known_values() -> None:
    assert chi2_sf(3.841, 1) == pytest.approx(0.05, abs=1e-3)
    assert chi2_sf(18.307, 10) == pytest.approx(0.05, abs=1e-3)
    assert chi2_sf(100.0, 100) == pytest.approx(0.481, abs=2e-3)


# TPC-W-like browsing with 14 states of its own (none of the reference names)
STATES14 = ["landing", "new_items", "best_sellers", "find", "results", "item", "reviews", "wishlist",
            "basket", "coupon", "sign_in", "shipping", "payment", "receipt"]


def twelve_plus_profile() -> str:
    rows = {}
    n = len(STATES14)
    for i, s in enumerate(STATES14):
        t = {STATES14[(i + 1) % n]: 0.35, STATES14[(i + 3) % n]: 0.25, STATES14[(i + 7) % n]: 0.18, s: 0.10, "exit": 0.12}
        rows[s] = t
    rows_txt = "\n".join(f"    {s}: {{{', '.join(f'{k}: {v}' for k, v in r.items())}}}" for s, r in rows.items())
    binds = "\n".join(f"  {s}: {{method: GET, path: '/ok/{{session}}/{s}'}}" for s in STATES14)
    return f"""
name: tpcw14
arrival: {{shape: constant, rate: 300, duration: 30s}}
behaviour:
  think_scale: 0
  max_actions: 400
  transitions:
    entry: {{landing: 0.4, find: 0.3, item: 0.3}}
{rows_txt}
bindings:
{binds}
"""


def test_own_states_drive_a_stack_and_transitions_match_the_matrix() -> None:
    prof = profile_from_yaml_text(twelve_plus_profile())
    assert len(prof.actions) == 14 and not set(prof.actions) & {"home", "checkout", "view_product"}
    n_sessions = 1200
    with Target() as t:
        res = run_load(t.url, prof, duration="30s", seed=5, max_sessions=n_sessions, concurrency_cap=5000, max_requests=100_000,
                       request_timeout_s=5)
        log = list(t.log)
    assert res.stop_reason.startswith(("max_sessions", "sessions_done")), res.stop_reason
    assert res.sessions.completed == res.sessions.started > 1000
    walks: dict[str, list[str]] = defaultdict(list)
    for _, path, _, _ in log:
        _, _, sess, state = path.split("/")
        walks[sess].append(state)
    assert len(walks) == res.sessions.started
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for seq in walks.values():
        prev = "entry"
        for s in [*seq, "exit"]:
            counts[prev][s] += 1
            prev = s
    chi2, dof = 0.0, 0
    for src, row in prof.behaviour.transitions.items():
        total = sum(counts[src].values())
        assert total > 200, (src, total)
        assert set(counts[src]) <= {t for t, p in row.items() if p > 0}, f"{src}: a transition outside the matrix"
        for dst, p in row.items():
            expected = total * p
            chi2 += (counts[src][dst] - expected) ** 2 / expected
        dof += len(row) - 1
    p_value = chi2_sf(chi2, dof)
    assert p_value > 0.01, f"chi2={chi2:.1f} dof={dof} p={p_value:.4f}"


SHOP = """
name: session-shop
arrival: {shape: constant, rate: 40, duration: 20s}
session:
  headers: {Accept-Language: zh-TW, Accept-Encoding: identity}
data:
  user: {values: [{name: amy, password: a1}, {name: bo, password: b2}, {name: cy, password: c3}], pick: sequential}
behaviour:
  think_scale: 0
  transitions:
    entry:      {login_page: 1.0}
    login_page: {login: 1.0}
    login:      {new_cart: 1.0}
    new_cart:   {product: 1.0}
    product:    {add: 0.6, read: 0.2, product: 0.2}
    read:       {product: 1.0}
    add:        {product: 0.4, remove: 0.2, checkout: 0.4}
    remove:     {product: 0.7, checkout: 0.3}
    checkout:   {exit: 1.0}
bindings:
  login_page:
    method: GET
    path: /login
    capture: {csrf: {regex: 'name="csrf" value="([^"]+)"'}}
  login:
    method: POST
    path: /login
    draw: [user]
    form: {user: "{user.name}", password: "{user.password}", csrf: "{csrf}"}
  new_cart:
    method: POST
    path: /carts
    capture: {cart_id: cart.id, cart_url: {header: Location}}
  product: {method: GET, path: "/ok/{sku}", draw: [sku], class: cached, thresholds: {success: 0.9}}
  read: {request: false}
  add: {method: POST, path: "/carts/{cart_id}/items", headers: {X-Cart: "{cart_url}"}, json: {sku: "{sku}"}, cart: add, legacy: true}
  remove: {method: DELETE, path: "/carts/{cart_id}/items/{sku}", cart: remove, legacy: true}
  checkout:
    method: POST
    path: "/carts/{cart_id}/checkout"
    json: {items: "{cart}"}
    cart: clear
    legacy: true
    order: {idempotency_key: Idempotency-Key, id: order.id, acknowledge: [201]}
"""


def test_login_csrf_cookie_server_cart_ids_and_orders() -> None:
    prof = profile_from_yaml_text(SHOP)
    assert prof.action_classes() == {"login_page": "isolated", "login": "isolated", "new_cart": "isolated",
                                     "product": "cached", "read": "client", "add": "legacy", "remove": "legacy",
                                     "checkout": "legacy"}
    assert prof.legacy_actions == frozenset({"add", "remove", "checkout"})
    assert prof.action_thresholds() == {"product": {"success": 0.9}}
    with Target() as t:
        res = run_load(t.url, prof, duration="20s", seed=3, max_sessions=60, request_timeout_s=5, max_requests=10_000, concurrency_cap=500)
        log, headers = list(t.log), list(t.headers_log)
        shop_orders = dict(t.shop_orders)
        users = set(t.sessions.values())
    assert res.sessions.completed == 60
    assert "read" not in res.actions  # a client-side step sends nothing
    for name, s in res.actions.items():
        assert s.errors["status_4xx"] == 0 and s.error_count == 0, (name, s.status)
    assert res.actions["login"].status == {"303": 60}
    # every acknowledged order reached the shop's ledger, with the cart's contents it was sent
    keys = {o.idempotency_key for o in res.orders}
    assert len(keys) == 60 and keys == set(shop_orders)
    assert all(o.order_id == f"o-{o.idempotency_key}" for o in res.orders)
    assert users == {"amy", "bo", "cy"}
    logins = [b for m, p, _, b in log if m == "POST" and p == "/login"]
    assert all(b.startswith(b"user=") and b"&csrf=tok" in b for b in logins)
    carts = [h for (m, p, _, _), h in zip(log, headers) if m == "POST" and p.startswith("/carts/srv-")]
    assert carts and all(h["cookie"].startswith("sid=s") for h in carts)
    adds = [(p, h) for (m, p, _, _), h in zip(log, headers) if m == "POST" and p.endswith("/items")]
    assert adds and all(h["x-cart"] == p[: -len("/items")] for p, h in adds)  # a header capture, used in a header
    # the pre-session cookie has Path=/login: sent to /login only
    assert all("pre=" not in h.get("cookie", "") for (m, p, _, _), h in zip(log, headers) if not p.startswith("/login"))
    assert all(h["accept-language"] == "zh-TW" and h["accept-encoding"] == "identity" for h in headers)
    assert not res.warnings


def test_counted_warnings_capture_miss_bad_cookie_unset_variable() -> None:
    text = """
name: warn
arrival: {shape: constant, rate: 20, duration: 5s}
behaviour:
  think_scale: 0
  transitions:
    entry: {page: 1.0}
    page: {bad: 1.0}
    bad: {next: 1.0}
    next: {exit: 1.0}
bindings:
  page: {method: GET, path: "/ok/{token}", capture: {token: {regex: 'token=(\\w+)'}}}
  bad: {method: GET, path: /badcookie}
  next: {method: GET, path: /ok/next}
"""
    prof = profile_from_yaml_text(text)
    with Target() as t:
        res = run_load(t.url, prof, duration="5s", seed=1, max_sessions=10, max_requests=1000, concurrency_cap=500, request_timeout_s=5)
    w = res.warnings
    assert w["capture_miss"]["page.token"]["count"] == 10
    assert "status 200" in w["capture_miss"]["page.token"]["example"] and '{"ok": true}' in w["capture_miss"]["page.token"]["example"]
    assert w["unset_variable"]["page.token"]["count"] == 10
    assert w["bad_cookie"]["bad"]["count"] == 20  # two malformed lines per response
    assert "bad cookie name" in res.to_dict()["warnings"]["bad_cookie"]["bad"]["example"]
    assert "warning capture_miss page.token: 10x, e.g. status 200" in res.summary()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a self-signed certificate for the TLS test"
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.mark.parametrize("verify", [False, True])
def test_https_with_a_self_signed_certificate(self_signed: tuple[str, str], verify: bool) -> None:
    text = f"""
name: tls
arrival: {{shape: constant, rate: 20, duration: 3s}}
session: {{tls_verify: {str(verify).lower()}}}
behaviour:
  think_scale: 0
  transitions:
    entry: {{a: 1.0}}
    a: {{exit: 1.0}}
bindings:
  a: {{method: GET, path: /ok}}
"""
    with Target(tls=self_signed) as t:
        assert t.url.startswith("https://")
        res = run_load(t.url, profile_from_yaml_text(text), duration="3s", seed=1, max_sessions=5, max_requests=100, concurrency_cap=500, request_timeout_s=5)
    a = res.actions["a"]
    if verify:
        assert a.ok == 0 and a.errors["other"] == 5  # the certificate is not trusted
    else:
        assert a.ok == 5


def test_ca_bundle_path_verifies(self_signed: tuple[str, str]) -> None:
    cert, _ = self_signed
    text = f"""
name: tls-ca
arrival: {{shape: constant, rate: 20, duration: 3s}}
session: {{tls_verify: '{cert}'}}
behaviour:
  think_scale: 0
  transitions: {{entry: {{a: 1.0}}, a: {{exit: 1.0}}}}
bindings:
  a: {{method: GET, path: /ok}}
"""
    with Target(tls=self_signed) as t:
        res = run_load(t.url, profile_from_yaml_text(text), duration="3s", seed=1, max_sessions=3, max_requests=100, concurrency_cap=500, request_timeout_s=5)
    assert res.actions["a"].ok == 3
