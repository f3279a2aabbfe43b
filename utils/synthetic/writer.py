"""Writing the simulated world as the two MTLCC dataset roots ``240`` (24 px tiles) and ``480`` (48 px tiles)."""

from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path

import numpy as np

from utils.classes import ORIGINAL_CLASSES
from utils.cli import UserError
from utils.fsio import atomic_dir, atomic_file
from utils.georef import GeoRef, format_geotransform_row
from utils.records import COMPRESSION_LEVEL, tile_file_name, write_tile
from utils.synthetic.landscape import FOLDS, TILE, check_blocks
from utils.synthetic.render import DEFAULT_BLOCKS, DEFAULT_NOBS, DEFAULT_YEARS, World, make_world, render_tile, to_tile

SYNTHETIC_ROOT = Path(__file__).resolve().parents[2] / "data" / "synthetic"  # the default dataset
VERSION = 1  # bump when the generator's output changes: the cached default dataset is then regenerated
ORIGIN = (690_000.0, 5_370_000.0)  # top-left corner, EPSG:32632 (48.46 N 11.57 E: southern Hallertau, north of Munich)
EPSG = 32632
PIXEL = 10
DEFAULTS = {"seed": 0, "blocks": DEFAULT_BLOCKS, "years": DEFAULT_YEARS, "nobs": DEFAULT_NOBS}
STAMP = "synthetic.json"


def check_arguments(seed: int, years: tuple[int, ...], nobs: int) -> None:
    """Raise a :class:`UserError` for a negative seed, unusable years or ``nobs < 1``."""
    if seed < 0:
        raise UserError(f"seed {seed}: must be >= 0")
    if not years or len(set(years)) != len(years) or any(not 2015 <= y <= 2099 for y in years):
        raise UserError(f"years {list(years)}: expected distinct years from 2015 to 2099")
    if nobs < 1:
        raise UserError(f"nobs {nobs}: must be >= 1")


def generate(outdir: str | os.PathLike, *, seed: int = 0, blocks: tuple[int, int] = DEFAULT_BLOCKS,
             years: tuple[int, ...] = DEFAULT_YEARS, nobs: int = DEFAULT_NOBS,
             compression_level: int = COMPRESSION_LEVEL) -> None:
    """Simulate a landscape and write the dataset roots ``outdir/240`` and ``outdir/480`` (ORIGINAL.md §1.2).

    ``blocks = (ny, nx)``: size in spatial blocks of 1.92 km (64 tiles of 24 px each); ``years``: one
    ``dataset.ini`` section and ``data<yy>`` folder per year; ``nobs``: the padded series length. The same
    arguments always give byte-identical files. Each root appears only when complete.
    """
    years = tuple(int(y) for y in years)
    check_arguments(seed, years, nobs)
    blocks = check_blocks(blocks)
    world = make_world(seed, blocks, years, nobs)
    outdir = Path(outdir)
    with atomic_dir(outdir / "240") as root240, atomic_dir(outdir / "480") as root480:
        roots = {24: root240, 48: root480}
        for pix, root in roots.items():
            write_metadata(root, world, pix)
        for year in years:
            folder = data_folder(year)
            for row, col in np.ndindex(world.tiles):
                scene = render_tile(world, year, row, col)
                for pix, root in roots.items():
                    per_side = TILE // pix
                    for r, c in np.ndindex(per_side, per_side):
                        tileid = tile_id(world, pix, row * per_side + r, col * per_side + c)
                        window = slice(r * pix, (r + 1) * pix), slice(c * pix, (c + 1) * pix)
                        write_tile(root / folder / tile_file_name(tileid), to_tile(scene, *window, nobs),
                                   compression_level)
        for pix, root in roots.items():
            write_stamp(root, world, pix, blocks)


def data_folder(year: int) -> str:
    """The data folder of a year: ``data16`` for 2016."""
    return f"data{year % 100:02d}"


