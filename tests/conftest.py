"""Shared pytest set-up: every async test runs on anyio's asyncio backend, and every gateway a
test starts (in process or as a subprocess) keeps its tool pins in the test's own temporary file."""

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_GUARDIAN_PINS_FILE", str(tmp_path / "pins.json"))
