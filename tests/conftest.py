"""Shared test fixtures."""

from pathlib import Path
from types import SimpleNamespace

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



@pytest.fixture(scope="session")
def slovenia_sources(realdata, tmp_path_factory) -> SimpleNamespace:
    """The real Slovenia scenes as users have them (tests/s2fixtures.py): per-date folders of band files at native
    resolution as GeoTIFF (``tif/``) and JPEG 2000 (``jp2/``), L1C SAFE products of baseline 04.00 (``safe/``, the
    first date as a zip), 13-band reflectance stacks (``stacks/``) and the land-cover labels (``lulc.tif``)."""
    import numpy as np

    from tests.s2fixtures import band_images, slovenia, write_band_folder, write_raster, write_safe
    from utils.rasters import write_geotiff

    scenes = slovenia(realdata)
    out = tmp_path_factory.mktemp("slovenia")
    for k, (dn, date) in enumerate(zip(scenes.dn, scenes.dates, strict=True)):
        images = band_images(dn)
        for kind in ("tif", "jp2"):
            write_band_folder(out / kind / f"S2A_{date:%Y%m%d}", images, scenes.grid, f".{kind}", date=date)
        write_safe(out / "safe", date, images, scenes.grid, as_zip=k == 0)
        write_geotiff(out / "stacks" / f"{date:%Y%m%d}.tif", np.moveaxis(dn, -1, 0) / 1e4, scenes.grid,
                      dtype=np.float32)
    write_raster(out / "lulc.tif", scenes.labels, scenes.grid, 1)
    return SimpleNamespace(root=out, scenes=scenes)
