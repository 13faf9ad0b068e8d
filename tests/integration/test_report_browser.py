"""The HTML report in a real headless browser (Debian's ``chromium``): it renders, it shows
plots, and the browser has nothing to complain about.

Without chromium: fails when CI is set (a skip would hide a missing install step), skips otherwise.
Set PEAKCHAOS_KEEP_SCREENSHOT=DIR to keep the page and its screenshot for a look.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_peakchaos.report import write_reports

from ..unit.test_report import ACTIONS, make_document, make_run

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1280, 2400)


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    msg = "no headless browser: install Debian's `chromium` package (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set: failing instead of skipping)", pytrace=False)
    pytest.skip(msg)


def _run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
        # nothing leaves the machine: chromium's own update/account calls resolve nowhere
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
    ]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, check=False)


def _console_errors(stderr: str) -> list[str]:
    """Console output of the page. The report has no JavaScript, so any message is a problem
    (chromium logs console.error and uncaught exceptions alike as ``INFO:CONSOLE``)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked for (not chromium's own background calls), from a net log."""
    events = json.loads(net_log.read_text(encoding="utf-8"))["events"]
    urls = set()
    for event in events:
        params = event.get("params") or {}
        url = params.get("url")
        if isinstance(url, str) and str(params.get("network_isolation_key", "")).startswith("file://"):
            if not url.startswith(("file:", "data:", "blob:", "about:")):
                urls.add(url)
    return sorted(urls)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report")
    # the Double-11 lesson: same arrival rate, normal shoppers pass, sale-day shoppers cascade
    # ... and one row that could not be measured, passed only because the policy was lenient
    normal = make_run(test="tests/acceptance/test_scenarios.py::test_double11_lesson[normal]", profile="normal",
                      not_measured=True, strict=False)
    sale = make_run(test="tests/acceptance/test_scenarios.py::test_double11_lesson[double11]", naive=True, seed=99)
    return write_reports(make_document(normal, sale), folder)


def test_report_renders_in_headless_chromium(rendered: dict[str, Path], tmp_path: Path) -> None:
    browser = _chromium()
    from PIL import Image

    page = rendered["html"]
    url = page.resolve().as_uri()
    shot = tmp_path / "report.png"
    done = _run_chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}",
                         f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}"
    assert _console_errors(done.stderr) == []

    with Image.open(shot) as img:
        rgb = img.convert("RGB")
    assert rgb.size == WINDOW
    found = rgb.getcolors(maxcolors=WINDOW[0] * WINDOW[1])  # [(pixels, (r, g, b)), ...]
    assert found is not None
    counted: list[tuple[int, tuple[int, ...]]] = [(n, tuple(c)) for n, c in found if isinstance(c, tuple)]
    total = WINDOW[0] * WINDOW[1]
    non_white = sum(n for n, (r, g, b) in counted if min(r, g, b) < 235)
    assert non_white / total > 0.08, f"page looks blank: {non_white} of {total} pixels are not white"
    assert len(counted) > 200, f"page looks flat: {len(counted)} distinct colours"

    def painted(hex_colour: str, tolerance: int = 12, at_least: int = 200) -> bool:
        want = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        return sum(n for n, c in counted if all(abs(a - b) < tolerance for a, b in zip(c, want))) >= at_least

    assert painted("#2e7d32"), "no PASSED badge (green) on screen"
    assert painted("#c62828"), "no FAILED badge (red) on screen"
    assert painted("#4e79a7", at_least=100), "no plot line (p50 / browse blue) on screen"
    assert painted("#fff3d6", tolerance=4, at_least=2000), "no not-measured row (amber) on screen"

    keep = os.environ.get("PEAKCHAOS_KEEP_SCREENSHOT")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
        shutil.copy(page, Path(keep) / "peakchaos.html")


def test_the_browser_checks_would_see_a_bad_page(tmp_path: Path) -> None:
    """The console and network checks are not vacuous: a page with a script error and an
    external image trips both."""
    browser = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("boom"); null.f();</script>'
                   '<img src="https://peakchaos.invalid/x.png"></body></html>', encoding="utf-8")
    net_log = tmp_path / "net-log.json"
    done = _run_chromium(browser, tmp_path / "profile-bad", f"--log-net-log={net_log}", "--dump-dom", bad.as_uri())
    errors = _console_errors(done.stderr)
    assert any('"boom"' in line for line in errors) and any("Uncaught TypeError" in line for line in errors), errors
    assert _page_requests(net_log) == ["https://peakchaos.invalid/x.png"]


def test_report_dom_has_the_plots_and_tables(rendered: dict[str, Path], tmp_path: Path) -> None:
    browser = _chromium()
    net_log = tmp_path / "net-log.json"
    done = _run_chromium(browser, tmp_path / "profile-dom", f"--log-net-log={net_log}", "--dump-dom",
                         rendered["html"].resolve().as_uri())
    dom = done.stdout
    assert "</html>" in dom, f"chromium dumped no DOM (exit {done.returncode}):\n{done.stderr[-3000:]}"
    assert _console_errors(done.stderr) == []
    assert _page_requests(net_log) == []  # self-contained: the page fetched nothing
    assert len(re.findall(r"<svg\b", dom)) == 7  # 3 plots per run + the comparison chart
    assert dom.count('class="plot"') == 7
    assert len(re.findall(r"<path\b", dom)) > 100  # the plots have lines in them
    assert dom.count("<table>") >= 6
    assert "test_double11_lesson[double11]" in dom and "latency 800±200ms downstream 10s→30s" in dom
    for action in ACTIONS:
        assert action in dom
    # not measured: its own word and class, never the pass mark
    [nm_row] = re.findall(r'<tr class="nm">.*?</tr>', dom)
    assert "? not measured" in nm_row and "✔" not in nm_row and "no legacy call counter" in nm_row
    assert "passed only because strict=False" in dom
