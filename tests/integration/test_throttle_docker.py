"""Capacity faults on a real container: CPU quota throttling and pause/unpause, measured."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_peakchaos.throttle import CapacityTarget, DockerCapacity
from pytest_peakchaos.faults import cpu, pause
from pytest_peakchaos.link import Link
from pytest_peakchaos.stack import labels

from .toxiproxy_local import LOOPBACK, http_upstream, local_toxiproxy, require_docker, require_image

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

pytestmark = pytest.mark.docker

IMAGE = "peakchaos/python-base:bookworm"
# One busy core that reports its progress: "<unix time> <iterations so far>" every ~50 ms of
# wall time (containers share the host's clock).
CPU_LOOP = """
import time
n = 0
next_report = 0.0
while True:
    for _ in range(20000):
        n += 1
    now = time.time()
    if now >= next_report:
        print(f"{now:.4f} {n}", flush=True)
        next_report = now + 0.05
"""


@pytest.fixture(scope="module")
def docker_client() -> Iterator[DockerClient]:
    client = require_docker()
    try:
        require_image(client, IMAGE)
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def cpu_loop_container(client: DockerClient, **kwargs: Any) -> Iterator[Container]:
    """A container burning one core, labelled for this test run, always removed."""
    container = client.containers.run(
        IMAGE,
        ["python3", "-c", CPU_LOOP],
        detach=True,
        # the owner label keeps the stale-run reaper (stack.reaper) off a container still in use
        labels={labels.RUN: f"test-{uuid.uuid4().hex}", labels.OWNER: labels.current_owner().label()},
        network_mode="none",
        **kwargs,
    )
    try:
        _wait_busy(container)
        yield container
    finally:
        container.remove(force=True)


def _progress(container: Container) -> list[tuple[float, int]]:
    """The loop's reports so far: (unix time, iterations)."""
    samples = []
    for line in container.logs(stdout=True, stderr=False).decode().splitlines():
        stamp, _, count = line.partition(" ")
        with contextlib.suppress(ValueError):
            samples.append((float(stamp), int(count)))
    return samples


def _last_before(samples: list[tuple[float, int]], when: float) -> tuple[float, int]:
    return max(((t, n) for t, n in samples if t <= when), default=(when, 0))


def work_rate(container: Container, window_s: float = 0.8) -> float:
    """Loop iterations per second over the next ``window_s`` seconds (0 when frozen).

    Measured between the loop's own reports nearest the window's ends, so a throttled loop
    (which reports only when it gets its 10 ms slot) is not over-counted.
    """
    start = time.time()
    time.sleep(window_s)
    end = time.time()
    time.sleep(0.12)  # let the logs catch up
    samples = _progress(container)
    (t0, n0), (t1, n1) = _last_before(samples, start), _last_before(samples, end)
    if t1 <= t0:
        return 0.0  # no report inside the window: no progress
    return (n1 - n0) / (t1 - t0)


