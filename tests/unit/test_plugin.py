"""The pytest plugin itself, tested with pytester: options, ini twins, errors, cheap import, outcomes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pytest_peakchaos.options import OPTIONS

HEAVY = ("docker", "requests", "aiohttp", "urllib3", "toxiproxy", "http.client", "pyreqwest", "matplotlib", "yaml")


def test_importing_the_plugin_imports_no_heavy_library() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import pytest_peakchaos, pytest_peakchaos.plugin
        from pytest_peakchaos import __all__  # noqa
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"plugin import pulled in: {out.stdout.strip()}"


def test_public_api_is_lazy_and_complete() -> None:
    import pytest_peakchaos

    assert "latency" in pytest_peakchaos.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_peakchaos.nope  # noqa: B018


def test_help_shows_the_option_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "peakchaos", "--help")
    result.stdout.fnmatch_lines(["*peakchaos: chaos tests for cloud services*"])
    for opt in OPTIONS:
        result.stdout.fnmatch_lines([f"*{opt.flag}*"])
        result.stdout.fnmatch_lines([f"*{opt.ini}*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "peakchaos", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.peakchaos(profile=*"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--peakchaos-scale", "-2"], "--peakchaos-scale / ini peakchaos_scale: invalid value '-2'; expected a number greater than 0"),
        (["--peakchaos-scale", "lots"], "expected a number greater than 0"),
        (["--peakchaos-seed", "x1"], "--peakchaos-seed / ini peakchaos_seed: invalid value 'x1'; expected a whole number"),
        (["--peakchaos-startup-timeout", "soon"], "--peakchaos-startup-timeout / ini peakchaos_startup_timeout: --peakchaos-startup-timeout: cannot read 'soon'"),
        (["--peakchaos-startup-timeout=-5s"], "cannot read '-5s' as a duration"),
        (["--peakchaos-engine", "rust"], "--peakchaos-engine / ini peakchaos_engine: invalid value 'rust'; valid values: python, native, auto"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], fragment: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "peakchaos", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{fragment}*"])


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npeakchaos_scale = zero\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "peakchaos")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini peakchaos_scale: invalid value 'zero'*"])


def test_cli_value_wins_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npeakchaos_scale = 3\npeakchaos_seed = 7\n")
    pytester.makepyfile(
        """
        from pytest_peakchaos.options import resolve
        def test_x(pytestconfig):
            assert resolve(pytestconfig, "scale") == 0.5
            assert resolve(pytestconfig, "seed") == 7
            assert resolve(pytestconfig, "keep") is False
        """
    )
    result = pytester.runpytest("-p", "peakchaos", "--peakchaos-scale", "0.5")
    result.assert_outcomes(passed=1)


def test_malformed_compose_file_is_a_usage_error_before_anything_starts(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("stack.yml").write_text(
        "services:\n  cloud:\n    image: x\n    privileged: true\n"
    )
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-p", "peakchaos", "--peakchaos-stack", "stack.yml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*stack.yml: services.cloud.privileged*"])
    result.stdout.no_fnmatch_line("*passed*")


def test_missing_compose_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npeakchaos_stack = nowhere/shop.yml\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "peakchaos")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nowhere/shop.yml*"])


def test_fixture_without_a_stack_fails_with_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(peakchaos_stack): pass")
    result = pytester.runpytest("-p", "peakchaos")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no stack configured: pass --peakchaos-stack*peakchaos_stack in the ini file*"])


MINIMAL_STACK = "services:\n  legacy:\n    image: peakchaos/python-base:bookworm\n"


@pytest.mark.parametrize(("ci", "outcome"), [("1", "errors"), ("", "skipped")])
def test_no_engine_fails_under_ci_and_skips_elsewhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{pytester.path}/no-engine.sock")
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.path.joinpath("stack.yml").write_text(MINIMAL_STACK)
    pytester.makepyfile("def test_x(peakchaos_stack): pass")
    result = pytester.runpytest_subprocess("-p", "peakchaos", "--peakchaos-stack", "stack.yml", "-rs")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*no Docker engine answers*"])
    if ci:
        result.stdout.fnmatch_lines(["*CI is set, so this fails instead of skipping*"])
