"""The pytest plugin: options, markers, fixtures and hooks over the plain library.

Loaded with ``pytest -p peakchaos`` (entry point ``pytest11: peakchaos``). It is inert until a
stack is configured or a fixture asks for one, and importing it imports neither docker nor an HTTP
client: those come in when a stack is first started.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, cast

import pytest

from . import hookspecs, options
from .session import EngineUnavailable, PeakchaosSession, Settings
from .stack.base import StackError

if TYPE_CHECKING:
    from .experiment import ExperimentResult
    from .headroom import HeadroomResult
    from .fixture import Chaos
    from .link import Link
    from .stack.base import Stack
    from .toxiproxy import ToxiproxyClient

SESSION_KEY = pytest.StashKey[PeakchaosSession]()

MARKER = (
    "peakchaos(profile=..., duration=..., faults=[...], seed=None, checks=None): a chaos experiment "
    "run by the `peakchaos` fixture (see the README)"
)
HEADROOM_MARKER = (
    "peakchaos_headroom(profile=..., faults=[...], rates=(lo, hi), at_least=None, ...): a headroom search "
    "run by the `peakchaos_headroom` fixture; with at_least, the test fails below it (docs/headroom.md)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.addinivalue_line("markers", HEADROOM_MARKER)
    settings = Settings.from_mapping(options.resolve_all(config))
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def log(msg: str) -> None:
        if reporter is not None and config.getoption("verbose") > 0:
            reporter.write_line(f"[peakchaos] {msg}")

    session = PeakchaosSession(settings=settings, log=log)
    try:
        session.load_spec()
    except ValueError as exc:  # ComposeError: file, key, what is valid
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def _session(config: pytest.Config) -> PeakchaosSession:
    return config.stash[SESSION_KEY]


def _stack_or_outcome(config: pytest.Config) -> Stack:
    """The running stack, or a pytest outcome that says why not.

    No engine: fail when ``CI`` is set (a skip would hide a missing install step), skip otherwise.
    """
    try:
        return _session(config).get_stack()
    except EngineUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"peakchaos: {exc} (CI is set, so this fails instead of skipping)", pytrace=False)
        pytest.skip(f"peakchaos: {exc}")
    except StackError as exc:
        pytest.fail(f"peakchaos: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def peakchaos_stack(request: pytest.FixtureRequest) -> Generator[Stack, None, None]:
    """The system under test, started once per session from ``--peakchaos-stack``; torn down at the end."""
    config = request.config
    stack = _stack_or_outcome(config)
    config.hook.pytest_peakchaos_stack_started(stack=stack, config=config)
    yield stack
    config.hook.pytest_peakchaos_stack_stopping(stack=stack, config=config)
    _session(config).close()


@pytest.fixture
def legacy_link(peakchaos_stack: Stack) -> Generator[Link, None, None]:
    """The stack's legacy link (Toxiproxy + capacity handle); every fault is reset after the test."""
    link = peakchaos_stack.link()
    link.reset()
    try:
        yield link
    finally:
        link.reset()


@pytest.fixture
def toxiproxy(peakchaos_stack: Stack) -> Generator[ToxiproxyClient, None, None]:
    """The stack's Toxiproxy client; all proxies are reset (toxics removed, enabled) after the test."""
    client = peakchaos_stack.toxiproxy
    try:
        yield client
    finally:
        client.reset()


def _progress(config: pytest.Config) -> Any:
    """Live progress of an experiment on the terminal (in place on a tty, a line every 5 s elsewhere)."""
    from .fixture import Progress, stream_is_tty

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    # In place on a terminal with -s; otherwise plain lines (captured with the test's output).
    tty = stream_is_tty() and config.getoption("capture") == "no"
    return Progress(lambda text: reporter.write(text if tty else "  " + text, flush=True), tty=tty)


@pytest.fixture
def peakchaos(request: pytest.FixtureRequest, peakchaos_stack: Stack, legacy_link: Link) -> Chaos:
    """Runs chaos experiments on the session's stack: ``peakchaos.run(profile=..., duration=..., faults=[...])``."""
    from .fixture import Chaos

    node = request.node
    return Chaos(
        peakchaos_stack,
        _session(request.config),
        test=node.nodeid,
        progress=_progress(request.config),
        record=lambda key, value: node.user_properties.append((key, value)),
    )


