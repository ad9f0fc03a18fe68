"""Shared fixtures: an asyncio backend for anyio's plugin, quiet logging, and
a running actor system on a virtual clock (torn down after each test)."""

from __future__ import annotations

import logging

import pytest
import structlog


@pytest.fixture(scope="session", autouse=True)
def _quiet_logging() -> None:
    # run.py configures logging for real runs; tests only need it cheap and
    # quiet (capture_logs() still sees every event where a test asks).
    # Tracebacks plain, not rich: a test that crashes actors by the hundred
    # (a restart storm) would spend minutes drawing them.
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=False,
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def system():
    from actors.runtime import ActorSystem, VirtualClock

    async with ActorSystem(clock=VirtualClock(), seed=1234, default_ask_timeout=5.0) as running:
        yield running


@pytest.fixture
async def real_system():
    from actors.runtime import ActorSystem, RealClock

    async with ActorSystem(clock=RealClock(), seed=1234, default_ask_timeout=5.0) as running:
        yield running
