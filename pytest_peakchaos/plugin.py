"""The pytest plugin: options, markers, fixtures and hooks over the plain library.

Loaded with ``pytest -p peakchaos`` (entry point ``pytest11: peakchaos``). It is inert until a
stack is configured or a fixture asks for one, and importing it imports neither docker nor an HTTP
client: those come in when a stack is first started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator
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


def _logger(config: pytest.Config) -> Callable[[str], None]:
    """``[peakchaos] ...`` lines on the terminal, past output capturing (unless ``-q``).

    The terminal reporter is looked up when a line is written: at configure it may not exist yet.
    """

    def log(msg: str) -> None:
        if config.getoption("verbose", 0) < 0:
            return
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        text = "\n".join(f"[peakchaos] {line}" for line in msg.splitlines() or [""])
        if reporter is None:
            sys.stderr.write(text + "\n")
            return
        if capman is not None:
            with capman.global_and_fixture_disabled():
                reporter.ensure_newline()
                reporter.write_line(text)
        else:
            reporter.ensure_newline()
            reporter.write_line(text)

    return log


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.addinivalue_line("markers", HEADROOM_MARKER)
    settings = Settings.from_mapping(options.resolve_all(config))
    from . import xdist

    settings.xdist = xdist.check_mode(settings.xdist)
    from .load.native import ENGINES

    if settings.engine not in ENGINES:
        raise pytest.UsageError(f"--peakchaos-engine / ini peakchaos_engine: invalid value {settings.engine!r}; "
                                f"valid values: {', '.join(ENGINES)}")
    if settings.dask is not None:
        from .load.distributed import check_address

        try:
            settings.dask = check_address(settings.dask, "--peakchaos-dask / ini peakchaos_dask")
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    session = PeakchaosSession(settings=settings, log=_logger(config))
    try:
        session.load_spec()
    except ValueError as exc:  # ComposeError: file, key, what is valid
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    if xdist.is_worker(config):
        xdist.configure_worker(config, session)
    else:
        config.pluginmanager.register(xdist.ControllerPlugin(session, settings.xdist), "peakchaos-xdist-controller")
    if session.spec is not None:  # a stack to protect: SIGINT/SIGTERM stop cleanly (see .interrupt)
        from . import interrupt

        fresh = not interrupt.installed()  # an in-process pytester run inside a session: keep the outer's
        if interrupt.install():
            config.stash[_FORGET_FORCE] = interrupt.on_force(session.leftovers)
            if fresh:
                interrupt.reset()
                config.add_cleanup(interrupt.uninstall)


_FORGET_FORCE = pytest.StashKey[Callable[[], None]]()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Compose keys accepted and ignored (the policy's notes), once per run."""
    session = config.stash.get(SESSION_KEY, None)
    spec = getattr(session, "spec", None)
    notes = list(getattr(spec, "notes", None) or [])
    return [f"peakchaos: {spec.path}: {note}" for note in notes] if spec is not None else []


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
    forget = config.stash.get(_FORGET_FORCE, None)
    if forget is not None:
        forget()


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
def legacy_link(request: pytest.FixtureRequest, peakchaos_stack: Stack) -> Generator[Link, None, None]:
    """The stack's legacy link (Toxiproxy + capacity handle); every fault is reset after the test.

    Under pytest-xdist's shared mode the test holds the link's cross-process lock throughout."""
    from .xdist import locked

    link = peakchaos_stack.link()
    with locked(_session(request.config), link.name):
        link.reset()
        try:
            yield link
        finally:
            link.reset()


