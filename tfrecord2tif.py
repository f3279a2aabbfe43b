"""Convert MTLCC tiles (``<tileid>.tfrecord.gz``) into per-date GeoTIFFs (ORIGINAL.md §7).

    python tfrecord2tif.py data_IJGI18/datasets/full/480/data16/5887.tfrecord.gz \\
        --geotransforms data_IJGI18/datasets/full/480/geotransforms.csv

writes ``tif/5887/10m/YYYYMMDD.tif`` (4 bands), ``20m/`` (6), ``60m/`` (3) for every observed date (padded steps
are dropped) and ``tif/5887/labels.tif``, uint16, georeferenced from ``geotransforms.csv``. Several files or data
folders may be given at once. ``tif2tfrecord.py`` converts such folders back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from utils.cli import ArgumentParser, UserError, run
from utils.georef import GeoRef, read_geotransforms
from utils.geotiffs import write_series
from utils.records import read_tile, tile_files
from utils.series import Series


def georef_of(tileid: int, file: Path, csv: Path | None, cache: dict[Path, dict[int, GeoRef]]) -> GeoRef | None:
    """The tile's row of ``csv`` (default: ``geotransforms.csv`` of the dataset root above ``file``, if any)."""
    if csv is None:
        csv = file.resolve().parent.parent / "geotransforms.csv"
        if not csv.is_file():
            return None
    if csv not in cache:
        cache[csv] = read_geotransforms(csv)
    if tileid not in cache[csv]:
        raise UserError(f"{csv}: no row for tile {tileid} ({file})")
    return cache[csv][tileid]


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tfrecord", nargs="+", help="<tileid>.tfrecord[.gz] files or folders of them")
    parser.add_argument("--outdir", default="tif", help="output folder, one subfolder per tile (default: tif)")
    parser.add_argument("--geotransforms", default=None,
                        help="geotransforms.csv of the dataset (default: the one in the folder above the data "
                             "folder, if present; without it the GeoTIFFs have no georeference)")
    args = parser.parse_args(argv)
    csv = Path(args.geotransforms) if args.geotransforms else None
    cache: dict[Path, dict[int, GeoRef]] = {}
    outdir = Path(args.outdir)
    for tileid, file in tile_files(args.tfrecord):
        georef = georef_of(tileid, file, csv, cache)
        series = Series.from_tile(read_tile(file), georef, str(file))
        write_series(outdir / str(tileid), series)
        where = f"EPSG:{georef.epsg}" if georef else "no georeference (no geotransforms.csv)"
        print(f"{file} -> {outdir / str(tileid)}: {len(series.dates)} dates, {where}")


if __name__ == "__main__":
    run(main)