@pytest.fixture
def peakchaos_result(request: pytest.FixtureRequest, peakchaos: Chaos) -> ExperimentResult:
    """The result of the experiment that the test's ``@pytest.mark.peakchaos(...)`` describes."""
    from .fixture import marker_kwargs

    marker = request.node.get_closest_marker("peakchaos")
    if marker is None:
        pytest.fail(
            "peakchaos_result needs a @pytest.mark.peakchaos(profile=..., duration=..., faults=[...]) marker "
            "on the test (or use the `peakchaos` fixture and call peakchaos.run(...))",
            pytrace=False,
        )
    try:
        kwargs = marker_kwargs(marker.args, marker.kwargs)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    return peakchaos.run(**kwargs)


@pytest.fixture
def peakchaos_headroom(request: pytest.FixtureRequest, peakchaos: Chaos) -> HeadroomResult:
    """The result of the headroom search that the test's ``@pytest.mark.peakchaos_headroom(...)`` describes."""
    from .headroom import headroom_kwargs

    marker = request.node.get_closest_marker("peakchaos_headroom")
    if marker is None:
        pytest.fail("peakchaos_headroom needs a @pytest.mark.peakchaos_headroom(rates=(lo, hi), ...) marker on the "
                    "test (or use the `peakchaos` fixture and call peakchaos.headroom(...))", pytrace=False)
    try:
        kwargs = headroom_kwargs(marker.args, marker.kwargs)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    kwargs.pop("at_least", None)
    return peakchaos.headroom(**kwargs)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``peakchaos`` gets its experiment run even if it asks for no fixture."""
    for item in items:
        if item.get_closest_marker("peakchaos") is not None and isinstance(item, pytest.Function):
            if "peakchaos_result" not in item.fixturenames:
                item.fixturenames.append("peakchaos_result")
                item.stash[_AUTO_ASSERT] = True
        if item.get_closest_marker("peakchaos_headroom") is not None and isinstance(item, pytest.Function):
            if "peakchaos_headroom" not in item.fixturenames:
                item.fixturenames.append("peakchaos_headroom")


_AUTO_ASSERT = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Marker-only tests (no ``peakchaos_result`` argument) assert graceful degradation after the body."""
    outcome = yield
    if item.stash.get(_AUTO_ASSERT, False) and isinstance(item, pytest.Function):
        result = cast("ExperimentResult | None", item.funcargs.get("peakchaos_result"))
        if result is not None:
            result.assert_graceful()
    marker = item.get_closest_marker("peakchaos_headroom")
    if marker is not None and marker.kwargs.get("at_least") is not None and isinstance(item, pytest.Function):
        room = cast("HeadroomResult | None", item.funcargs.get("peakchaos_headroom"))
        if room is not None:
            room.assert_headroom(at_least=marker.kwargs["at_least"])
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and "peakchaos_stack" in getattr(item, "fixturenames", ()):
        stack = _session(item.config).stack
        if stack is not None:
            for service, text in stack.logs(tail=60).items():
                report.sections.append((f"peakchaos logs: {service}", text))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    pc = session.config.stash.get(SESSION_KEY, None)
    if pc is None or not (pc.results or pc.headroom) or pc.settings.report is None:
        return
    from .report import new_document, write_reports
    from .report.schema import ReportSchemaError

    document = new_document([result.to_dict(test=name) for name, result in pc.results])
    if pc.headroom:
        document["headroom"] = [room.to_dict(test=name) for name, room in pc.headroom]
    try:
        pc.report_files = write_reports(document, pc.settings.report)
    except ReportSchemaError as exc:
        pc.messages.append(f"report not written: {exc}")
        raise


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    if session.results:
        from .report.terminal import summary_lines

        terminalreporter.section("peakchaos experiments")
        for name, result in session.results:
            for line in summary_lines(result.to_dict(test=name)):
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        for kind, path in (session.report_files or {}).items():
            terminalreporter.write_line(f"peakchaos {kind} report: {path}")
    stack = session.kept
    if stack is not None:
        terminalreporter.section("peakchaos")
        terminalreporter.write_line(stack.describe())
        terminalreporter.write_line(f"left running (--peakchaos-keep); remove with: peakchaos prune --run {stack.run_id}")
    if session.headroom:
        terminalreporter.section("peakchaos headroom")
        for name, room in session.headroom:
            terminalreporter.write_line(f"{name}: {room.summary()}")
        for kind, path in (session.report_files or {}).items() if not session.results else ():
            terminalreporter.write_line(f"peakchaos {kind} report: {path}")
