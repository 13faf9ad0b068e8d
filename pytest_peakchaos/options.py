"""Every ``--peakchaos-*`` option, its ini twin, and the one resolver that validates them.

A command-line value wins over the ini value; both are checked the same way and a bad one is a
``pytest.UsageError`` that names the option, the ini key, the value and what is valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .units import parse_duration


@dataclass(frozen=True)
class Option:
    name: str  # without the leading --peakchaos-
    help: str
    kind: str  # "path", "bool", "str", "float", "int", "duration"
    default: Any = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return f"--peakchaos-{self.name}"

    @property
    def ini(self) -> str:
        return "peakchaos_" + self.name.replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS: tuple[Option, ...] = (
    Option("stack", "compose file of the system under test (with an x-peakchaos block)", "path", metavar="FILE"),
    Option("keep", "leave the stack running after the session and print how to reach it", "bool", False),
    Option(
        "toxiproxy-image",
        "Toxiproxy image to put on the stack network",
        "str",
        "ghcr.io/shopify/toxiproxy:2.12.0",
        metavar="IMAGE",
    ),
    Option("startup-timeout", "how long the stack may take to become healthy (e.g. 180s)", "duration", 180.0, "DURATION"),
    Option("seed", "seed for load and fault schedules (default: random, printed on failure)", "int", None, "N"),
    Option("scale", "multiply every profile's session arrival rate by this factor", "float", 1.0, "FACTOR"),
    Option("report", "write peakchaos.json and peakchaos.html into this folder", "path", None, "DIR"),
    Option("xdist", "under pytest-xdist: per-worker (a stack per worker) or shared (one stack, experiments serialised per link)", "str", "per-worker", "MODE"),
    Option("engine", "load engine: python, native (the same engine in C: several times the live sessions per core) or auto "
           "(native where it can run the profile)", "str", "python", "NAME"),
    Option("dask", "split each experiment's load over the workers of this Dask scheduler (needs pytest-peakchaos[dask])", "str", None, "ADDRESS"),
)
BY_NAME = {opt.name: opt for opt in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("peakchaos", "peakchaos: chaos tests for cloud services in front of legacy systems")
    for opt in OPTIONS:
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.dest, help=opt.help + f" (ini: {opt.ini})")
            # read as text and parsed here, so that a bad value names the option (not pytest's bare
            # "invalid truth value")
            parser.addini(opt.ini, opt.help, type="string", default="")
        else:
            group.addoption(opt.flag, action="store", default=None, dest=opt.dest, metavar=opt.metavar, help=opt.help + f" (ini: {opt.ini})")
            parser.addini(opt.ini, opt.help, type="string", default="" if opt.default is None else str(opt.default))


def _bad(opt: Option, value: object, valid: str) -> pytest.UsageError:
    return pytest.UsageError(f"{opt.flag} / ini {opt.ini}: invalid value {value!r}; {valid}")


TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


def _convert(opt: Option, raw: object, base: Path) -> Any:
    if opt.kind == "bool":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word == "":
            return bool(opt.default)
        if word in TRUE or word in FALSE:
            return word in TRUE
        raise _bad(opt, str(raw).strip(), f"expected one of {', '.join(TRUE + FALSE)}")
    text = str(raw).strip()
    if text == "":
        return opt.default
    if opt.kind == "path":
        path = Path(os.path.expandvars(os.path.expanduser(text)))
        path = path if path.is_absolute() else (base / path)
        if opt.name == "report":
            _check_report_dir(opt, path)
        return path
    if opt.kind == "str":
        if any(ch.isspace() for ch in text):
            raise _bad(opt, text, "expected an image reference without spaces, e.g. ghcr.io/shopify/toxiproxy:2.12.0")
        return text
    if opt.kind == "int":
        try:
            whole = int(text)
        except ValueError:
            raise _bad(opt, text, "expected a whole number >= 0, e.g. 42") from None
        if whole < 0:
            raise _bad(opt, text, "expected a whole number >= 0, e.g. 42")
        return whole
    if opt.kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise _bad(opt, text, "expected a number greater than 0, e.g. 0.5 or 2") from None
        if not value > 0 or value == float("inf"):
            raise _bad(opt, text, "expected a number greater than 0, e.g. 0.5 or 2")
        return value
    if opt.kind == "duration":
        try:
            seconds = parse_duration(text, what=opt.flag)
        except ValueError as exc:
            raise pytest.UsageError(f"{opt.flag} / ini {opt.ini}: {exc}") from None
        if not seconds > 0 or seconds == float("inf"):
            raise _bad(opt, text, "expected a duration greater than 0, e.g. 180s or 3m")
        return seconds
    raise AssertionError(opt.kind)


def _check_report_dir(opt: Option, path: Path) -> None:
    """The report folder is created at the end: refuse now what cannot become a folder."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is a file" if part == path else f"has a file in its path ({part})"
                raise _bad(opt, str(path), f"{what}; expected a folder (created if missing) for peakchaos.json and .html")
            if not os.access(part, os.W_OK):
                raise _bad(opt, str(path), f"{part} is not writable; expected a writable folder")
            return


def resolve(config: pytest.Config, name: str) -> Any:
    """The validated value of option ``name``: command line first, then ini, then the default."""
    opt = BY_NAME[name]
    cli = config.getoption(opt.dest, default=None)
    if cli is not None:
        return _convert(opt, cli, Path(config.invocation_params.dir))
    ini: object = config.getini(opt.ini)
    base = config.inipath.parent if config.inipath else Path(config.rootpath)
    return _convert(opt, ini, base)


def resolve_all(config: pytest.Config) -> dict[str, Any]:
    return {opt.name: resolve(config, opt.name) for opt in OPTIONS}

