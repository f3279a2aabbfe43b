"""An area of Sentinel-2 observations (:mod:`utils.sentinel2`) cut into MTLCC records (``tif2tfrecord.py``).

Tiles of ``size`` px are numbered row by row from the first id over the whole grid. ``edge="pad"`` covers every
pixel: the last row and column of tiles reach beyond the area, where the records hold 0 (no data) and label 0
(unknown, masked). ``edge="drop"`` keeps only whole tiles, as the original did. Tiles are read in blocks of about
:data:`BLOCK` px, each tile's series is cleaned on its own (dates without data dropped, gaps filled), tiles without
any observation are not written, and the records move into the output folder only when all are written.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from utils.cli import UserError
from utils.fsio import staged_files
from utils.georef import GeoRef
from utils.labels import LabelRaster, id_counts
from utils.records import write_tile
from utils.sentinel2 import Area

EDGES = ("pad", "drop")
BLOCK = 480  # side in 10 m px of the blocks read at once (a multiple of 6, 24 and 48)


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


def write_records(area: Area, grid: TileGrid, outdir: str | os.PathLike, first_id: int, nobs: int,
                  labels: LabelRaster | None = None) -> Report:
    """Write the record of every tile of ``grid`` with an observation to ``<outdir>/<tileid>.tfrecord.gz``."""
    report = Report()
    size = grid.size
    step = max(1, BLOCK // size)
    outdir = Path(outdir)
    with staged_files(outdir) as staging, tqdm(total=grid.rows * grid.cols, unit="tile", disable=None,
                                               desc="tiles") as progress:
        for block_row in range(0, grid.rows, step):
            for block_col in range(0, grid.cols, step):
                rows, cols = min(step, grid.rows - block_row), min(step, grid.cols - block_col)
                top, left = block_row * size, block_col * size
                block = area.read(top, left, rows * size, cols * size)
                label_block = labels.read(top, left, rows * size, cols * size) if labels is not None else None
                for r in range(rows):
                    for c in range(cols):
                        tileid = first_id + (block_row + r) * grid.cols + block_col + c
                        tile = block.window(r * size, c * size, size, size).cleaned()
                        progress.update()
                        if not tile.dates:
                            report.empty += 1
                            continue
                        tile_labels = (label_block[r * size:(r + 1) * size, c * size:(c + 1) * size]
                                       if label_block is not None else 0)
                        series = tile.series(tile_labels)
                        path = outdir / f"{tileid}.tfrecord.gz"
                        write_tile(staging / path.name, series.to_tile(nobs, str(path)))
                        report.tiles.append((tileid, tile.georef))
                        report.dates.append(len(tile.dates))
                        report.labels += id_counts(series.labels)
        if not report.tiles:
            raise UserError(f"{', '.join(area.sources[:3])}: no tile has a valid observation (everything is nodata)")
    return report
