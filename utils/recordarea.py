"""A dataset root of records as an area (``predict.py ROOT``): every tile of one section placed by its
``geotransforms.csv`` row, read in windows as :class:`utils.sentinel2.Area` reads scenes.

The area is the union of the tiles; its dates are the union of the tiles' dates. A tile holds data on its own dates
(zero-padded steps and pixels that are 0 in every band of a group are no data), so a window across tiles of other
orbits has gaps, which :meth:`utils.sentinel2.Block.cleaned` fills as for scenes.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from pathlib import Path

import numpy as np

from utils.bands import GROUPS
from utils.cli import UserError
from utils.dataset import Dataset, read_dataset_ini
from utils.georef import GeoRef, read_geotransforms
from utils.records import Tile, read_tile
from utils.sentinel2 import Block, block_side
from utils.series import date_of

CACHED_TILES = 512  # decoded records kept while a band of windows is read


def is_dataset_root(path: Path) -> bool:
    """Whether ``path`` is a dataset root (a folder with ``dataset.ini``)."""
    return path.is_dir() and (path / "dataset.ini").is_file()


class RecordArea:
    """The tiles of one section of a dataset root on their common 10 m grid (the interface of ``Area``)."""

    level = "L1C"

    def __init__(self, root: Path, year: int | None):
        sections = read_dataset_ini(root)
        if year is None and len(sections) > 1:
            raise UserError(f"{root}: sections {', '.join(sections)}; pass --year")
        section = str(year) if year is not None else next(iter(sections))
        if section not in sections:
            raise UserError(f"--year {year}: {root / 'dataset.ini'} has the sections {', '.join(sections)}")
        dataset = Dataset(root, section)
        georefs = read_geotransforms(root / "geotransforms.csv")
        files = [(tileid, path) for tileid, path in dataset.stored_tiles() if tileid in georefs]
        if not files:
            raise UserError(f"{dataset.config.datadir}: no tile with a row in {root / 'geotransforms.csv'}")
        epsgs = {georefs[tileid].epsg for tileid, _ in files}
        if len(epsgs) > 1:
            raise UserError(f"{root / 'geotransforms.csv'}: the tiles lie in several CRSs (EPSG "
                            f"{', '.join(map(str, sorted(epsgs)))}); map one at a time")
        size = dataset.config.pix10
        left = min(georefs[t].transform[0] for t, _ in files)
        top = max(georefs[t].transform[3] for t, _ in files)
        self.georef = GeoRef((left, 10.0, 0.0, top, 0.0, -10.0), epsgs.pop())
        self._tiles: dict[tuple[int, int], Path] = {}
        for tileid, path in files:
            corner = self.georef.corner_pixel(*georefs[tileid].origin, factor=6)
            if corner is None or georefs[tileid].transform[1] != 10.0:
                raise UserError(f"{root / 'geotransforms.csv'}: tile {tileid} is not on the 10 m grid of the others")
            self._tiles[corner] = path
        self.size = size
        self.height = max(r for r, _ in self._tiles) + size
        self.width = max(c for _, c in self._tiles) + size
        self.sources = [str(dataset.config.datadir)]
        self._cache: OrderedDict[Path, tuple[Tile, list[datetime.date]]] = OrderedDict()
        self.dates = sorted({date for path in self._tiles.values() for date in self._tile(path)[1]})

    def _tile(self, path: Path) -> tuple[Tile, list[datetime.date]]:
        if path not in self._cache:
            tile = read_tile(path)
            steps = int((tile.doy > 0).sum())
            dates = [date_of(int(y), int(d), str(path)) for y, d in zip(tile.year[:steps], tile.doy[:steps],
                                                                        strict=True)]
            self._cache[path] = (tile, dates)
            if len(self._cache) > CACHED_TILES:
                self._cache.popitem(last=False)
        self._cache.move_to_end(path)
        return self._cache[path]

    @property
    def area_km2(self) -> float:
        return self.height * self.width * 1e-4

    def block_side(self, multiple: int) -> int:
        """See :func:`utils.sentinel2.block_side`."""
        return block_side(len(self.dates), multiple)

    def read(self, row: int, col: int, height: int, width: int) -> Block:
        """Every date in the window whose top-left 10 m pixel is ``(row, col)`` (multiples of 6)."""
        index = {date: t for t, date in enumerate(self.dates)}
        arrays = {g.name: np.zeros((len(self.dates), height // g.factor, width // g.factor, len(g.bands)), np.uint16)
                  for g in GROUPS}
        valid = {g.name: np.zeros((len(self.dates), height // g.factor, width // g.factor), bool) for g in GROUPS}
        size = self.size
        for (r, c), path in self._tiles.items():
            r0, r1, c0, c1 = max(r, row), min(r + size, row + height), max(c, col), min(c + size, col + width)
            if r0 >= r1 or c0 >= c1:
                continue
            tile, dates = self._tile(path)
            for step, date in enumerate(dates):
                t = index[date]
                for group in GROUPS:
                    f = group.factor
                    source = getattr(tile, group.name)[step, (r0 - r) // f:(r1 - r) // f, (c0 - c) // f:(c1 - c) // f]
                    target = (t, slice((r0 - row) // f, (r1 - row) // f), slice((c0 - col) // f, (c1 - col) // f))
                    ok = source.any(axis=-1) & ~valid[group.name][target]
                    arrays[group.name][target][ok] = np.clip(source[ok], 0, 65535)
                    valid[group.name][target] |= ok
        return Block(arrays, valid, list(self.dates), self.georef.shifted(row, col))

    def close(self) -> None:
        self._cache.clear()

    def __enter__(self) -> RecordArea:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
