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


SYNTHETIC_BLOCKS = (1, 2)  # 128 tiles of 24 px and 32 of 48 px per year; eval is one of the two blocks


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic dataset (seed 0, both years, nobs 46) shared by the whole session: ``<root>/240``, ``/480``."""
    from utils.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic")
    generate(out, seed=0, blocks=SYNTHETIC_BLOCKS)
    return out
