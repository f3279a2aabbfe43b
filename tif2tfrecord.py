"""Convert Sentinel-2 observations into MTLCC tiles (``<tileid>.tfrecord.gz``) and their ``geotransforms.csv`` rows.

Two kinds of input:

- tile folders written by ``tfrecord2tif.py`` (``10m/``, ``20m/``, ``60m/`` with ``YYYYMMDD.tif``, and
  ``labels.tif``): one tile each, whose id is the folder name. The round trip tfrecord → GeoTIFF → tfrecord is exact;
- the sources of one area (``utils/sentinel2.py``): SAFE products of L1C or L2A (``.SAFE`` folders or ``.zip``),
  per-date folders of band files (GeoTIFF, JPEG 2000, VRT …), band stacks, or folders of these. The area, the union
  of the sources, is cut into ``--tilesize`` px tiles numbered row by row from ``--tileid``.

    python tif2tfrecord.py S2A_MSIL1C_2016*.zip --outdir mydata/data16 --labels parcels.tif \\
        --tileids mydata/tileids/eval.tileids
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from utils.arearecords import EDGES, TileGrid, write_records
from utils.bands import LEVELS
from utils.classes import read_classes
from utils.cli import ArgumentParser, UserError, run, warn
from utils.georef import format_geotransform_row
from utils.geotiffs import is_tile_folder, read_series, upsert_rows
from utils.labels import LabelRaster, describe_ids, read_labelmap, unlisted_ids
from utils.records import tile_file_name, write_tile
from utils.sentinel2 import SourceOptions, open_area

DEFAULT_NOBS = 46


def convert_tile_folders(folders: list[Path], args: argparse.Namespace) -> tuple[list[int], dict[int, str]]:
    """Write the record of each tile folder: the tile ids and ``{tileid: geotransforms.csv row}`` of those with a
    georeference."""
    if args.tileid is not None and len(folders) > 1:
        raise UserError("--tileid: give one tile folder with it")
    for folder in folders:
        if args.tileid is None and not folder.name.isdigit():
            raise UserError(f"{folder}: the folder name is no tile id; pass --tileid")
    ids = [args.tileid if args.tileid is not None else int(folder.name) for folder in folders]
    if len(set(ids)) != len(ids):
        raise UserError(f"tile ids {sorted(ids)}: an id appears twice among the inputs")
    rows = {}
    for tileid, folder in zip(ids, folders, strict=True):
        series = read_series(folder)
        path = Path(args.outdir) / tile_file_name(tileid)
        write_tile(path, series.to_tile(args.nobs, str(path)))
        if series.georef is not None:
            rows[tileid] = format_geotransform_row(tileid, series.georef)
        print(f"wrote {path}: {len(series.dates)} dates, {series.labels.shape[0]}x{series.labels.shape[1]} px")
    return ids, rows


def convert_area(sources: list[str], args: argparse.Namespace) -> tuple[list[int], dict[int, str]]:
    """Write the records of the area of ``sources``: the tile ids and ``{tileid: geotransforms.csv row}``."""
    outdir = Path(args.outdir)
    root = outdir.resolve().parent
    options = SourceOptions(level=args.level, scale=args.scale, offset=args.offset, nodata=args.nodata)
    labelmap = read_labelmap(args.labelmap) if args.labelmap else None
    with open_area(sources, options, args.year) as area:
        grid = TileGrid.of(area.height, area.width, args.tilesize, args.edge)
        if grid.rows == 0 or grid.cols == 0:
            raise UserError(f"{sources[0]}: the area ({area.height}x{area.width} px) is smaller than one tile of "
                            f"--tilesize {args.tilesize} (use --edge pad)")
        labels = LabelRaster(args.labels, area.georef, labelmap) if args.labels else None
        try:
            report = write_records(area, grid, outdir, args.tileid or 0, args.nobs, labels)
        finally:
            if labels is not None:
                labels.close()
    dates = report.dates
    print(f"area {area.height} x {area.width} px at 10 m ({area.area_km2:.2f} km², EPSG:{area.georef.epsg}), "
          f"{len(area.dates)} dates of {area.dates[0].year} ({area.level}) from {len(area.sources)} sources: "
          f"{len(report.tiles)} tiles of {args.tilesize} px written to {outdir}; dates kept per tile "
          f"{min(dates)} / {sum(dates) / len(dates):.1f} / {max(dates)} (min / mean / max)")
    if args.edge == "drop" and grid.dropped:
        print(f"edge drop: {grid.dropped} px of the area lie outside the whole tiles and were dropped")
    elif any(grid.padded):
        print(f"edge pad: the last tile row and column reach {grid.padded[0]} and {grid.padded[1]} px beyond the "
              "area (no data, label 0)")
    if report.empty:
        print(f"{report.empty} tiles without any valid observation were not written")
    _check_labels(args, report.labels, labels, root)
    return [tileid for tileid, _ in report.tiles], {tileid: format_geotransform_row(tileid, georef)
                                                    for tileid, georef in report.tiles}


def _check_labels(args: argparse.Namespace, counts, labels: LabelRaster | None, root: Path) -> None:
    """Warn about label ids a label map did not list and about ids missing from the root's ``classes.txt``."""
    if labels is None:
        return
    if labels.unmapped:
        own = sum(n for i, n in labels.counts.items() if i != 0)
        warn(f"{args.labels}: ids not in --labelmap {args.labelmap} became 0 (unknown): "
             f"{describe_ids(labels.unmapped, own)}")
    if not (root / "classes.txt").is_file():
        warn(f"{root / 'classes.txt'}: no such file; the label ids were not checked against the classes (copy "
             "classes.txt into the dataset root first)")
        return
    unknown = unlisted_ids(counts, read_classes(root).ids)
    if unknown:
        labelled = sum(n for i, n in counts.items() if i != 0)
        warn(f"{args.labels}: label ids not in {root / 'classes.txt'} are unknown (0) to the network: "
             f"{describe_ids(unknown, labelled)}; map your legend with --labelmap")


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="tile folders (tfrecord2tif.py layout), or the sources of one "
                                                  "area: SAFE products (.SAFE, .zip), per-date folders, stacks, "
                                                  "or folders of them")
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
    parser.add_argument("--edge", choices=EDGES, default="pad",
                        help="pad (default): tiles cover every pixel, the part beyond the area is no data with "
                             "label 0; drop: only whole tiles, the remaining rows and columns are dropped")
    parser.add_argument("--year", type=int, default=None,
                        help="the year of the dates to convert (default: the only year of the sources)")
    parser.add_argument("--labels", default=None,
                        help="raster of raw class ids on the 10 m grid of an area (default: all 0 = unknown)")
    parser.add_argument("--labelmap", default=None,
                        help="CSV 'own_id,class_id' mapping the ids of --labels to the raw ids of classes.txt; "
                             "ids not listed become 0 (unknown)")
    parser.add_argument("--level", choices=LEVELS, default=None,
                        help="processing level of plain rasters (default L1C; SAFE products say theirs). L2A "
                             "data get B10 = 0")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="factor from plain raster values to DN (default 1; 10000 for reflectance 0..1)")
    parser.add_argument("--offset", type=float, default=None,
                        help="added to plain raster values after --scale, e.g. -1000 for DN of processing "
                             "baseline 04.00 or later (products from 2022-01-25 on) whose offset was not removed "
                             "(default 0; SAFE products carry their own)")
    parser.add_argument("--nodata", type=float, default=None,
                        help="raster value meaning no data in plain rasters, besides each file's nodata tag, NaN "
                             "and 0 in every band")
    args = parser.parse_args(argv)
    if args.nobs < 1:
        raise UserError(f"--nobs {args.nobs}: must be at least 1")
    if args.tilesize < 6 or args.tilesize % 6:
        raise UserError(f"--tilesize {args.tilesize}: must be a positive multiple of 6 (a whole 60 m pixel)")
    if args.tileid is not None and args.tileid < 0:
        raise UserError(f"--tileid {args.tileid}: must be >= 0")
    if args.labelmap and not args.labels:
        raise UserError("--labelmap: give --labels with it")
    inputs = [Path(name) for name in args.inputs]
    tile_folders = [path for path in inputs if path.is_dir() and is_tile_folder(path)]
    if tile_folders and len(tile_folders) != len(inputs):
        raise UserError(f"{tile_folders[0]}: a tile folder among the sources of an area; convert tile folders and "
                        "areas separately")
    ids, rows = convert_tile_folders(tile_folders, args) if tile_folders else convert_area(args.inputs, args)
    csv = Path(args.geotransforms) if args.geotransforms else Path(args.outdir).resolve().parent / "geotransforms.csv"
    if rows:
        upsert_rows(csv, rows)
        print(f"updated {csv}: {len(rows)} rows")
    if args.tileids:
        upsert_rows(args.tileids, {tileid: str(tileid) for tileid in ids})
        print(f"updated {args.tileids}: {len(ids)} tile ids")

if __name__ == "__main__":
    run(main)