def tile_id(world: World, pix: int, row: int, col: int) -> int:
    """Tile id of the ``pix`` px tile at grid position ``(row, col)``: row-major over that root's grid."""
    return row * world.tiles[1] * (TILE // pix) + col


def tile_grid(world: World, pix: int) -> list[tuple[int, int, int]]:
    """``(tileid, row, col)`` of every ``pix`` px tile."""
    per_side = TILE // pix
    rows, cols = world.tiles[0] * per_side, world.tiles[1] * per_side
    return [(tile_id(world, pix, r, c), r, c) for r in range(rows) for c in range(cols)]


def write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_metadata(root: Path, world: World, pix: int) -> None:
    """``dataset.ini``, ``classes.txt``, ``geotransforms.csv`` and ``tileids/`` of one dataset root."""
    config = configparser.ConfigParser()
    for year in world.years:
        config[str(year)] = {"datadir": data_folder(year), "pix10": str(pix), "nobs": str(world.nobs),
                             "nbands10": "4", "nbands20": "6", "nbands60": "3", "tiletable": f"tiles{pix * 10}"}
    with atomic_file(root / "dataset.ini") as tmp, open(tmp, "w") as f:
        config.write(f)
    write_text(root / "classes.txt", ORIGINAL_CLASSES.text())
    per_side = TILE // pix
    rows = []
    partitions: dict[str, list[int]] = {"eval": [], **{f"fold{k}": [] for k in range(FOLDS)}}
    for tileid, row, col in tile_grid(world, pix):
        xmin, ymax = ORIGIN[0] + col * pix * PIXEL, ORIGIN[1] - row * pix * PIXEL
        rows.append(format_geotransform_row(tileid, GeoRef((xmin, PIXEL, 0, ymax, 0, -PIXEL), EPSG)))
        fold = int(world.landscape.fold[row // per_side, col // per_side])
        partitions["eval" if fold < 0 else f"fold{fold}"].append(tileid)
    write_text(root / "geotransforms.csv", "".join(row + "\n" for row in rows))
    folds = [partitions[f"fold{k}"] for k in range(FOLDS)]
    files = {"eval": partitions["eval"]}
    for k in range(FOLDS):
        files[f"test_fold{k}"] = folds[k]
        files[f"train_fold{k}"] = sorted(i for j, fold in enumerate(folds) if j != k for i in fold)
    for name, ids in files.items():
        write_text(root / "tileids" / f"{name}.tileids", "".join(f"{i}\n" for i in ids))


def stamp(seed: int, blocks: tuple[int, int], years: tuple[int, ...], nobs: int) -> dict:
    """What identifies a generated dataset: generator version and arguments."""
    return {"generator": "utils.synthetic", "version": VERSION, "seed": seed, "blocks": list(blocks),
            "years": list(years), "nobs": nobs}


def write_stamp(root: Path, world: World, pix: int, blocks: tuple[int, int]) -> None:
    """``synthetic.json``: the stamp plus the number of tiles and the range of observations per year."""
    observations = {}
    for year in world.years:
        sky = world.skies[year]
        counts = [len(sky.dates[zone]) for zone in np.unique(sky.zone)]
        observations[str(year)] = [min(counts), max(counts)]
    info = {**stamp(world.seed, blocks, world.years, world.nobs), "pix10": pix,
            "tiles_per_year": len(tile_grid(world, pix)), "observations_min_max": observations}
    write_text(root / STAMP, json.dumps(info, indent=1) + "\n")


def is_current(root: Path, expected: dict) -> bool:
    """Whether ``root`` holds a complete dataset generated by this generator version with these arguments."""
    try:
        info = json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return all(info.get(key) == value for key, value in expected.items())


def ensure_default_dataset(pix10: int) -> Path:
    """The embedded default dataset root for ``pix10`` (24 -> ``240``, 48 -> ``480``), generated on first use.

    The default (seed 0, 2 x 2 blocks, 2016 and 2017, nobs 46) has 256 tiles of 24 px and 64 tiles of 48 px per
    year. It is regenerated when missing or written by another generator version.
    """
    if pix10 not in (24, 48):
        raise UserError(f"pix10m {pix10}: the synthetic dataset has 24 px (root 240) and 48 px (root 480) tiles only")
    root = SYNTHETIC_ROOT / str(pix10 * 10)
    expected = stamp(DEFAULTS["seed"], DEFAULTS["blocks"], DEFAULTS["years"], DEFAULTS["nobs"])
    if not is_current(root, expected):
        print(f"generating the synthetic dataset in {SYNTHETIC_ROOT} (first use, about a minute)", file=sys.stderr)
        generate(SYNTHETIC_ROOT, **DEFAULTS)
    return root
