"""The runtime's tests run on asyncio's own loop and on uvloop: nothing in
the runtime (the virtual clock least of all) may depend on which it is."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    if request.param == "uvloop":
        return ("asyncio", {"use_uvloop": True})
    return "asyncio"
