"""structlog setup: JSON lines on stderr for machines, a console renderer for people.

During a broker outage aiokafka logs a connection error about every 100 ms per node;
:class:`ConnectionErrorLimiter` lets one line per node through per interval and says how
many it stood for.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable

import structlog

#: How aiokafka names the peer in its connection errors: a node id or an address.
_NODE = re.compile(r"node with id (\S+?):|connect to \"?([^\s\"]+?)\"?:|\('([^']+)', (\d+)\)")


class ConnectionErrorLimiter(logging.Filter):
    """Passes one aiokafka warning or error per node (else per message) per ``interval``
    seconds; the next one passed names how many were held back meanwhile."""

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged; it may gain a count of the lines it stands for."""
        if not record.name.startswith("aiokafka") or record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        found = _NODE.search(message)
        node = next((g for g in found.groups() if g), "") if found else str(record.msg)
        key = (record.name, node)
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        held = last[1] if last is not None else 0
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{message} ({held} more like it in the last {self.interval:.0f} s)"
            record.args = ()
        return True


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Route structlog and the standard library (aiokafka, elastic transport) to stderr."""
    numeric = logging.getLevelName(level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    handler.addFilter(ConnectionErrorLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Library chatter (connection retries) is useful only when debugging.
    root.setLevel(max(numeric, logging.WARNING) if level != "debug" else logging.DEBUG)
