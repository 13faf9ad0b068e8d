"""Unit tests of the compose parser: no Docker, no network, only files in tmp_path."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from pytest_peakchaos.stack.compose import (
    BuildSpec,
    ComposeError,
    DependsOn,
    HealthcheckSpec,
    LedgerSpec,
    LinkSpec,
    PortSpec,
    ServiceSpec,
    StackSpec,
    VolumeMount,
    load_compose,
)

MiB = 1024**2
GiB = 1024**3


def write(folder: Path, text: str, name: str = "shop.yml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def service(name: str, **overrides: object) -> ServiceSpec:
    """A ServiceSpec with every field at its 'not set' value, then ``overrides``."""
    fields: dict[str, object] = dict(
        name=name,
        image=None,
        build=None,
        command=None,
        entrypoint=None,
        environment={},
        ports=[],
        expose=[],
        depends_on=[],
        healthcheck=None,
        cpus=None,
        mem_limit_bytes=None,
        user=None,
        working_dir=None,
        volumes=[],
        tmpfs=[],
    )
    fields.update(overrides)
    return ServiceSpec(**fields)  # type: ignore[arg-type]


FULL = """\
version: "3.9"
name: shop-test
x-defaults: &limits
  cpus: 0.5
services:
  cloud:
    build:
      context: ../apps/cloud
      dockerfile: Dockerfile.cloud
      args:
        BASE_IMAGE: ${BASE_IMAGE:-python:3.12-slim}
        PIP_INDEX:
        UNSET_ARG:
    image: peakchaos/cloud:${TAG-dev}
    command: python3 app.py --port "8000"
    env_file: [cloud.env, extra.env]
    environment:
      LEGACY_URL: http://legacy:${LEGACY_PORT:-9000}
      MODE: resilient
      WORKERS: 32
      RATIO: 0.75
      VERBOSE: true
      DEBUG: yes
      PRICE: $$5
      REGION: ${REGION:+eu}
      FROM_SHELL:
      NOT_IN_SHELL:
    ports:
      - "8000"
      - 18080:8080
      - 10022:22
      - 127.0.0.1:18081:8081
      - 127.0.0.1::8082
      - localhost:18083:8083/tcp
      - "5353/udp"
      - 8085
      - target: 8084
        published: "${PUB_PORT:-18084}"
        host_ip: 127.0.0.1
        protocol: udp
    expose: [8000, "8086/tcp", "8087"]
    depends_on:
      legacy:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
    healthcheck:
      test: curl -fsS http://localhost:8000/health || exit 1
      interval: 1m30s
      timeout: 500ms
      retries: "3"
      start_period: 2s
    deploy:
      resources:
        limits:
          cpus: "1.5"
          memory: 1g
    user: 1000
    working_dir: /app
    tmpfs: /tmp
  legacy:
    <<: *limits
    image: peakchaos/legacy:dev
    entrypoint: ["python3", "app.py"]
    environment: ["HOST=", "PORT=9000", "DB_PATH=/data/legacy.db", FROM_SHELL, NOT_IN_SHELL, "EQ=a=b"]
    healthcheck:
      test: ["CMD", "python3", "-c", "print(1)"]
      interval: 250ms
    mem_limit: 512m
    volumes:
      - legacy-data:/data
      - cache:/cache:ro
      - type: volume
        source: cache
        target: /cache2
        read_only: true
    tmpfs: [/run, "/var/tmp:size=64m"]
    depends_on: [db]
  db:
    image: busybox
    command: ["sleep", 3600]
    healthcheck: {test: ["NONE"]}
    mem_limit: 268435456
    x-note: extension fields in a service are allowed
  migrate:
    build: ../apps/migrate
    command: sh -c 'echo $$HOME'
    depends_on: [db]
    healthcheck: {disable: true}
    mem_limit: 64MiB
volumes:
  legacy-data:
  cache: {}
x-peakchaos:
  links:
    - service: legacy
      port: 9000
      client: cloud
      env: LEGACY_URL
  ledger:
    service: legacy
    port: 9000
    path: /orders
