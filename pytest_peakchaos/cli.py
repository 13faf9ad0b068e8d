"""``peakchaos`` command line: ``doctor``, ``prune``, ``up``, ``calibrate``, ``report``.

Thin over the library: every command is a few calls into it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

DEFAULT_STACK = "compose/shop.yml"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("MISS" if self.required else "--  ")
        return f"  [{mark}] {self.name:<22} {self.detail}"


def _toxiproxy_binary() -> Check:
    candidates = [os.environ.get("PEAKCHAOS_TOXIPROXY_SERVER", ""), ".state/bin/toxiproxy-server"]
    found = shutil.which("toxiproxy-server")
    if found:
        candidates.append(found)
    for cand in candidates:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            try:
                out = subprocess.run([cand, "-version"], capture_output=True, text=True, timeout=10, check=False)
                version = (out.stdout or out.stderr).strip()
            except (OSError, subprocess.TimeoutExpired) as exc:
                version = f"does not run: {exc}"
            return Check("toxiproxy binary", True, f"{cand} ({version})", required=False)
    return Check("toxiproxy binary", False, "not found (only the local backend needs it)", required=False)


def doctor(stack_file: str | None, toxiproxy_image: str) -> list[Check]:
    """What peakchaos can use here: engine, Toxiproxy, the images a stack needs."""
    checks: list[Check] = [Check("python", True, sys.version.split()[0])]
    try:
        import docker
        import docker.errors

        checks.append(Check("docker SDK", True, docker.__version__))
    except ImportError as exc:
        checks.append(Check("docker SDK", False, str(exc)))
        return checks
    try:
        client = docker.from_env(timeout=10)
        version = client.version()
        checks.append(Check("docker engine", True, f"{version.get('Version')} (API {version.get('ApiVersion')})"))
    except (docker.errors.DockerException, OSError) as exc:
        checks.append(Check("docker engine", False, f"not reachable: {exc}; `make setup` starts one"))
        checks.append(_toxiproxy_binary())
        return checks

    def image(ref: str, what: str, required: bool = True) -> Check:
        try:
            img = client.images.get(ref)
            size = (img.attrs.get("Size") or 0) / 1e6
            return Check(what, True, f"{ref} ({size:.0f} MB)", required)
        except docker.errors.ImageNotFound:
            return Check(what, False, f"{ref} not present", required)

    checks.append(image(toxiproxy_image, "toxiproxy image"))
    checks.append(_toxiproxy_binary())
    path = Path(stack_file) if stack_file else Path(DEFAULT_STACK)
    if not path.is_file():
        checks.append(Check("stack", stack_file is None, f"{path} not found", required=stack_file is not None))
        return checks
    from .stack.compose import load_compose

    try:
        spec = load_compose(path)
    except ValueError as exc:
        checks.append(Check("stack", False, str(exc)))
        return checks
    checks.append(Check("stack", True, f"{path}: services {', '.join(spec.services)}; links {', '.join(l.name for l in spec.links) or 'none'}"))
    for svc in spec.services.values():
        if svc.build is not None:
            for key, value in svc.build.args.items():
                if "IMAGE" in key.upper():
                    checks.append(image(value, f"base of {svc.name}"))
            tag = svc.image or f"peakchaos/{spec.project}-{svc.name}:latest"
            built = image(tag, f"image {svc.name}", required=False)
            if not built.ok:
                built.detail += " (built on first run)"
            checks.append(built)
        elif svc.image:
            checks.append(image(svc.image, f"image {svc.name}"))
    return checks


def _cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor(args.stack, args.toxiproxy_image)
    print("peakchaos doctor")
    for check in checks:
        print(check.line())
    missing = [c for c in checks if c.required and not c.ok]
    if missing:
        print(f"missing: {', '.join(c.name for c in missing)}  (run `make setup`)")
        return 1
    print("everything the demo needs is here")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from .stack.docker import docker_client
    from .stack.reaper import sweep

    report = sweep(docker_client(), include_kept=args.all or bool(args.run), only_run=args.run)
    print(report.summary())
    for err in report.errors:
        print(f"  error: {err}")
    return 1 if report.errors else 0


def _cmd_up(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .stack.compose import load_compose
    from .stack.docker import DockerStack

    spec = load_compose(args.stack)
    stack = DockerStack(spec, toxiproxy_image=args.toxiproxy_image, log=print)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with stack:
        print(stack.describe())
        if args.seconds is not None:
            done.wait(args.seconds)
        else:
            print("Ctrl-C to stop")
            try:
                done.wait()
            except KeyboardInterrupt:
                pass
    print(f"stack {stack.run_id} removed")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import DEFAULT_EXCLUDE, JsonFields, calibrate, write_outputs
    from .calibrate.emit import profile_yaml
    from .units import parse_duration

    mixes: int | str | None = None
    if args.mixes is not None:
        if args.mixes == "auto":
            mixes = "auto"
        elif args.mixes.isdigit() and int(args.mixes) >= 1:
            mixes = int(args.mixes)
        else:
            raise ValueError(f"--mixes: expected a number of groups >= 1 or 'auto', got {args.mixes!r}")
        if args.output is None:
            raise ValueError("--mixes: each group is written as its own profile next to -o/--output FILE; give -o")
    cal = calibrate(
        args.logs,
        routes=args.routes,
        fmt=args.format,
        session_field=args.session_field,
        json_fields=JsonFields.parse(args.field) if args.field else None,
        timeout=parse_duration(args.timeout, what="--timeout"),
        time_is=args.time_is,
        max_states=args.max_states,
        exclude=None if args.include_static else (args.exclude or DEFAULT_EXCLUDE),
        name=args.name,
        seed=args.seed,
        mixes=mixes,
        use_session_id=not args.no_session_id,
    )
    print(f"peakchaos calibrate: {cal.summary()}", file=sys.stderr)
    for w in cal.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(profile_yaml(cal))
        written = write_outputs(cal, report=args.report) if args.report else {}
    else:
        written = write_outputs(cal, profile=args.output, report=args.report)
    for kind, path in written.items():
        print(f"  wrote {kind}: {path}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import HTML_NAME, JSON_NAME, load_json, new_document, write_html, write_json

    inputs = [Path(p) for p in args.reports]
    docs = [load_json(p) for p in inputs]  # validated: a bad file stops everything before writing
    if len(docs) == 1:
        document = docs[0]
        out_dir = Path(args.output) if args.output else inputs[0].parent
    else:
        if not args.output:
            raise ValueError("report: combining several reports needs -o/--output DIR for the combined peakchaos.json and .html")
        out_dir = Path(args.output)
        runs = []
        for path, doc in zip(inputs, docs):
            for run in doc["runs"]:
                run = dict(run)
                run.setdefault("stack", doc.get("stack", "not recorded"))
                run["source"] = {"file": str(path), "generated_at": doc.get("generated_at", "")}
                runs.append(run)
        document = new_document(runs)
    json_out = out_dir / JSON_NAME
    if len(docs) > 1 and any(json_out.resolve() == p.resolve() for p in inputs):
        raise ValueError(f"report: {json_out} is one of the inputs; give another -o/--output DIR")
    if len(docs) > 1:
        write_json(document, json_out)
        print(f"wrote {json_out} ({len(document['runs'])} runs from {len(inputs)} reports)")
    html_out = write_html(document, out_dir / HTML_NAME)
    print(f"wrote {html_out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peakchaos", description="Chaos tests for cloud services in front of legacy systems.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("doctor", help="show what is available (engine, toxiproxy, images); non-zero if the demo cannot run")
    p.add_argument("--stack", default=None, help=f"compose file to check (default {DEFAULT_STACK} if present)")
    p.add_argument("--toxiproxy-image", default="ghcr.io/shopify/toxiproxy:2.12.0")
    p.set_defaults(func=_cmd_doctor)
    p = sub.add_parser("prune", help="remove resources of dead runs (--all: also kept ones; --run ID: one run)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--run", default=None)
    p.set_defaults(func=_cmd_prune)
    p = sub.add_parser("up", help="start a stack, print its endpoints, tear it down on Ctrl-C (or after --seconds)")
    p.add_argument("--stack", default=DEFAULT_STACK)
    p.add_argument("--toxiproxy-image", default="ghcr.io/shopify/toxiproxy:2.12.0")
    p.add_argument("--seconds", type=float, default=None)
    p.set_defaults(func=_cmd_up)
    p = sub.add_parser("calibrate", help="build a profile from access logs (nginx/Apache combined, JSON lines; gzip ok)",
                       description="Measure shopper behaviour in access logs and write it as a profile (docs/calibration.md).")
    p.add_argument("logs", nargs="+", help="access log files, in time order (rotated logs oldest first)")
    p.add_argument("-o", "--output", default=None, help="write the profile YAML here (default: print it)")
    p.add_argument("--report", default=None, help="write the HTML calibration report here")
    p.add_argument("--routes", default=None, help="route map YAML: routes: {\"GET /products/{sku}\": view_product, ...}")
    p.add_argument("--format", default="auto", choices=("auto", "combined", "json"), help="log format (default: detected)")
    p.add_argument("--session-field", default="sid", help="extra field or cookie naming the session (default sid)")
    p.add_argument("--no-session-id", action="store_true", help="ignore session fields: sessions by client address + user agent")
    p.add_argument("--field", action="append", default=[], metavar="NAME=KEY[,KEY]",
                   help="JSON lines: which key holds time, method, path, request, status, client, agent, session, request_time")
    p.add_argument("--timeout", default="30m", help="inactivity that ends a session (default 30m)")
    p.add_argument("--time-is", default="end", choices=("end", "start"), help="a line's time is the request's end (nginx) or start (Apache %%t)")
    p.add_argument("--max-states", type=int, default=40, help="most states; rarer path templates become 'other' (default 40)")
    p.add_argument("--mixes", default=None, metavar="K|auto", help="also cluster sessions into K behaviour mixes (auto: chosen by held-out likelihood)")
    p.add_argument("--name", default="calibrated", help="profile name")
    p.add_argument("--exclude", default=None, help="regex of paths to drop (default: static assets)")
    p.add_argument("--include-static", action="store_true", help="keep static assets (css, js, images, fonts)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reservoir samples and clustering")
    p.set_defaults(func=_cmd_calibrate)
    p = sub.add_parser("report", help="re-render the HTML of JSON reports; several are combined into one",
                       description="peakchaos report reports/peakchaos.json [more.json ...] [-o DIR]")
    p.add_argument("reports", nargs="+", help="peakchaos.json files")
    p.add_argument("-o", "--output", default=None, help="output directory (default: the report's own; required to combine)")
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (ValueError, RuntimeError) as exc:
        print(f"peakchaos {args.command}: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