def _wait_busy(container: Container, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(_progress(container)) >= 3:
            return
        time.sleep(0.05)
    raise AssertionError(f"container {container.name} never reported progress: {container.logs()!r}")


def test_docker_capacity_is_a_capacity_target(docker_client: DockerClient) -> None:
    with cpu_loop_container(docker_client) as container:
        assert isinstance(DockerCapacity(container), CapacityTarget)
        with pytest.raises(ValueError, match="cpus must be a positive number"):
            DockerCapacity(container).throttle(0)
        with pytest.raises(ValueError, match="at least 0.01"):
            DockerCapacity(container).throttle(0.001)


def test_throttle_to_a_tenth_of_a_cpu_and_restore(docker_client: DockerClient, record_property: Any) -> None:
    with cpu_loop_container(docker_client) as container:
        cap = DockerCapacity(container)
        assert cap.limits().unlimited
        baseline = work_rate(container)
        cap.throttle(0.1)
        limits = cap.limits()
        assert (limits.cpu_period, limits.cpu_quota) == (100_000, 10_000) and limits.cpus == 0.1
        assert cap.original is not None and cap.original.unlimited
        throttled = work_rate(container)
        cap.throttle(0.2)  # a second change keeps the first recorded original
        assert cap.original.unlimited
        cap.restore()
        assert cap.limits().unlimited and cap.original is None
        restored = work_rate(container)
        cap.restore()  # nothing recorded: a no-op
    ratio = baseline / max(throttled, 1.0)
    record_property("throttle_ratio", round(ratio, 2))
    print(
        f"\ncpu 0.1: baseline {baseline / 1e6:.2f}M it/s, throttled {throttled / 1e6:.2f}M it/s "
        f"(ratio {ratio:.1f}x), restored {restored / 1e6:.2f}M it/s"
    )
    assert baseline > 0
    assert ratio > 3, (baseline, throttled)
    assert restored > 2 * throttled, (baseline, throttled, restored)  # full speed again (the baseline is the busy machine's)


def test_pause_stops_progress_and_unpause_resumes(docker_client: DockerClient) -> None:
    with cpu_loop_container(docker_client) as container:
        cap = DockerCapacity(container)
        before = work_rate(container, 0.5)
        cap.pause()
        cap.pause()  # already paused: a no-op
        container.reload()
        assert container.status == "paused"
        frozen = work_rate(container, 0.6)
        cap.unpause()
        cap.unpause()  # not paused: a no-op
        container.reload()
        assert container.status == "running"
        running = work_rate(container, 0.6)
    assert frozen == 0, frozen
    assert running > 0.5 * before, (before, running)


def test_container_created_with_cpus_is_throttled_through_nano_cpus(docker_client: DockerClient) -> None:
    with cpu_loop_container(docker_client, nano_cpus=1_500_000_000) as container:
        cap = DockerCapacity(container)
        assert cap.limits().cpus == 1.5
        baseline = work_rate(container, 0.6)
        cap.throttle(0.1)
        assert cap.limits().nano_cpus == 100_000_000
        throttled = work_rate(container, 0.6)
        cap.restore()
        assert cap.limits().nano_cpus == 1_500_000_000
    assert baseline / max(throttled, 1.0) > 3, (baseline, throttled)


def test_link_capacity_faults_are_applied_and_reverted(docker_client: DockerClient) -> None:
    with cpu_loop_container(docker_client) as container, local_toxiproxy() as toxiproxy, http_upstream() as upstream:
        proxy = toxiproxy.client.create_proxy("legacy", f"{LOOPBACK}:0", upstream.address)
        link = Link("legacy", proxy, toxiproxy.client, DockerCapacity(container), f"http://{proxy.listen}")
        baseline = work_rate(container, 0.6)
        with link.apply(cpu(0.1)):
            throttled = work_rate(container, 0.6)
        assert DockerCapacity(container).limits().unlimited  # reverted: the quota is gone
        after_cpu = work_rate(container, 0.6)
        with pytest.raises(RuntimeError):
            with link.apply(pause()):
                frozen = work_rate(container, 0.4)
                raise RuntimeError("the block failed")
        container.reload()
        assert container.status == "running"
        link.activate(cpu(0.2))
        link.activate(pause())
        assert link.reset() == "delete"
        container.reload()
        assert container.status == "running" and DockerCapacity(container).limits().unlimited
        assert [(e.action, e.fault, e.via) for e in link.events] == [
            ("apply", "cpu 0.1 CPU", "cpu"),
            ("revert", "cpu 0.1 CPU", "restore"),
            ("apply", "pause", "pause"),
            ("revert", "pause", "unpause"),
            ("apply", "cpu 0.2 CPU", "cpu"),
            ("apply", "pause", "pause"),
            ("reset", "all faults", "delete"),
        ]
    assert baseline / max(throttled, 1.0) > 3, (baseline, throttled)
    # back to full speed: well above the throttled rate (against the baseline it would measure the
    # machine's other work: 0.54x the baseline was seen on a busy 2-core box, quota gone)
    assert after_cpu > 2 * throttled, (baseline, throttled, after_cpu)
    assert frozen == 0, frozen
