"""Convert per-date GeoTIFFs into MTLCC tiles (``<tileid>.tfrecord.gz``) and their ``geotransforms.csv`` rows.

Two kinds of input (see ``utils/geotiffs.py`` for the details):

- a tile folder written by ``tfrecord2tif.py`` (``10m/``, ``20m/``, ``60m/`` with ``YYYYMMDD.tif``, and
  ``labels.tif``): one tile whose id is the folder name. The round trip tfrecord → GeoTIFF → tfrecord is exact;
- a folder of your own area with one entry per date whose name contains ``YYYYMMDD``: a folder of the 13 L1C band
  files (``B01.tif`` … ``B12.tif``, ``B8A.tif``; any pixel size 10/20/60 m that divides the band's MTLCC
  resolution) or a 13-band stack (band order B01 … B08 B8A B09 … B12). It is cut into ``--tilesize`` px tiles
  numbered row by row from ``--tileid``.

    python tif2tfrecord.py myarea/ --outdir mydata/data16 --labels labels.tif --tileids mydata/tileids/eval.tileids
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from utils.cli import ArgumentParser, UserError, run
from utils.georef import format_geotransform_row
from utils.geotiffs import Series, is_tile_folder, read_area, read_series, upsert_rows
from utils.records import write_tile

DEFAULT_NOBS = 46


def tiles_of(folder: Path, args: argparse.Namespace, next_id: int) -> list[tuple[int, Series]]:
    """``(tileid, series)`` of one input folder: a tile folder, or an area cut into tiles from ``next_id`` on."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if is_tile_folder(folder):
        if args.tileid is None and not folder.name.isdigit():
            raise UserError(f"{folder}: the folder name is no tile id; pass --tileid")
        return [(args.tileid if args.tileid is not None else int(folder.name), read_series(folder))]
    area = read_area(folder, args.labels, args.scale)
    size = args.tilesize
    rows, cols = area.labels.shape[0] // size, area.labels.shape[1] // size
    if rows == 0 or cols == 0:
        raise UserError(f"{folder}: the area ({area.labels.shape[0]}x{area.labels.shape[1]} px) is smaller than "
                        f"one tile of --tilesize {size}")
    return [(next_id + r * cols + c, area.window(r * size, c * size, size)) for r in range(rows) for c in range(cols)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="tile folders (tfrecord2tif.py layout) or folders of an area")
    parser.add_argument("--outdir", required=True, help="folder of the <tileid>.tfrecord.gz files, e.g. root/data16")
    parser.add_argument("--geotransforms", default=None,
                        help="geotransforms.csv to add the tiles' rows to (default: the one in the folder above "
                             "--outdir, i.e. the dataset root)")
    parser.add_argument("--tileids", default=None, help="a partition file (e.g. root/tileids/eval.tileids) to add "
                                                        "the tile ids to")
    parser.add_argument("--nobs", type=int, default=DEFAULT_NOBS,
                        help=f"time steps every record is padded to, as nobs in dataset.ini (default {DEFAULT_NOBS})")
    parser.add_argument("--tileid", type=int, default=None,
                        help="id of a single tile folder, or the first id of an area's tiles (default: the folder "
                             "name, or 0 for an area)")
    parser.add_argument("--tilesize", type=int, default=48,
                        help="tile side in 10 m px for an area, a multiple of 6 (default 48; 24 for the 240 data)")
    parser.add_argument("--labels", default=None,
                        help="raster of raw class ids on the 10 m grid of an area (default: all 0 = unknown)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="factor from the area's raster values to DN (default 1; 10000 for reflectance 0..1)")
    args = parser.parse_args(argv)
    if args.nobs < 1:
        raise UserError(f"--nobs {args.nobs}: must be at least 1")
    if args.tilesize < 6 or args.tilesize % 6:
        raise UserError(f"--tilesize {args.tilesize}: must be a positive multiple of 6 (a whole 60 m pixel)")
    if args.tileid is not None and args.tileid < 0:
        raise UserError(f"--tileid {args.tileid}: must be >= 0")
    if args.tileid is not None and len(args.inputs) > 1:
        raise UserError("--tileid: give one input folder with it")
    outdir = Path(args.outdir)
    tiles: list[tuple[int, Series]] = []
    for name in args.inputs:
        tiles += tiles_of(Path(name), args, tiles[-1][0] + 1 if tiles else (args.tileid or 0))
    ids = [tileid for tileid, _ in tiles]
    if len(set(ids)) != len(ids):
        raise UserError(f"tile ids {sorted(ids)}: an id appears twice among the inputs")
    rows = {}
    for tileid, series in tiles:
        path = outdir / f"{tileid}.tfrecord.gz"
        write_tile(path, series.to_tile(args.nobs, str(path)))
        if series.georef is not None:
            rows[tileid] = format_geotransform_row(tileid, series.georef)
        print(f"wrote {path}: {len(series.dates)} dates, {series.labels.shape[0]}x{series.labels.shape[1]} px")
    csv = Path(args.geotransforms) if args.geotransforms else outdir.resolve().parent / "geotransforms.csv"
    if rows:
        upsert_rows(csv, rows)
        print(f"updated {csv}: {len(rows)} rows")
    if args.tileids:
        upsert_rows(args.tileids, {tileid: str(tileid) for tileid in ids})
        print(f"updated {args.tileids}: {len(ids)} tile ids")


if __name__ == "__main__":
    run(main)