@pytest.fixture(autouse=True)
def _peakchaos_reset_links(request: pytest.FixtureRequest) -> Generator[None, None, None]:
    """After every test, every link of the session's stack is reset, whoever applied the fault
    (``stack.link().activate()``, the Toxiproxy client, a failed experiment): no fault leaks on."""
    session = request.config.stash.get(SESSION_KEY, None)
    uses_stack = {"peakchaos_stack", "peakchaos", "legacy_link", "toxiproxy"} & set(request.fixturenames)
    if session is not None and (session.harness_error is not None or session.rebuild_error is not None) and uses_stack:
        try:  # the harness broke in an earlier test: a fresh stack (once), else a skip saying why
            rebuilt = session.rebuild()
        except StackError as exc:
            pytest.skip(f"peakchaos: the harness broke earlier in the session, no verdict possible: {exc}")
        request.config.hook.pytest_peakchaos_stack_started(stack=rebuilt, config=request.config)
    yield
    stack = session.stack if session is not None else None
    if stack is None or (session is not None and session.harness_error is not None):
        return
    from .xdist import locked

    problems = []
    for link in list(stack.links.values()):
        try:
            with locked(session, link.name):  # shared xdist stack: never while another worker faults it
                link.reset()
        except Exception as exc:  # noqa: BLE001 - reported as the test's teardown error below
            problems.append(f"{link.name}: {exc}")
    if problems:
        pytest.fail("peakchaos: resetting the links after the test failed: " + "; ".join(problems), pytrace=False)


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
def peakchaos(request: pytest.FixtureRequest) -> Chaos:
    """Runs chaos experiments on the session's stack: ``peakchaos.run(profile=..., duration=..., faults=[...])``.

    The stack starts on the first ``run()`` (or ``.stack``), after its arguments were checked.
    """
    from .fixture import Chaos

    node = request.node

    def stack() -> Stack:
        started: Stack = request.getfixturevalue("peakchaos_stack")
        return started

    return Chaos(
        stack,
        _session(request.config),
        test=node.nodeid,
        progress=_progress(request.config),
        record=lambda key, value: node.user_properties.append((key, value)),
        finished=lambda result: request.config.hook.pytest_peakchaos_experiment_finished(result=result, config=request.config),
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
    """Marker arguments (profiles loaded) are checked now: a bad one stops the run before anything
    starts, naming the test. A test marked ``peakchaos`` gets its experiment run even if it asks
    for no fixture."""
    from .validate import check_marker

    problems = []
    for item in items:
        marker = item.get_closest_marker("peakchaos")
        if marker is not None:
            try:
                check_marker(marker.args, marker.kwargs)
            except ValueError as exc:
                problems.append(f"{item.nodeid}: {exc}")
    if problems:
        raise pytest.UsageError("bad @pytest.mark.peakchaos arguments (nothing was started):\n" + "\n".join(problems))
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
    if pc is None:
        return
    runs = [result.to_dict(test=name) for name, result in pc.results]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes the one report
        import json

        from .xdist import HEADROOM_KEY, RESULTS_KEY

        workeroutput[RESULTS_KEY] = json.dumps(runs)
        workeroutput[HEADROOM_KEY] = json.dumps([room.to_dict(test=name) for name, room in pc.headroom])
        return
    runs += pc.remote_results
    rooms = [room.to_dict(test=name) for name, room in pc.headroom] + pc.remote_headroom
    if not (runs or rooms) or pc.settings.report is None:
        return
    from .report import new_document, write_reports
    from .report.schema import ReportSchemaError

    document = new_document(runs)
    if rooms:
        document["headroom"] = rooms
    try:
        pc.report_files = write_reports(document, pc.settings.report)
    except ReportSchemaError as exc:
        pc.messages.append(f"report not written: {exc}")
        raise


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    if session.results or session.remote_results:
        from .report.terminal import summary_lines

        terminalreporter.section("peakchaos experiments")
        runs = [result.to_dict(test=name) for name, result in session.results] + session.remote_results
        for run in runs:
            for line in summary_lines(run):
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        for kind, path in (session.report_files or {}).items():
            terminalreporter.write_line(f"peakchaos {kind} report: {path}")
    if session.headroom or session.remote_headroom:
        terminalreporter.section("peakchaos headroom")
        for name, room in session.headroom:
            terminalreporter.write_line(f"{name}: {room.summary()}")
        for entry in session.remote_headroom:
            terminalreporter.write_line(f"{entry.get('test', '?')}: {entry.get('summary', '')}")
        for kind, path in (session.report_files or {}).items() if not (session.results or session.remote_results) else ():
            terminalreporter.write_line(f"peakchaos {kind} report: {path}")
    from . import interrupt

    if interrupt.requested():
        torn = ", ".join(session.stopped) or "none was started"
        terminalreporter.write_line(
            f"[peakchaos] interrupted by {interrupt.signal_name()}: load stopped, faults reverted, "
            f"stack torn down ({torn})"
        )
    stack = session.kept
    if stack is not None:
        terminalreporter.section("peakchaos")
        terminalreporter.write_line(stack.describe())
        terminalreporter.write_line(f"left running (--peakchaos-keep); remove with: peakchaos prune --run {stack.run_id}")
