"""An area of Sentinel-2 observations (:mod:`utils.sentinel2`) cut into MTLCC records (``tif2tfrecord.py``).

Tiles of ``size`` px are numbered row by row from the first id over the whole grid. ``edge="pad"`` covers every
pixel: the last row and column of tiles reach beyond the area, where the records hold 0 (no data) and label 0
(unknown, masked). ``edge="drop"`` keeps only whole tiles, as the original did. Tiles are read in square blocks of
whole tiles of about 256 MiB (:meth:`utils.sentinel2.Area.block_side`); each tile's series is cleaned on its own
(dates without data dropped, gaps filled); tiles without any observation are not written; records are compressed by
one thread per core and move into the output folder only when all are written.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from utils.cli import UserError
from utils.fsio import staged_files
from utils.georef import GeoRef
from utils.labels import LabelRaster, id_counts
from utils.records import tile_file_name, write_tile
from utils.sentinel2 import Area

EDGES = ("pad", "drop")


@dataclass(frozen=True)
class TileGrid:
    """``rows`` × ``cols`` tiles of ``size`` px over an area of ``height`` × ``width`` px."""

    rows: int
    cols: int
    size: int
    height: int
    width: int

    @classmethod
    def of(cls, height: int, width: int, size: int, edge: str) -> TileGrid:
        """The tiles that cover the area (``pad``) or lie inside it (``drop``)."""
        whole = math.ceil if edge == "pad" else math.floor
        return cls(whole(height / size), whole(width / size), size, height, width)

    @property
    def dropped(self) -> int:
        """Pixels of the area outside every tile (``drop``)."""
        return max(self.height * self.width - min(self.rows * self.size, self.height) *
                   min(self.cols * self.size, self.width), 0)

    @property
    def padded(self) -> tuple[int, int]:
        """Rows and columns of the tiles beyond the area (``pad``)."""
        return max(self.rows * self.size - self.height, 0), max(self.cols * self.size - self.width, 0)


@dataclass
class Report:
    """What :func:`write_records` wrote: ``(tileid, georef)`` per record, the tiles without any observation, the
    dates of each record and the pixels per raw label id of the records."""

    tiles: list[tuple[int, GeoRef]] = field(default_factory=list)
    empty: int = 0
    dates: list[int] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)


class _RecordWriter:
    """Writes records on one thread per core, with at most two records per thread in flight (they are MBs each)."""

    def __init__(self):
        self.workers = os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(self.workers)
        self.pending: deque[Future] = deque()

    def submit(self, path: Path, record) -> None:
        while len(self.pending) >= 2 * self.workers:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(write_tile, path, record))

    def __enter__(self) -> _RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            for future in self.pending:
                future.result()
        finally:
            self.pool.shutdown()


def write_records(area: Area, grid: TileGrid, outdir: str | os.PathLike, first_id: int, nobs: int,
                  labels: LabelRaster | None = None) -> Report:
    """Write the record of every tile of ``grid`` with an observation to ``<outdir>/<tileid>.tfrecord.gz``."""
    report = Report()
    size = grid.size
    step = area.block_side(size) // size
    outdir = Path(outdir)
    with staged_files(outdir) as staging, _RecordWriter() as writer, \
            tqdm(total=grid.rows * grid.cols, unit="tile", disable=None, desc="tiles") as progress:
        for row0, col0 in itertools.product(range(0, grid.rows, step), range(0, grid.cols, step)):
            rows, cols = min(step, grid.rows - row0), min(step, grid.cols - col0)
            window = (row0 * size, col0 * size, rows * size, cols * size)
            block = area.read(*window)
            label_block = labels.read(*window) if labels is not None else np.zeros(window[2:], np.int64)
            for r, c in itertools.product(range(rows), range(cols)):
                progress.update()
                tile = block.window(r * size, c * size, size, size).cleaned()
                if not tile.dates:
                    report.empty += 1
                    continue
                series = tile.series(label_block[r * size:(r + 1) * size, c * size:(c + 1) * size])
                tileid = first_id + (row0 + r) * grid.cols + col0 + c
                path = outdir / tile_file_name(tileid)
                writer.submit(staging / path.name, series.to_tile(nobs, str(path)))
                report.tiles.append((tileid, tile.georef))
                report.dates.append(len(tile.dates))
                report.labels += id_counts(series.labels)
        if not report.tiles:
            raise UserError(f"{', '.join(area.sources[:3])}: no tile has a valid observation (everything is nodata)")
    return report