"""


@pytest.fixture()
def full(tmp_path: Path) -> StackSpec:
    apps = tmp_path / "apps"
    (apps / "cloud").mkdir(parents=True)
    (apps / "cloud" / "Dockerfile.cloud").write_text("FROM scratch\n")
    (apps / "migrate").mkdir()
    (apps / "migrate" / "Dockerfile").write_text("FROM scratch\n")
    write(tmp_path / "compose", "# shared\nMODE=naive\nWORKERS=4\nFILE_ONLY='single $NOT_EXPANDED'\n", "cloud.env")
    write(
        tmp_path / "compose",
        'export QUOTED="a \\"b\\" ${TAG}"\nSPACED = plain value # a comment\nREF=$WORKERS-x\nFROM_SHELL\n',
        "extra.env",
    )
    path = write(tmp_path / "compose", FULL)
    environ = {"TAG": "v1", "LEGACY_PORT": "9000", "PIP_INDEX": "http://pypi.local", "FROM_SHELL": "shell", "REGION": ""}
    return load_compose(path, environ=environ)


def test_full_example_top_level(full: StackSpec, tmp_path: Path) -> None:
    assert full.path == (tmp_path / "compose" / "shop.yml").resolve()
    assert full.project == "shop-test"
    assert list(full.services) == ["cloud", "legacy", "db", "migrate"]
    assert full.volumes == ["legacy-data", "cache"]
    assert full.links == [LinkSpec(name="legacy", service="legacy", port=9000, client="cloud", env="LEGACY_URL", listen_port=8666, names=("legacy",))]
    assert full.ledger == LedgerSpec(service="legacy", port=9000, path="/orders")
    assert full.start_order() == ["db", "legacy", "migrate", "cloud"]


def test_full_example_cloud(full: StackSpec, tmp_path: Path) -> None:
    cloud = full.services["cloud"]
    assert cloud.build == BuildSpec(
        context=(tmp_path / "apps" / "cloud").resolve(),
        dockerfile="Dockerfile.cloud",
        args={"BASE_IMAGE": "python:3.12-slim", "PIP_INDEX": "http://pypi.local"},
    )
    assert cloud.image == "peakchaos/cloud:v1"
    assert cloud.command == ["python3", "app.py", "--port", "8000"]
    assert cloud.entrypoint is None
    assert cloud.environment == {
        # env files, in order, then `environment` on top
        "MODE": "resilient",
        "WORKERS": "32",
        "FILE_ONLY": "single $NOT_EXPANDED",
        "QUOTED": 'a "b" v1',
        "SPACED": "plain value",
        "REF": "4-x",
        "FROM_SHELL": "shell",
        "LEGACY_URL": "http://legacy:9000",
        "RATIO": "0.75",
        "VERBOSE": "true",
        "DEBUG": "yes",  # YAML 1.2 like compose: not a boolean
        "PRICE": "$5",
        "REGION": "",
    }
    assert cloud.ports == [
        PortSpec(8000, "tcp", None, "127.0.0.1"),
        PortSpec(8080, "tcp", 18080, "127.0.0.1"),
        PortSpec(22, "tcp", 10022, "127.0.0.1"),  # not the YAML 1.1 sexagesimal 601342
        PortSpec(8081, "tcp", 18081, "127.0.0.1"),
        PortSpec(8082, "tcp", None, "127.0.0.1"),
        PortSpec(8083, "tcp", 18083, "127.0.0.1"),
        PortSpec(5353, "udp", None, "127.0.0.1"),
        PortSpec(8085, "tcp", None, "127.0.0.1"),
        PortSpec(8084, "udp", 18084, "127.0.0.1"),
    ]
    assert cloud.expose == [8000, 8086, 8087]
    assert cloud.container_ports() == [8000, 8080, 22, 8081, 8082, 8083, 5353, 8085, 8084, 8086, 8087]
    assert cloud.depends_on == [DependsOn("legacy", "service_healthy"), DependsOn("migrate", "service_completed_successfully")]
    assert cloud.healthcheck == HealthcheckSpec(
        test=["CMD-SHELL", "curl -fsS http://localhost:8000/health || exit 1"],
        interval_s=90.0,
        timeout_s=0.5,
        retries=3,
        start_period_s=2.0,
    )
    assert cloud.cpus == 1.5
    assert cloud.mem_limit_bytes == GiB
    assert cloud.user == "1000"
    assert cloud.working_dir == "/app"
    assert cloud.tmpfs == ["/tmp"]
    assert cloud.volumes == []


def test_full_example_other_services(full: StackSpec, tmp_path: Path) -> None:
    assert full.services["legacy"] == service(
        "legacy",
        image="peakchaos/legacy:dev",
        entrypoint=["python3", "app.py"],
        environment={"HOST": "", "PORT": "9000", "DB_PATH": "/data/legacy.db", "FROM_SHELL": "shell", "EQ": "a=b"},
        healthcheck=HealthcheckSpec(["CMD", "python3", "-c", "print(1)"], 0.25, 5.0, 30, 0.0),
        cpus=0.5,
        mem_limit_bytes=512 * MiB,
        volumes=[VolumeMount("legacy-data", "/data", False), VolumeMount("cache", "/cache", True), VolumeMount("cache", "/cache2", True)],
        tmpfs=["/run", "/var/tmp:size=64m"],
        depends_on=[DependsOn("db", "service_started")],
    )
    assert full.services["db"] == service("db", image="busybox", command=["sleep", "3600"], mem_limit_bytes=256 * MiB)
    assert full.services["migrate"] == service(
        "migrate",
        build=BuildSpec((tmp_path / "apps" / "migrate").resolve(), "Dockerfile", {}),
        command=["sh", "-c", "echo $HOME"],
        depends_on=[DependsOn("db", "service_started")],
        mem_limit_bytes=64 * MiB,
    )


def test_link_client_starts_after_its_service_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path / "My Shop!",
        """\
        services:
          cloud:
            image: cloud
            environment: {LEGACY_URL: "http://legacy:9000/api", STOCK: "stock:7000"}
          legacy: {image: legacy}
          stock: {image: stock}
        x-peakchaos:
          links:
            - {service: legacy, port: 9000, client: cloud, env: LEGACY_URL}
            - {name: stock-link, service: stock, port: "7000", client: cloud, env: STOCK, listen_port: 20000}
        """,
    )
    spec = load_compose(path, environ={})
    assert spec.project == "myshop"
    assert spec.start_order() == ["legacy", "stock", "cloud"]
    assert [(link.name, link.listen_port) for link in spec.links] == [("legacy", 8666), ("stock-link", 20000)]
    assert spec.ledger is None


def test_file_without_x_peakchaos_has_no_links(tmp_path: Path) -> None:
    spec = load_compose(write(tmp_path, "services:\n  web:\n    image: nginx\n"), environ={})
    assert spec.links == [] and spec.ledger is None
    assert spec.services["web"] == service("web", image="nginx")
    assert spec.start_order() == ["web"]


def test_dotenv_beside_the_file_is_read_and_environ_wins(tmp_path: Path) -> None:
    write(tmp_path, "IMAGE=from-dotenv\nTAG=dotenv\n", ".env")
    path = write(tmp_path, "services:\n  web:\n    image: ${IMAGE}:${TAG}\n")
    assert load_compose(path, environ={"TAG": "shell"}).services["web"].image == "from-dotenv:shell"


def test_os_environ_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKCHAOS_TEST_IMAGE", "from-os")
    path = write(tmp_path, "services:\n  web:\n    image: $PEAKCHAOS_TEST_IMAGE\n")
    assert load_compose(str(path)).services["web"].image == "from-os"


@pytest.mark.parametrize(
    ("template", "environ", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("$A-$B", {"A": "x", "B": "y"}, "x-y"),
        ("${A}", {}, ""),
        ("${A:-def}", {"A": ""}, "def"),
        ("${A-def}", {"A": ""}, ""),
        ("${A-def}", {}, "def"),
        ("${A:-${B:-nested}}", {}, "nested"),
        ("${A:+alt}", {"A": "1"}, "alt"),
        ("${A+alt}", {"A": ""}, "alt"),
        ("${A:+alt}", {"A": ""}, ""),
        ("$$A $${A}", {"A": "x"}, "$A ${A}"),
        ("${A:?needed}", {"A": "ok"}, "ok"),
        ("pre${A}post", {"A": "-"}, "pre-post"),
    ],
)
def test_interpolation(tmp_path: Path, template: str, environ: dict[str, str], expected: str) -> None:
    path = write(tmp_path, f"services:\n  web:\n    image: nginx\n    environment:\n      V: '{template}'\n")
    assert load_compose(path, environ=environ).services["web"].environment["V"] == expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1h2m3.5s", 3723.5), ("1.5s", 1.5), ("2m", 120.0), (3, 3.0), ("1500us", 0.0015)],
)
def test_healthcheck_durations(tmp_path: Path, value: object, seconds: float) -> None:
    text = f"services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [CMD, 'true']\n      interval: {value}\n"
    healthcheck = load_compose(write(tmp_path, text), environ={}).services["web"].healthcheck
    assert healthcheck is not None and healthcheck.interval_s == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ("curl -f http://localhost", ["CMD-SHELL", "curl -f http://localhost"]),
        ("[CMD, curl, -f, 'http://localhost']", ["CMD", "curl", "-f", "http://localhost"]),
        ("[CMD-SHELL, 'curl -f http://localhost']", ["CMD-SHELL", "curl -f http://localhost"]),
        ("[NONE]", None),
        ("NONE", None),
    ],
)
def test_healthcheck_test_forms(tmp_path: Path, test: str, expected: list[str] | None) -> None:
    text = f"services:\n  web:\n    image: nginx\n    healthcheck:\n      test: {test}\n"
    healthcheck = load_compose(write(tmp_path, text), environ={}).services["web"].healthcheck
    assert (healthcheck.test if healthcheck else None) == expected


@pytest.mark.parametrize(
    ("value", "size"),
    [("512m", 512 * MiB), ("512M", 512 * MiB), ("1g", GiB), ("1.5g", int(1.5 * GiB)), ("256MiB", 256 * MiB),
     ("300mb", 300 * MiB), ("10240k", 10 * MiB), (8 * MiB, 8 * MiB), ("'8388608'", 8 * MiB), ("8388608b", 8 * MiB)],
)
def test_mem_limit_units(tmp_path: Path, value: object, size: int) -> None:
    text = f"services:\n  web:\n    image: nginx\n    mem_limit: {value}\n"
    assert load_compose(write(tmp_path, text), environ={}).services["web"].mem_limit_bytes == size


def test_compose_error_shape_and_pickling(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  web:\n    image: nginx\n    privileged: true\n")
    with pytest.raises(ComposeError) as info:
        load_compose(path, environ={})
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.file, err.key) == (str(path), "services.web.privileged")
    assert str(err).startswith(f"{path}: services.web.privileged: ")
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.key == err.key and copy.problems == err.problems


SPEC = Path(__file__).resolve().parents[3] / "shared" / "compose-spec.json"


def _spec() -> dict[str, object]:
    import json

    for candidate in (SPEC, Path("/work/shared/compose-spec.json")):
        if candidate.is_file():
            return json.loads(candidate.read_text())  # type: ignore[no-any-return]
    from tests.conftest import unavailable

    unavailable("../shared/compose-spec.json (reference data) is not beside this checkout")


def test_policy_decides_every_key_of_the_compose_specification() -> None:
    from pytest_peakchaos.stack.compose import policy

    spec = _spec()
    service_keys = set(spec["definitions"]["service"]["properties"])  # type: ignore[index]
    top_keys = set(spec["properties"])  # type: ignore[arg-type]
    assert service_keys - set(policy.SERVICE) == set()
    assert top_keys - set(policy.TOP_LEVEL) == set()
    assert set(policy.SERVICE) - service_keys == set(), "the policy names keys the spec does not have"
    for rule in [*policy.SERVICE.values(), *policy.TOP_LEVEL.values()]:
        assert rule.decision in (policy.SUPPORTED, policy.IGNORED, policy.REJECTED) and rule.text


def test_docs_show_the_policy_table() -> None:
    from pytest_peakchaos.stack.compose import policy

    doc = (Path(__file__).resolve().parents[2] / "docs" / "compose.md").read_text()
    assert policy.markdown_table() in doc, "docs/compose.md is out of step: paste policy.markdown_table()"


@pytest.mark.parametrize("key", sorted(k for k, r in __import__("pytest_peakchaos.stack.compose.policy", fromlist=["x"]).SERVICE.items() if r.decision == "rejected"))
def test_each_rejected_service_key_is_rejected_with_its_reason(tmp_path: Path, key: str) -> None:
    from pytest_peakchaos.stack.compose import policy

    path = write(tmp_path, f"services:\n  web:\n    image: nginx\n    {key}: x\n")
    with pytest.raises(ComposeError) as info:
        load_compose(path, environ={})
    assert info.value.key == f"services.web.{key}"
    assert f"{key!r} is not supported: {policy.SERVICE[key].text}" in str(info.value)


def test_ignored_keys_are_noted_once_per_key(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        version: "3.8"
        services:
          web: {image: nginx, restart: always, labels: {a: b}, logging: {driver: json-file}}
          db: {image: postgres, restart: unless-stopped, platform: linux/amd64}
        """)
    spec = load_compose(path, environ={})
    restart = [n for n in spec.notes if n.startswith("restart ")]
    assert restart == ["restart (web, db): ignored: a test run never restarts containers: a service that exits fails the run"]
    assert any(n.startswith("platform (db): ignored") for n in spec.notes)
    assert any(n.startswith("version ((top level)): ignored") for n in spec.notes)


