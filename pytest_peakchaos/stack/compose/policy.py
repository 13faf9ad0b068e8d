"""What peakchaos does with each key of the Compose Specification: the written policy.

Every top-level and service key of the specification is *supported* (it works as in compose, maybe
with a peakchaos twist said in the text), *ignored* (accepted; a one-line note in the run header says
why it does not matter for a test run) or *rejected* (an error with the reason and the fix). A key
the specification does not know is an error too. ``docs/compose.md`` shows :func:`markdown_table`;
a unit test checks that the table decides every key of the specification's JSON schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SUPPORTED = "supported"
IGNORED = "ignored"
REJECTED = "rejected"

#: what a rejection says when the key would let a container reach the host
_HOST = "it would let a container reach the host, and peakchaos containers must not"
_NET = "peakchaos puts every service on one private network per run, next to Toxiproxy"


@dataclass(frozen=True)
class Rule:
    decision: str  # SUPPORTED | IGNORED | REJECTED
    text: str  # supported: how; ignored: why it does not matter; rejected: why, and the fix


def _s(text: str) -> Rule:
    return Rule(SUPPORTED, text)


def _i(text: str) -> Rule:
    return Rule(IGNORED, text)


def _r(text: str) -> Rule:
    return Rule(REJECTED, text)


TOP_LEVEL: dict[str, Rule] = {
    "services": _s("required; each service as below"),
    "name": _s("project name (labels, image names); default: the folder's name"),
    "version": _i("obsolete in compose itself"),
    "volumes": _s("named volumes, fresh and empty per run; `external`, `driver`, `driver_opts`, `labels`, `name` are ignored (noted)"),
    "networks": _s("plain networks are ignored (one private network per run); services' `aliases` are honoured"),
    "secrets": _s("`file:` secrets inside the project, copied to `/run/secrets/<name>`; `environment:`/`external:` rejected"),
    "configs": _s("`file:` configs inside the project, copied to the service's `target` (default `/<name>`); others rejected"),
    "include": _r("other files are not pulled in; pass them with `-f a.yml -f b.yml` (override files are merged like compose)"),
    "models": _r("AI model runners are not part of a chaos test stack; remove them"),
}

SERVICE: dict[str, Rule] = {
    # --- supported
    "image": _s("the image to run (built when `build` is set too)"),
    "build": _s("local context folder, `dockerfile`, `args`, `target`; other build keys rejected"),
    "command": _s("string (split like a shell) or list"),
    "entrypoint": _s("string (split like a shell) or list"),
    "environment": _s("map or list; valueless entries take the variable's value"),
    "env_file": _s("path or list, relative to the compose file"),
    "ports": _s("always published on 127.0.0.1; no host port = a random one"),
    "expose": _s("tcp ports reachable on the run network"),
    "depends_on": _s("list or map with `condition`; `restart` and `required` are ignored (noted)"),
    "healthcheck": _s("`test`, `interval` (default 1s), `timeout`, `retries`, `start_period`, `start_interval`, `disable`"),
    "cpus": _s("CPU quota (capacity faults change it)"),
    "mem_limit": _s("memory limit"),
    "deploy": _s("`resources.limits.cpus/memory`; other deploy keys ignored (noted)"),
    "user": _s("user or uid[:gid]"),
    "working_dir": _s("absolute path"),
    "volumes": _s("named volumes; anonymous volumes (fresh per run); project files copied in (ro stays ro); tmpfs"),
    "tmpfs": _s("absolute paths, options after `:`"),
    "container_name": _s("a network alias (other services may address it); the real container name stays run-scoped"),
    "hostname": _s("the container's hostname and a network alias"),
    "networks": _s("names ignored (one network per run); `aliases` honoured as network aliases"),
    "secrets": _s("file secrets copied to `/run/secrets/<name>` (or `target`)"),
    "configs": _s("file configs copied to `target` (default `/<name>`)"),
    "profiles": _s("a service with profiles starts only when one is active (`COMPOSE_PROFILES`)"),
    "cap_drop": _s("capabilities dropped"),
    "read_only": _s("read-only root filesystem"),
    "shm_size": _s("size of /dev/shm"),
    "init": _s("runs an init process as PID 1"),
    "stop_signal": _s("signal sent on stop"),
    "stop_grace_period": _s("time before the stop is forced"),
    "tty": _s("allocates a terminal"),
    "stdin_open": _s("keeps stdin open"),
    "ulimits": _s("per-process limits (`nofile: 1024` or `{soft, hard}`)"),
    # --- accepted and ignored, with a note
    "restart": _i("a test run never restarts containers: a service that exits fails the run"),
    "labels": _i("peakchaos labels every container with its run id; the file's labels are not applied"),
    "label_file": _i("peakchaos labels every container with its run id"),
    "logging": _i("logs stay with the engine's default driver, so peakchaos can attach them to failed tests"),
    "platform": _i("images run on the engine's own platform"),
    "pull_policy": _i("images are built or found locally, pulled only when missing"),
    "pull_refresh_after": _i("images are built or found locally, pulled only when missing"),
    "links": _i("services reach each other by service name on the run network anyway"),
    "develop": _i("`compose watch` is for development, not for a test run"),
    "attach": _i("peakchaos reads logs itself"),
    "annotations": _i("not needed for a test run"),
    "domainname": _i("not needed for a test run"),
    "dns": _i("the run network's own DNS resolves the services"),
    "dns_opt": _i("the run network's own DNS resolves the services"),
    "dns_search": _i("the run network's own DNS resolves the services"),
    "mac_address": _i("the engine assigns addresses on the run network"),
    "mem_reservation": _i("a soft reservation changes nothing for a test run"),
    "mem_swappiness": _i("not needed for a test run"),
    "memswap_limit": _i("`mem_limit` is the limit that applies"),
    "oom_score_adj": _i("not needed for a test run"),
    "oom_kill_disable": _i("not needed for a test run"),
    "pids_limit": _i("not needed for a test run"),
    "cpu_shares": _i("`cpus` is the limit capacity faults change"),
    "cpu_count": _i("`cpus` is the limit capacity faults change"),
    "cpu_percent": _i("`cpus` is the limit capacity faults change"),
    "cpu_period": _i("`cpus` is the limit capacity faults change"),
    "cpu_quota": _i("`cpus` is the limit capacity faults change"),
    "cpu_rt_period": _i("`cpus` is the limit capacity faults change"),
    "cpu_rt_runtime": _i("`cpus` is the limit capacity faults change"),
    "cpuset": _i("`cpus` is the limit capacity faults change"),
    "blkio_config": _i("not needed for a test run"),
    "group_add": _i("not needed for a test run"),
    "scale": _i("peakchaos runs one container per service"),
    # --- rejected, with the reason
    "privileged": _r(f"privileged containers: {_HOST}; remove it"),
    "cap_add": _r(f"added capabilities: {_HOST}; remove it"),
    "devices": _r(f"host devices: {_HOST}; remove them"),
    "device_cgroup_rules": _r(f"device access: {_HOST}; remove them"),
    "gpus": _r(f"host GPUs: {_HOST}; remove it"),
    "network_mode": _r(f"{_NET}; remove it (services reach each other by service name)"),
    "pid": _r(f"sharing a PID namespace: {_HOST}; remove it"),
    "ipc": _r(f"sharing an IPC namespace: {_HOST}; remove it"),
    "uts": _r(f"sharing the UTS namespace: {_HOST}; remove it"),
    "userns_mode": _r(f"user namespace modes: {_HOST}; remove it"),
    "cgroup": _r(f"cgroup namespaces: {_HOST}; remove it"),
    "cgroup_parent": _r(f"host cgroups: {_HOST}; remove it"),
    "sysctls": _r(f"kernel parameters: {_HOST}; remove them"),
    "runtime": _r("other container runtimes are not supported; remove it (the engine's default runs every service)"),
    "isolation": _r("Windows isolation modes are not supported; remove it"),
    "credential_spec": _r("Windows credential specs are not supported; remove it"),
    "security_opt": _r(f"security options can turn off confinement: {_HOST}; remove it (peakchaos sets no-new-privileges)"),
    "storage_opt": _r("storage driver options are not supported; remove it"),
    "use_api_socket": _r(f"the Docker API socket inside a container: {_HOST}; remove it"),
    "volumes_from": _r("sharing another container's mounts is not supported; declare a named volume and mount it in both services"),
    "external_links": _r("containers outside the run are out of reach on purpose; add the service to the file"),
    "extra_hosts": _r("host entries can point at the host or outside machines, and the stack must stay on its own network; remove them"),
    "extends": _r("a service built from another file is not read; copy the extended service's keys in (YAML anchors and `<<:` merge keys work)"),
    "post_start": _r("lifecycle hooks are not supported; run the step in the image's entrypoint"),
    "pre_stop": _r("lifecycle hooks are not supported; run the step in the image's entrypoint"),
    "models": _r("AI model runners are not part of a chaos test stack; remove it"),
    "provider": _r("provider services are not supported; run the service as a container"),
}


def rule(section: Mapping[str, Rule], key: str) -> Rule | None:
    return section.get(key)


def markdown_table() -> str:
    """The policy as the tables in docs/compose.md (a test keeps the doc in step)."""
    lines: list[str] = []
    for title, section in (("Top-level keys", TOP_LEVEL), ("Service keys", SERVICE)):
        lines += [f"### {title}", "", "| key | decision | what peakchaos does |", "|---|---|---|"]
        for decision in (SUPPORTED, IGNORED, REJECTED):
            for key, r in section.items():
                if r.decision == decision:
                    lines.append(f"| `{key}` | {decision} | {r.text} |")
        lines.append("")
    return "\n".join(lines)
