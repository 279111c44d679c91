"""A member started during an outage waits for it instead of exiting.

The search engine sits behind a loopback proxy that answers 503 while it plays the
outage (the proxy and the scenario come from the other e2e modules).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from test_correlate_outage import SearchProxy, _through
from test_two_stage import Scenario, _record, _until

from detector.app.logging import ConnectionErrorLimiter
from detector.app.service import Service


@pytest.fixture
def proxy(services: Any) -> Iterator[SearchProxy]:
    """A search proxy that outlives the services of the test."""
    with ExitStack() as stack:
        yield stack.enter_context(SearchProxy(services.search_url).running())


@pytest.mark.services
async def test_member_started_during_search_outage_waits_and_becomes_ready(
    services: Any, tmp_path: Path, proxy: SearchProxy
) -> None:
    """Started while the search engine answers 503, the member neither exits nor reports
    ready; once the engine answers it becomes ready and its correlation fires."""
    sc = _through(Scenario(services, tmp_path, op="gte", count=2, timespan="10m"), proxy)
    await sc.create_source(1)
    proxy.down = True
    service = Service(sc.settings)
    service.max_startup_backoff = 1.0
    task = asyncio.create_task(service.run())
    try:
        await asyncio.sleep(4)
        assert not task.done(), "the member exited during the outage"
        assert not service.health.ready
        assert service.health.healthy  # alive: an orchestrator must not restart it
        proxy.down = False

        async def ready() -> bool:
            if task.done():
                task.result()
            return service.health.ready

        await _until(ready, 60, "the member did not become ready after the outage")
        await sc.produce([(0, _record("alice", n, n)) for n in range(2)])

        async def fired() -> bool:
            return len(await sc.alerts()) == 1

        await _until(fired, 60, "no alert after the outage")
    finally:
        service.stop()
        await asyncio.wait_for(task, 60)


def test_connection_errors_of_the_kafka_client_are_one_line_per_node_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hundreds of aiokafka connection errors for two nodes within one interval give one
    line per node; the next line after the interval carries the count it stood for."""
    clock = [0.0]
    limiter = ConnectionErrorLimiter(interval=30.0, clock=lambda: clock[0])
    logger = logging.getLogger("aiokafka.conn")
    logger.addFilter(limiter)
    try:
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            for _ in range(300):
                for node in ("1", "2"):
                    logger.error(
                        "Unable connect to node with id %s: [Errno 111] Connect call failed", node
                    )
                clock[0] += 0.1
            clock[0] = 31.0
            logger.error("Unable connect to node with id 1: [Errno 111] Connect call failed")
    finally:
        logger.removeFilter(limiter)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "id 1" in lines[0] and "id 2" in lines[1]
    assert lines[2].endswith("(299 more like it in the last 30 s)"), lines[2]