def test_every_problem_of_a_file_comes_in_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        services:
          web:
            image: nginx
            privileged: true
            ports: ["0.0.0.0:80:80"]
            volumes: ["/var/run/docker.sock:/var/run/docker.sock", "/etc:/host-etc"]
          db:
            image: postgres
            network_mode: host
            mem_limit: lots
        x-peakchaos:
          links: [{service: nope, port: 1}]
        """)
    with pytest.raises(ComposeError) as info:
        load_compose(path, environ={})
    keys = [p.key for p in info.value.problems]
    assert keys == [
        "services.web.privileged",
        "services.web.volumes[0]",
        "services.web.volumes[1]",
        "services.web.ports[0]",
        "services.db.network_mode",
        "services.db.mem_limit",
        "x-peakchaos.links[0].service",
    ], str(info.value)
    text = str(info.value)
    assert text.count(f"{path}: ") == 7 and "(7 problems; fix them all, then run again)" in text


def test_transparent_link_needs_only_service_and_port(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        services:
          app:
            image: app
            ports: ["8000"]
            depends_on: [db]
          db:
            image: postgres
            container_name: shop-db
            hostname: pg
            networks:
              backend: {aliases: [database]}
        networks: {backend: {}}
        x-peakchaos:
          links: [{service: db, port: 5432}, {service: db, port: 5433}]
        """)
    spec = load_compose(path, environ={})
    first, second = spec.links
    assert (first.name, first.client, first.env, first.listen_port) == ("db-5432", "app", None, 5432)
    assert second.listen_port == 5433 and second.name == "db-5433"
    assert first.names == ("db", "shop-db", "pg", "database")
    assert spec.legacy_services() == ["db"]


