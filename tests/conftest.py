"""Shared test fixtures."""

from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real Sentinel-2 fixtures beside the checkout; tests using it skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} is not present")
    return REALDATA
