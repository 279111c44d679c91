"""Worker processes of one ``detector run``: Kafka Streams' ``num.stream.threads``, as processes.

CPython runs Python code on one core per process, and a member is CPU-bound (decoding,
normalizing and evaluating every record). ``run.workers`` lets one ``detector run`` use
several cores: it runs worker 0 itself and starts workers 1..n-1 as child processes of
the same command. Each worker is a full member of the consumer groups, exactly as if
started by hand, so partitions, state and the streaming-equals-replay contract are
those of n members; the supervisor only keeps the children running and stops them.

Worker ``i`` serves its health endpoint on ``health.port + i`` (scrape each one); worker
0's ``/readyz`` answers ready only while every worker does. A child exits when its
parent dies (``PR_SET_PDEATHSIG`` on Linux, a parent check elsewhere), so a killed
member leaves no orphan consuming on its behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx
import structlog

from detector.app.health import HealthState
from detector.app.settings import DetectorSettings
from detector.sinks.retry import backoff_delay

log = structlog.get_logger(__name__)

#: Environment variable naming the index of a worker process (set by its supervisor).
WORKER_ENV = "DETECTOR_WORKER"
#: Environment variable holding the supervisor's process id.
PARENT_ENV = "DETECTOR_WORKER_PARENT"
#: A child that ran this long before exiting is restarted without backoff.
STEADY_SECONDS = 60.0
#: Seconds a stopping child may take to drain before it is killed.
STOP_SECONDS = 60.0
#: Seconds between readiness probes of the workers (and the probe's timeout).
PROBE_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def worker_settings(settings: DetectorSettings, index: int) -> DetectorSettings:
    """``settings`` of worker ``index``: its health endpoint on ``health.port + index``
    (port 0 stays 0: every worker picks a free port)."""
    if index == 0 or settings.health.port == 0:
        return settings
    health = settings.health.model_copy(update={"port": settings.health.port + index})
    return settings.model_copy(update={"health": health})


def bind_to_parent(parent: int) -> bool:
    """End this worker with its supervisor: SIGTERM (a drained stop) when ``parent``
    dies; exit at once when it is already gone. ``False`` when the kernel cannot send
    that signal (not Linux), so the worker must watch its parent itself."""
    bound = False
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            bound = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    if os.getppid() != parent:
        raise SystemExit("detector run: the supervising process is gone")
    return bound


async def _watch_parent(parent: int) -> None:
    """Where ``PR_SET_PDEATHSIG`` is not set: SIGTERM this worker once the parent is gone."""
    while os.getppid() == parent:  # noqa: ASYNC110 (no event tells a parent's death)
        await asyncio.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Keeps workers 1..n-1 running as child processes of ``command`` until :meth:`stop`;
    ``health.workers_ready`` says whether every one answers ready on its ``ports``."""

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        health: HealthState | None = None,
        ports: Sequence[int] = (),
    ) -> None:
        self.command = list(command)
        self.workers = workers
        self.health = health or HealthState()
        self.ports = list(ports)
        self._stopping = asyncio.Event()
        self._children: dict[int, asyncio.subprocess.Process] = {}

    def stop(self) -> None:
        """Stop every child (SIGTERM: each drains and commits) and start no more."""
        self._stopping.set()
        for child in self._children.values():
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)

    async def run(self) -> None:
        """Start the children and restart any that exits while not stopping."""
        try:
            async with asyncio.TaskGroup() as tasks:
                for index in range(1, self.workers):
                    tasks.create_task(self._keep(index))
                if self.ports:
                    tasks.create_task(self._probe())
        finally:
            self.stop()
            await self._reap()

    async def _keep(self, index: int) -> None:
        env = {**os.environ, WORKER_ENV: str(index), PARENT_ENV: str(os.getpid())}
        attempt = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(*self.command, env=env)
            self._children[index] = child
            log.info("worker_started", worker=index, pid=child.pid)
            if self._stopping.is_set():  # stopped while it started: it missed the signal
                child.send_signal(signal.SIGTERM)
                return
            code = await child.wait()
            if self._stopping.is_set():
                return
            attempt = 0 if time.monotonic() - started > STEADY_SECONDS else attempt + 1
            delay = backoff_delay(attempt, 0.5, 30.0) if attempt else 0.0
            log.warning("worker_exited", worker=index, code=code, restart_in=round(delay, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _probe(self) -> None:
        """Mirror the workers' ``/readyz`` into ``health.workers_ready`` until stopped."""
        self.health.workers_ready = False
        async with httpx.AsyncClient(timeout=PROBE_SECONDS) as client:
            while not self._stopping.is_set():
                ready = True
                for port in self.ports:
                    try:
                        answer = await client.get(f"http://127.0.0.1:{port}/readyz")
                        ready = ready and answer.status_code == 200
                    except httpx.HTTPError:
                        ready = False
                self.health.workers_ready = ready
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), PROBE_SECONDS)

    async def _reap(self) -> None:
        for index, child in self._children.items():
            try:
                await asyncio.wait_for(child.wait(), STOP_SECONDS)
            except TimeoutError:
                log.warning("worker_killed", worker=index, pid=child.pid)
                child.kill()
                await child.wait()


async def supervise(
    serve: Callable[[Callable[[], None], HealthState], Awaitable[None]],
    command: Sequence[str],
    settings: DetectorSettings,
    workers: int,
) -> None:
    """Run ``serve`` (worker 0, given a hook called when it is asked to stop and the
    health state its endpoint reports) beside ``workers - 1`` child processes of
    ``command``; stopping worker 0 stops them all, and worker 0 failing stops them too.
    Worker 0's ``/readyz`` answers ready only while every worker does."""
    health = HealthState()
    probed = settings.health.enabled and settings.health.port != 0
    ports = [worker_settings(settings, i).health.port for i in range(1, workers)] if probed else []
    supervisor = Supervisor(command, workers, health, ports)
    children = asyncio.create_task(supervisor.run())
    try:
        await serve(supervisor.stop, health)
    finally:
        supervisor.stop()
        await children


async def serve_worker(serve: Awaitable[None], parent: int) -> None:
    """Run ``serve`` as a worker of the supervisor ``parent``: it stops with it."""
    watcher = None if bind_to_parent(parent) else asyncio.create_task(_watch_parent(parent))
    try:
        await serve
    finally:
        if watcher is not None:
            watcher.cancel()
