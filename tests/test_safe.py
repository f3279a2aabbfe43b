"""utils/safe.py: the metadata and band files of SAFE products (L1C and L2A, folders and zips, baselines before and
from 04.00), and one-line errors for what is not a product."""

from __future__ import annotations

import datetime
import zipfile

import numpy as np
import pytest

from tests.s2fixtures import NATIVE, native, write_safe
from utils.bands import BANDS
from utils.cli import UserError
from utils.georef import GeoRef
from utils.safe import is_product, read_product

GRID = GeoRef((600000.0, 10.0, 0.0, 5300040.0, 0.0, -10.0), 32632)
DATE = datetime.date(2022, 5, 3)


def _images(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {band: native(rng.integers(1, 9000, (12, 12)).astype(float), NATIVE[band]) for band in BANDS}


def test_l1c_product_of_baseline_04_00(tmp_path):
    path = write_safe(tmp_path, DATE, _images(), GRID)
    assert path.name.endswith(".SAFE") and is_product(path)
    product = read_product(path)
    assert (product.level, product.baseline, product.date) == ("L1C", "04.00", DATE)
    assert (product.quantification, product.nodata, product.saturated) == (10000.0, 0, 65535)
    assert product.offsets == dict.fromkeys(BANDS, -1000.0)
    assert len(product.granules) == 1 and product.granules[0].name == "T33TVM"
    bands = product.granules[0].bands
    assert sorted(bands) == sorted(BANDS)
    assert bands["B8A"].endswith("/IMG_DATA/T33TVM_20220503T100008_B8A.jp2")


def test_l2a_zip_takes_every_band_at_its_finest_resolution(tmp_path):
    path = write_safe(tmp_path, DATE, _images(), GRID, level="L2A", baseline="05.09", as_zip=True)
    assert path.suffix == ".zip" and is_product(path)
    product = read_product(path)
    assert (product.level, product.baseline, product.quantification) == ("L2A", "05.09", 10000.0)
    assert product.offsets == dict.fromkeys(BANDS, -1000.0)
    bands = product.granules[0].bands
    assert "B10" not in bands and len(bands) == 12
    assert bands["B02"].startswith(f"/vsizip/{path.resolve()}/") and bands["B02"].endswith("/R10m/T33TVM_"
                                                                                            "20220503T100008_B02_10m.jp2")
    assert bands["B8A"].endswith("/R20m/T33TVM_20220503T100008_B8A_20m.jp2")
    assert bands["B09"].endswith("/R60m/T33TVM_20220503T100008_B09_60m.jp2")


def test_products_before_baseline_04_00_have_no_offset(tmp_path):
    product = read_product(write_safe(tmp_path, datetime.date(2016, 4, 3), _images(), GRID, baseline="02.01",
                                      offset=None))
    assert product.baseline == "02.01" and product.offsets == dict.fromkeys(BANDS, 0.0)


def test_bad_products(tmp_path):
    path = write_safe(tmp_path / "a", DATE, _images(), GRID, offset=None)
    with pytest.raises(UserError, match="processing baseline 04.00 but no RADIO_ADD_OFFSET values"):
        read_product(path)
    metadata = path / "MTD_MSIL1C.xml"
    metadata.write_text(metadata.read_text().replace("<PRODUCT_START_TIME>", "<X>").replace(
        "</PRODUCT_START_TIME>", "</X>").replace("<DATATAKE_SENSING_START>", "<Y>").replace(
        "</DATATAKE_SENSING_START>", "</Y>").replace("04.00", "03.01"))
    with pytest.raises(UserError, match="no PRODUCT_START_TIME or DATATAKE_SENSING_START"):
        read_product(path)
    metadata.write_text("<broken")
    with pytest.raises(UserError, match="MTD_MSIL1C.xml: not readable XML"):
        read_product(path)
    metadata.unlink()
    assert not is_product(tmp_path / "a") and is_product(path)  # a .SAFE folder is taken for a product
    with pytest.raises(UserError, match="no product metadata .* not a Sentinel-2 L1C/L2A SAFE product"):
        read_product(path)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="bad.zip: not a readable zip file"):
        read_product(tmp_path / "bad.zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("data/readme.txt", "hello")
    with pytest.raises(UserError, match="other.zip: no product metadata"):
        read_product(tmp_path / "other.zip")
    product = write_safe(tmp_path / "b", DATE, _images(), GRID)
    for jp2 in product.rglob("*.jp2"):
        jp2.unlink()
    with pytest.raises(UserError, match="no band files under GRANULE"):
        read_product(product)