def test_project_files_secrets_and_anonymous_volumes(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("events {}\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "db_password.txt").write_text("s3cret\n")
    path = write(tmp_path, """\
        services:
          web:
            image: nginx
            volumes:
              - ./nginx.conf:/etc/nginx/nginx.conf:ro
              - ./src:/code
              - /code/node_modules
              - {type: bind, source: ./src, target: /srv, read_only: true}
              - {type: tmpfs, target: /cache, tmpfs: {size: 1000000}}
            secrets: [db_password, {source: db_password, target: pw}]
        secrets:
          db_password: {file: ./db_password.txt}
        """)
    web = load_compose(path, environ={}).services["web"]
    assert [(f.source.name, f.target, f.read_only) for f in web.files] == [
        ("nginx.conf", "/etc/nginx/nginx.conf", True),
        ("src", "/code", False),
        ("src", "/srv", True),
        ("db_password.txt", "/run/secrets/db_password", True),
        ("db_password.txt", "/run/secrets/pw", True),
    ]
    assert web.volumes == [VolumeMount(None, "/code/node_modules", False)]
    assert web.tmpfs == ["/cache:size=1000000"]


def test_override_files_merge_like_compose(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    base = write(tmp_path, """\
        services:
          web:
            image: web:1
            command: ["serve"]
            environment: {A: "1", B: "2"}
            ports: ["8000"]
          db:
            image: postgres
        """, "compose.yml")
    override = write(tmp_path, """\
        services:
          web:
            command: ["serve", "--reload"]
            environment: ["B=3", "C=4"]
            ports: ["9229"]
            volumes: ["./src:/app"]
          db:
            environment: {POSTGRES_PASSWORD: x}
        """, "compose.override.yml")
    spec = load_compose([base, override], environ={})
    web = spec.services["web"]
    assert web.image == "web:1" and web.command == ["serve", "--reload"]
    assert web.environment == {"A": "1", "B": "3", "C": "4"}
    assert [p.container_port for p in web.ports] == [8000, 9229]
    assert [f.target for f in web.files] == ["/app"]
    assert spec.services["db"].environment == {"POSTGRES_PASSWORD": "x"}
    assert spec.files == [base.resolve(), override.resolve()]


def test_profiles_start_only_when_active(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  web: {image: a}\n  debug: {image: b, profiles: [debug]}\n")
    assert list(load_compose(path, environ={}).services) == ["web"]
    assert list(load_compose(path, environ={"COMPOSE_PROFILES": "debug"}).services) == ["web", "debug"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=r"nope\.yml: <root>: compose file .* does not exist"):
        load_compose(tmp_path / "nope.yml")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=r"<root>: .* is a folder"):
        load_compose(tmp_path)


def test_start_order_is_stable_file_order(tmp_path: Path) -> None:
    text = """\
    services:
      a: {image: x, depends_on: [d]}
      b: {image: x}
      c: {image: x, depends_on: [b]}
      d: {image: x}
    """
    assert load_compose(write(tmp_path, text), environ={}).start_order() == ["b", "c", "d", "a"]


# --------------------------------------------------------------------------------------------------
# Malformed files: (yaml, key path, fragment of the message[, extra files])
# --------------------------------------------------------------------------------------------------

WEB = "services:\n  web:\n    image: nginx\n"
LINKED = """\
services:
  web:
    image: web
    environment: {LEGACY_URL: "http://db:9000"}
  db:
    image: db
"""


def case(id: str, text: str, key: str, fragment: str, files: dict[str, str] | None = None) -> object:
    return pytest.param(textwrap.dedent(text), key, fragment, files or {}, id=id)


MALFORMED = [
    # --- the document itself
    case("empty-file", "", "<root>", "the file is empty"),
    case("not-a-mapping", "- web\n- db\n", "<root>", "expected a mapping with 'services' at the top of the file, got ['web', 'db'] (a list)"),
    case("yaml-syntax", "services:\n  web:\n    image: [nginx\n", "<root>", "YAML syntax error at line 4, column 1"),
    case("duplicate-key", "services:\n  web:\n    image: a\n    image: b\n", "<root>", "found duplicate key 'image'"),
    case("unknown-top-level", WEB + "foo: 1\n", "foo", "unknown top-level key 'foo' (not in the Compose Specification)"),
    case("top-level-include", WEB + "include: [other.yml]\n", "include", "pass them with `-f a.yml -f b.yml`"),
    case("top-level-models", WEB + "models: {llm: {}}\n", "models", "AI model runners"),
    case("top-level-secret-env", WEB + "secrets:\n  token: {environment: TOKEN}\n", "secrets.token.environment", "only file secrets are supported"),
    case("services-missing", "name: shop\n", "services", "missing: a compose file needs a 'services' mapping"),
    case("services-empty", "services: {}\n", "services", "is empty: define at least one service"),
    case("services-list", "services: [web]\n", "services", "expected a mapping of service name to service, got ['web'] (a list)"),
    case("project-name", "name: My Shop\n" + WEB, "name", "uses only a-z, 0-9, '_' and '-'"),
    case("volume-option", WEB + "volumes:\n  data:\n    drive: local\n", "volumes.data.drive", "unknown volume option 'drive'"),
    # --- services
    case("service-null", "services:\n  web:\n", "services.web", "service 'web' is empty; it needs 'image' or 'build'"),
    case("no-image-no-build", "services:\n  web: {command: [x]}\n", "services.web", "needs 'image' (an image to run) or 'build'"),
    case("unknown-key", WEB + "    lables: {a: b}\n", "services.web.lables", "unknown service key 'lables' (not in the Compose Specification)"),
    case("container-name-bad", WEB + "    container_name: 'web one'\n", "services.web.container_name", "a container name uses letters"),
    case("network-mode", WEB + "    network_mode: host\n", "services.web.network_mode", "one private network per run"),
    case("service-networks-undeclared", WEB + "    networks: [front]\n", "services.web.networks[0]", "network 'front' is not declared"),
    case("image-type", "services:\n  web:\n    image: [nginx]\n", "services.web.image", "expected an image name such as 'python:3.12-slim', got ['nginx'] (a list)"),
    case("command-type", WEB + "    command: 5\n", "services.web.command", "expected a string (split like a shell) or a list of strings, got 5 (an integer)"),
    case("command-quote", WEB + "    command: echo 'oops\n", "services.web.command", "cannot split \"echo 'oops\" into words"),
    case("entrypoint-item", WEB + "    entrypoint: [sh, {a: 1}]\n", "services.web.entrypoint[1]", "expected a string, got {'a': 1} (a mapping)"),
    case("env-value-mapping", WEB + "    environment:\n      A: {b: c}\n", "services.web.environment.A", "expected a string, number or boolean, got {'b': 'c'} (a mapping)"),
    case("env-list-item", WEB + "    environment: [{A: 1}]\n", "services.web.environment[0]", "expected a 'KEY=value' string"),
    case("env-type", WEB + "    environment: A=1\n", "services.web.environment", "expected environment as a mapping (KEY: value) or a list of 'KEY=value' strings"),
    case("env-key-not-string", WEB + "    environment:\n      1: one\n", "services.web.environment.1", "keys must be strings, got 1 (an integer); quote it"),
    case("env-file-missing", WEB + "    env_file: missing.env\n", "services.web.env_file", "missing.env does not exist"),
    case("env-file-bad-line", WEB + "    env_file: [ok.env, bad.env]\n", "services.web.env_file[1]", "line 2 of", {"ok.env": "A=1\n", "bad.env": "B=2\nnot a var\n"}),
    case("env-file-quote", WEB + "    env_file: bad.env\n", "services.web.env_file", "unterminated \" quote", {"bad.env": 'A="open\n'}),
    case("interp-required", "services:\n  web:\n    image: ${IMAGE:?set IMAGE to the image under test}\n", "services.web.image", "required variable IMAGE is missing a value: set IMAGE to the image under test"),
    case("interp-required-unset", WEB + "    user: ${USER_ID?}\n", "services.web.user", "required variable USER_ID is missing a value"),
    case("interp-bare-dollar", WEB + "    command: echo $ 5\n", "services.web.command", "'$' must be followed by a variable name, '{' or another '$' (write '$$' for a literal '$')"),
    case("interp-unclosed", WEB + "    working_dir: /app/${DIR\n", "services.web.working_dir", "unclosed '${'"),
    case("interp-bad-operator", WEB + "    working_dir: /app/${DIR!x}\n", "services.web.working_dir", "valid forms: ${VAR}, ${VAR:-default}"),
    # ports
    case("port-any-ip", WEB + "    ports: ['0.0.0.0:8080:80']\n", "services.web.ports[0]", "host IP '0.0.0.0' is not allowed: peakchaos publishes ports on 127.0.0.1 only"),
    case("port-ipv6-any", WEB + "    ports: ['[::]:8080:80']\n", "services.web.ports[0]", "host IP '[::]' is not allowed"),
    case("port-lan-ip", WEB + "    ports: ['192.168.1.5:8080:80']\n", "services.web.ports[0]", "write '127.0.0.1:8080:80' or leave the IP out"),
    case("port-long-ip", WEB + "    ports:\n      - {target: 80, host_ip: 0.0.0.0}\n", "services.web.ports[0].host_ip", "127.0.0.1 only"),
    case("port-range", WEB + "    ports: ['8000-8010:8000-8010']\n", "services.web.ports[0]", "port ranges ('8000-8010') are not supported; list each port on its own"),
    case("port-range-long", WEB + "    ports:\n      - {target: 80, published: '8080-8081'}\n", "services.web.ports[0].published", "port ranges"),
    case("port-too-big", WEB + "    ports: ['70000']\n", "services.web.ports[0]", "must be between 1 and 65535, got 70000"),
    case("port-protocol", WEB + "    ports: ['53/sctp']\n", "services.web.ports[0]", "protocol must be 'tcp' or 'udp', got 'sctp'"),
    case("port-ip-without-host-port", WEB + "    ports: ['127.0.0.1:8000']\n", "services.web.ports[0]", "cannot read host port '127.0.0.1'"),
    case("port-long-unknown", WEB + "    ports:\n      - {target: 80, mode: ingress}\n", "services.web.ports[0].mode", "valid keys: target, published, host_ip, protocol"),
    case("port-long-no-target", WEB + "    ports:\n      - {published: 8080}\n", "services.web.ports[0].target", "missing required key 'target'"),
    case("port-bool", WEB + "    ports: [true]\n", "services.web.ports[0]", "got True (a boolean)"),
    case("port-host-duplicate", "services:\n  a: {image: x, ports: ['8080:80']}\n  b: {image: x, ports: ['127.0.0.1:8080:81']}\n", "services.b.ports[0]", "host port 8080/tcp is already published by services.a.ports[0]"),
    case("expose-udp", WEB + "    expose: ['53/udp']\n", "services.web.expose[0]", "expose is for tcp ports"),
    case("expose-type", WEB + "    expose: 8000\n", "services.web.expose", "expected a list of container ports"),
    # depends_on
    case("depends-unknown", WEB + "    depends_on: [db]\n", "services.web.depends_on[0]", "no service named 'db'; services in this file: web"),
    case("depends-self", WEB + "    depends_on: [web]\n", "services.web.depends_on[0]", "cannot depend on itself"),
    case("depends-cycle", "services:\n  web: {image: x, depends_on: [api]}\n  api: {image: x, depends_on: [db]}\n  db: {image: x, depends_on: [web]}\n", "services.web.depends_on[0]", "dependency cycle web -> api -> db -> web"),
    case("depends-cycle-via-link", LINKED + "    depends_on: [web]\nx-peakchaos:\n  links: [{service: db, port: 9000, client: web, env: LEGACY_URL}]\n", "x-peakchaos.links[0]", "dependency cycle web -> db -> web ('a -> b' means a starts after b); web -> db comes from x-peakchaos.links[0]"),
    case("depends-condition", "services:\n  web:\n    image: x\n    depends_on:\n      db: {condition: started}\n  db: {image: x}\n", "services.web.depends_on.db.condition", "valid conditions: service_started, service_healthy, service_completed_successfully"),
    case("depends-extra-key", "services:\n  web:\n    image: x\n    depends_on:\n      db: {condition: service_started, when: always}\n  db: {image: x}\n", "services.web.depends_on.db.when", "valid keys: condition"),
    case("depends-healthy-no-check", "services:\n  web:\n    image: x\n    depends_on:\n      db: {condition: service_healthy}\n  db: {image: x}\n", "services.web.depends_on.db", "needs a healthcheck on 'db'"),
    # healthcheck
    case("health-bad-head", WEB + "    healthcheck: {test: [curl, -f, 'http://x']}\n", "services.web.healthcheck.test", "the first item must be 'CMD', 'CMD-SHELL' or 'NONE', got 'curl'"),
    case("health-shell-two", WEB + "    healthcheck: {test: [CMD-SHELL, a, b]}\n", "services.web.healthcheck.test", "takes exactly one shell command string, got 2"),
    case("health-no-test", WEB + "    healthcheck: {interval: 1s}\n", "services.web.healthcheck.test", "it does not read the image's HEALTHCHECK"),
    case("health-disable-and-test", WEB + "    healthcheck: {test: 'true', disable: true}\n", "services.web.healthcheck.disable", "contradict each other"),
    case("health-interval", WEB + "    healthcheck: {test: 'true', interval: soon}\n", "services.web.healthcheck.interval", "expected a duration such as '1s', '500ms', '1m30s' or a number of seconds, got 'soon' (a string)"),
    case("health-timeout-zero", WEB + "    healthcheck: {test: 'true', timeout: 0s}\n", "services.web.healthcheck.timeout", "must be at least 1ms"),
    case("health-retries", WEB + "    healthcheck: {test: 'true', retries: many}\n", "services.web.healthcheck.retries", "expected a whole number of retries, got 'many' (a string)"),
    case("health-unknown-key", WEB + "    healthcheck: {test: 'true', every: 1s}\n", "services.web.healthcheck.every", "valid keys: test, interval, timeout, retries, start_period, start_interval, disable"),
    # resources
    case("mem-limit-word", WEB + "    mem_limit: lots\n", "services.web.mem_limit", "expected a memory size such as '512m', '1g', '256MiB' or a number of bytes, got 'lots' (a string)"),
    case("mem-limit-tiny", WEB + "    mem_limit: 1k\n", "services.web.mem_limit", "must be at least 6m"),
    case("cpus-word", WEB + "    cpus: fast\n", "services.web.cpus", "expected a number of CPUs such as 0.5 or 2, got 'fast' (a string)"),
    case("cpus-zero", WEB + "    cpus: 0\n", "services.web.cpus", "must be at least 0.01 (omit it for no limit)"),
    case("deploy-unknown", WEB + "    deploy: {replica: 2}\n", "services.web.deploy.replica", "valid keys: resources"),
    case("deploy-limits-unknown", WEB + "    deploy: {resources: {limits: {gpus: 1}}}\n", "services.web.deploy.resources.limits.gpus", "valid keys: cpus, memory"),
    case("cpus-conflict", WEB + "    cpus: 1\n    deploy: {resources: {limits: {cpus: '2'}}}\n", "services.web.deploy.resources.limits.cpus", "2 conflicts with services.web.cpus (1); set one"),
    case("working-dir-relative", WEB + "    working_dir: app\n", "services.web.working_dir", "must be an absolute path such as '/app'"),
    case("tmpfs-relative", WEB + "    tmpfs: [tmp]\n", "services.web.tmpfs[0]", "must be an absolute path"),
    case("user-list", WEB + "    user: [root]\n", "services.web.user", "expected a user name or uid"),
    # volumes
    case("bind-mount-missing", WEB + "    volumes: ['./data:/data']\n", "services.web.volumes[0]", "'./data' does not exist"),
    case("docker-socket", WEB + "    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n", "services.web.volumes[0]", "the Docker socket would give the container control of the engine"),
    case("bind-mount-outside", WEB + "    volumes:\n      - {type: bind, source: /etc, target: /etc}\n", "services.web.volumes[0]", "'/etc' is outside the project folder"),
    case("bind-mount-parent", WEB + "    volumes: ['../x:/x']\n", "services.web.volumes[0]", "is outside the project folder"),
    case("bind-mount-home", WEB + "    volumes: ['~/.aws:/root/.aws:ro']\n", "services.web.volumes[0]", "is in your home folder"),
    case("device-mount", WEB + "    volumes: ['/dev/kvm:/dev/kvm']\n", "services.web.volumes[0]", "device files ('/dev/kvm') would let a container reach the host"),
    case("volume-undeclared", WEB + "    volumes: ['data:/data']\n", "services.web.volumes[0]", "volume 'data' is not declared; add it under the top-level 'volumes' key"),
    case("volume-mode", WEB + "    volumes: ['data:/data:q']\nvolumes: {data: {}}\n", "services.web.volumes[0]", "unsupported mount option 'q' in 'data:/data:q'; valid options: ro, rw"),
    case("volume-long-unknown", WEB + "    volumes:\n      - {type: volume, source: data, target: /d, volume: {subpath: x}}\nvolumes: {data: {}}\n", "services.web.volumes[0].volume.subpath", "valid keys: nocopy"),
    # build
    case("build-missing-context", "services:\n  web:\n    build: ./nowhere\n", "services.web.build", "does not exist (paths are relative to the compose file)"),
    case("build-unknown-key", "services:\n  web:\n    build: {context: ., ssh: [default]}\n", "services.web.build.ssh", "valid keys: context, dockerfile, args, target"),
    case("build-git-url", "services:\n  web:\n    build: https://github.com/x/y.git\n", "services.web.build", "must be a local folder"),
    case("build-dockerfile-type", "services:\n  web:\n    build: {context: ., dockerfile: [Dockerfile]}\n", "services.web.build.dockerfile", "expected a Dockerfile path relative to the context"),
    # x-peakchaos
    case("xp-type", WEB + "x-peakchaos: [legacy]\n", "x-peakchaos", "expected a mapping with links and ledger, got ['legacy'] (a list)"),
    case("xp-unknown-key", WEB + "x-peakchaos: {link: []}\n", "x-peakchaos.link", "unknown key 'link' in x-peakchaos; valid keys: links, ledger"),
    case("xp-links-type", WEB + "x-peakchaos: {links: {service: web}}\n", "x-peakchaos.links", "expected a list of links"),
    case("link-unknown-key", LINKED + "x-peakchaos:\n  links: [{service: db, port: 9000, client: web, env: LEGACY_URL, toxic: latency}]\n", "x-peakchaos.links[0].toxic", "valid keys: name, service, port, client, env, listen_port"),
    case("link-missing-port", LINKED + "x-peakchaos:\n  links: [{service: db}]\n", "x-peakchaos.links[0].port", "missing required key 'port' in a link; a link needs service and port"),
    case("link-env-bare-host", "services:\n  web:\n    image: web\n    environment: {DB_HOST: db}\n  db: {image: db}\nx-peakchaos:\n  links: [{service: db, port: 5432, env: DB_HOST}]\n", "x-peakchaos.links[0].env", "a bare host name: peakchaos can only rewrite a 'host:port'. Remove env from the link"),
    case("link-transparent-listen-port", LINKED + "x-peakchaos:\n  links: [{service: db, port: 9000, listen_port: 9100}]\n", "x-peakchaos.links[0].listen_port", "listen_port needs env"),
    case("link-toxiproxy-port", LINKED + "x-peakchaos:\n  links: [{service: db, port: 8474}]\n", "x-peakchaos.links[0].port", "is Toxiproxy's own API port"),
    case("link-same-port-twice", "services:\n  web: {image: w}\n  a: {image: a}\n  b: {image: b}\nx-peakchaos:\n  links: [{service: a, port: 5432}, {service: b, port: 5432}]\n", "x-peakchaos.links[1].listen_port", "5432 (the default, the legacy port) is already used by x-peakchaos.links[0]"),
    case("ledger-python", LINKED + "x-peakchaos:\n  ledger: {python: not a ref}\n", "x-peakchaos.ledger.python", "expected 'module:function'"),
    case("ledger-sql-no-service", LINKED + "x-peakchaos:\n  ledger: {sql: SELECT 1}\n", "x-peakchaos.ledger.service", "a SQL ledger needs service and sql"),
    case("link-unknown-service", LINKED + "x-peakchaos:\n  links: [{service: legacy, port: 9000, client: web, env: LEGACY_URL}]\n", "x-peakchaos.links[0].service", "no service named 'legacy'; services in this file: web, db"),
    case("link-client-is-service", LINKED + "x-peakchaos:\n  links: [{service: db, port: 9000, client: db, env: LEGACY_URL}]\n", "x-peakchaos.links[0].client", "the client must be another service"),
    case("link-port-zero", LINKED + "x-peakchaos:\n  links: [{service: db, port: 0, client: web, env: LEGACY_URL}]\n", "x-peakchaos.links[0].port", "must be between 1 and 65535, got 0"),
    case("link-port-type", LINKED + "x-peakchaos:\n  links: [{service: db, port: [9000], client: web, env: LEGACY_URL}]\n", "x-peakchaos.links[0].port", "expected a port number (1..65535), got [9000] (a list)"),
    case("link-env-absent", LINKED + "x-peakchaos:\n  links: [{service: db, port: 9000, client: web, env: DB_URL}]\n", "x-peakchaos.links[0].env", "service 'web' has no environment variable 'DB_URL'; set it under services.web.environment"),
    case("link-env-wrong-authority", LINKED + "x-peakchaos:\n  links: [{service: db, port: 900, client: web, env: LEGACY_URL}]\n", "x-peakchaos.links[0].env", "is 'http://db:9000', which does not contain 'db:900'"),
    case("link-listen-low", LINKED + "x-peakchaos:\n  links: [{service: db, port: 9000, client: web, env: LEGACY_URL, listen_port: 80}]\n", "x-peakchaos.links[0].listen_port", "must be between 1024 and 65535, got 80"),
    case("link-name-invalid", LINKED + "x-peakchaos:\n  links: [{name: Legacy Link, service: db, port: 9000, client: web, env: LEGACY_URL}]\n", "x-peakchaos.links[0].name", "may use only a-z, 0-9, '_' and '-'"),
    case("link-duplicate-name", LINKED + "x-peakchaos:\n  links:\n    - {service: db, port: 9000, client: web, env: LEGACY_URL}\n    - {service: db, port: 9000, client: web, env: LEGACY_URL}\n", "x-peakchaos.links[1].name", "link name 'db-9000' is already used by x-peakchaos.links[0]"),
    case("link-duplicate-listen", LINKED + "x-peakchaos:\n  links:\n    - {service: db, port: 9000, client: web, env: LEGACY_URL, listen_port: 8667}\n    - {name: two, service: db, port: 9000, client: web, env: LEGACY_URL}\n", "x-peakchaos.links[1].listen_port", "8667 (the default, 8666 + 1) is already used by x-peakchaos.links[0]"),
    case("ledger-path", LINKED + "x-peakchaos:\n  ledger: {service: db, port: 9000, path: orders}\n", "x-peakchaos.ledger.path", "must start with '/', e.g. '/orders'"),
    case("ledger-unknown-key", LINKED + "x-peakchaos:\n  ledger: {service: db, port: 9000, path: /orders, method: GET}\n", "x-peakchaos.ledger.method", "valid keys: service, port, path, key, sql, database, user, python"),
    case("ledger-missing-port", LINKED + "x-peakchaos:\n  ledger: {service: db, path: /orders}\n", "x-peakchaos.ledger.port", "missing required key 'port' in the ledger; an HTTP ledger needs service, port and path"),
]


@pytest.mark.parametrize(("text", "key", "fragment", "files"), MALFORMED)
def test_malformed(tmp_path: Path, text: str, key: str, fragment: str, files: dict[str, str]) -> None:
    for name, content in files.items():
        write(tmp_path, content, name)
    path = write(tmp_path, text)
    with pytest.raises(ComposeError) as info:
        load_compose(path, environ={})
    err = info.value
    assert err.file == str(path)
    assert err.key == key, str(err)
    assert str(err).startswith(f"{path}: {key}: "), str(err)
    assert fragment in str(err), str(err)


def test_there_are_many_malformed_cases() -> None:
    assert len(MALFORMED) >= 25


def test_ignored_keys_are_noted_in_the_run_header(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", stack="services:\n  web: {image: nginx, restart: always, logging: {driver: syslog}}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "peakchaos", "--peakchaos-stack", "stack.yml", "--collect-only")
    header = [line for line in result.outlines if line.startswith("peakchaos: ")]
    assert len(header) == 2, result.outlines
    assert header[0].endswith("stack.yml: restart (web): ignored: a test run never restarts containers: a service that exits fails the run")
    assert "logging (web): ignored" in header[1]
