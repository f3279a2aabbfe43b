"""The simulated landscape: parcels, land cover, crops per year (with rotation) and the spatial split.

Layout: the tiled area is ``blocks = (ny, nx)`` spatial blocks of 4 x 4 tiles of 48 px (1.92 km x 1.92 km).
A jittered Voronoi tessellation (cells of about 50 ha, cut at block edges) gives the road network (one pixel
along cell boundaries); inside each cell, agricultural parcels are strips of 50-140 m x 180-550 m in one
orientation per cell (about 1-8 ha, as after land consolidation in Bavaria). Forest (irregular patches of a
smooth random field, about 14 % of the area, coniferous and deciduous stands), villages (roofs, streets, gardens) and
ponds cover the rest. Crop classes are drawn per block by pixel quota following the class support of the paper's
evaluation set (ORIGINAL.md §10.1), with every class present at least once per block; meadow, hop and asparagus are
permanent, the other crops rotate from year to year (never the same crop twice on a parcel). A few parcels carry raw
id 6, which is not in ``classes.txt``. Labels: raw crop id; 0 on field borders (one pixel), roads, forest,
settlements, water and field margins.

Split: ``eval`` = a fifth of the blocks (at least one), held out spatially; the remaining 48 px tiles are dealt
into 10 folds at random; ``test_fold<k>`` = fold k, ``train_fold<k>`` = the other nine folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.cli import UserError
from utils.synthetic.noise import gaussian_field
from utils.synthetic.phenology import (
    CROP_BY_RAW,
    CROPS,
    FOREST_CONIFER,
    FOREST_DECIDUOUS,
    GARDEN,
    MARGIN,
    N_UNIFORMS,
    PAVED,
    ROAD,
    ROOFS,
    WATER_BODY,
)

TILE = 48  # pixels of the render unit: one 480 m tile = 2 x 2 tiles of 24 px
BLOCK_TILES = 4  # a block is 4 x 4 tiles of 48 px
BLOCK = BLOCK_TILES * TILE
MARGIN_PX = 1  # simulated pixels around the tiled area (for the sensor point spread function)
FOLDS = 10
EVAL_SHARE = 0.2
CELL_SPACING = 100  # px between the seeds of the road-network cells (about 1 km2 cells)
MIN_FIELD_PX = 30  # smaller crop fragments become field margins
FOREST_SHARE = 0.14
CROP = -1  # kind of a crop parcel before the classes are drawn


@dataclass(frozen=True)
class Landscape:
    """Per-pixel rasters of the simulated area (``MARGIN_PX`` wider than the tiles on each side) and parcel tables.

    ``parcel`` int32 parcel index per pixel; ``border`` field-border pixels (label 0); ``vigour`` multiplies green
    cover (within-field texture); ``soil`` regional soil brightness. Per parcel: ``cover[year_index]`` raw crop id
    or a ``phenology.COVERS`` code, ``uniforms[year_index]`` its random numbers, ``next_winter[year_index]`` whether
    a winter crop is sown in autumn, ``soil_factor`` its soil brightness. ``fold`` per 48 px tile: -1 for eval,
    else 0..9.
    """

    parcel: np.ndarray
    border: np.ndarray
    vigour: np.ndarray
    soil: np.ndarray
    cover: np.ndarray
    uniforms: np.ndarray
    next_winter: np.ndarray
    soil_factor: np.ndarray
    fold: np.ndarray

    def labels(self, year_index: int, rows: slice, cols: slice) -> np.ndarray:
        """Raw label ids of a window of the pixel rasters for one year."""
        cover = self.cover[year_index][self.parcel[rows, cols]]
        return np.where((cover < 100) & ~self.border[rows, cols], cover, 0).astype(np.int64)


def check_blocks(blocks: tuple[int, int]) -> tuple[int, int]:
    """Validate ``(ny, nx)``: positive integers, at least two blocks (one is held out for eval)."""
    try:
        ny, nx = (int(b) for b in blocks)
    except (TypeError, ValueError):
        raise UserError(f"blocks {blocks!r}: expected two integers NY NX") from None
    if ny < 1 or nx < 1 or ny * nx < 2:
        raise UserError(f"blocks {ny} {nx}: need positive sizes and at least 2 blocks (one is held out for eval)")
    return ny, nx


def voronoi_cells(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, spacing: float) -> np.ndarray:
    """Index of the nearest seed of a jittered grid (one seed per ``spacing`` square) for every pixel."""
    gy, gx = yy // spacing, xx // spacing
    ny, nx = int(gy.max()) + 3, int(gx.max()) + 3
    seeds = (np.stack(np.mgrid[-1:ny - 1, -1:nx - 1], axis=-1) + rng.uniform(0, 1, (ny, nx, 2))) * spacing
    best = np.full(yy.shape, np.inf)
    cell = np.zeros(yy.shape, dtype=np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            iy, ix = gy + 1 + dy, gx + 1 + dx
            distance = (seeds[iy, ix, 0] - yy) ** 2 + (seeds[iy, ix, 1] - xx) ** 2
            closer = distance < best
            best[closer] = distance[closer]
            cell[closer] = (iy * nx + ix)[closer]
    return cell


def edges(ids: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has a different id (a one-pixel boundary line)."""
    out = np.zeros(ids.shape, dtype=bool)
    out[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    out[:-1, :] |= ids[:-1, :] != ids[1:, :]
    return out


def blobs(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, count: int, radius: tuple[float, float],
          texture: np.ndarray) -> np.ndarray:
    """Blob index (1..count, 0 outside) of ``count`` round shapes with ragged edges at random places."""
    out = np.zeros(yy.shape, dtype=np.int64)
    for k in range(count):
        cy, cx = rng.uniform(0, yy.max()), rng.uniform(0, xx.max())
        r = rng.uniform(*radius)
        out[np.hypot(yy - cy, xx - cx) / r + 0.25 * texture < 1.0] = k + 1
    return out


def strip_fields(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Field index of pixels of one cell: strips 5-14 px wide, cut into fields 18-55 px long, random orientation."""
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    u, v = u - u.min(), v - v.min()
    n = int(u.max() / 6) + 2
    widths = rng.uniform(6, 16, n)
    bounds = np.cumsum(widths) - rng.uniform(0, widths[0])
    strip = np.searchsorted(bounds, u)
    lengths = rng.uniform(25, 75, n + 1)
    offsets = rng.uniform(0, 1, n + 1) * lengths
    along = np.floor((v + offsets[strip]) / lengths[strip]).astype(np.int64)
    return strip * 10_000 + along


def assign_crops(rng: np.random.Generator, area: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Raw crop ids for the crop parcels of one block by pixel quota (every class at least once if possible).

    ``previous`` (last year's crops) keeps permanent crops in place and forbids growing the same crop twice.
    """
    candidates = [c for c in CROPS if previous is None or not c.permanent]
    raws = np.array([c.raw for c in candidates])
    share = np.array([c.support for c in candidates], dtype=float)
    out = np.zeros(len(area), dtype=np.int64)
    rotating = np.ones(len(area), dtype=bool)
    if previous is not None:
        rotating = ~np.isin(previous, [c.raw for c in CROPS if c.permanent])
        out[~rotating] = previous[~rotating]
    target = share / share.sum() * area[rotating].sum()
    assigned = np.zeros(len(candidates))
    coverage = rng.permutation(len(candidates))
    for i, parcel in enumerate(rng.permutation(np.flatnonzero(rotating))):
        score = (target - assigned) * rng.uniform(0.8, 1.2, len(candidates))
        if i < len(candidates):
            score[coverage[i]] = np.inf
        if previous is not None:
            score[raws == previous[parcel]] = -np.inf
        choice = int(np.argmax(score))
        out[parcel] = raws[choice]
        assigned[choice] += area[parcel]
    return out


def make_landscape(rng: np.random.Generator, blocks: tuple[int, int], n_years: int) -> Landscape:
    """Simulate the parcels, land cover and crops of ``n_years`` seasons for ``blocks = (ny, nx)`` blocks."""
    ny, nx = check_blocks(blocks)
    shape = (ny * BLOCK + 2 * MARGIN_PX, nx * BLOCK + 2 * MARGIN_PX)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    block = (np.clip((yy - MARGIN_PX) // BLOCK, 0, ny - 1) * nx + np.clip((xx - MARGIN_PX) // BLOCK, 0, nx - 1))
    cell = np.unique(voronoi_cells(rng, yy, xx, CELL_SPACING) * ny * nx + block, return_inverse=True)[1]
    cell = cell.reshape(shape)
    area_km2 = shape[0] * shape[1] * 1e-4
    ragged = gaussian_field(rng, shape, 8.0)
    forest = gaussian_field(rng, shape, 60.0, beta=4.0)
    forest = forest > np.quantile(forest, 1.0 - FOREST_SHARE)
    conifer = gaussian_field(rng, shape, 15.0, beta=4.0) > -0.3
    village = blobs(rng, yy, xx, max(1, round(area_km2 / 8)), (12, 28), ragged)
    pond = blobs(rng, yy, xx, rng.poisson(area_km2 / 10), (4, 12), ragged)
    road = edges(cell) & (village == 0)

    kind = np.full(shape, CROP, dtype=np.int64)
    sub = cell.copy()
    kind[road] = ROAD
    kind[forest] = np.where(conifer, FOREST_CONIFER, FOREST_DECIDUOUS)[forest]
    settlement = village > 0
    kind[settlement] = GARDEN
    sub[settlement] = ((yy // 3) * shape[1] + xx // 3)[settlement]
    kind[pond > 0] = WATER_BODY
    sub[pond > 0] = pond[pond > 0]
    crop = kind == CROP
    for c in np.unique(cell[crop]):
        pixels = crop & (cell == c)
        sub[pixels] = c * 100_000_000 + strip_fields(rng, yy[pixels], xx[pixels])
    keys = np.unique(np.stack([kind.ravel(), sub.ravel()], axis=1), axis=0, return_inverse=True)[1].ravel()
    parcel = keys.reshape(shape).astype(np.int32)
    n = int(parcel.max()) + 1
    parcel_kind = np.zeros(n, dtype=np.int64)
    parcel_kind[parcel.ravel()] = kind.ravel()
    size = np.bincount(parcel.ravel(), minlength=n)
    parcel_kind[(parcel_kind == CROP) & (size < MIN_FIELD_PX)] = MARGIN
    houses = np.flatnonzero(parcel_kind == GARDEN)
    parcel_kind[houses] = rng.choice([ROOFS, PAVED, GARDEN, FOREST_DECIDUOUS], len(houses), p=[.4, .3, .25, .05])

    border = edges(parcel) & (parcel_kind[parcel] == CROP)
    fields = np.flatnonzero(parcel_kind == CROP)
    field_block = np.zeros(n, dtype=np.int64)
    field_block[parcel.ravel()] = block.ravel()
    labelled = np.bincount(parcel[~border], minlength=n).astype(float)
    cover = np.repeat(parcel_kind[None], n_years + 1, axis=0)
    for y in range(n_years + 1):
        for b in range(ny * nx):
            members = fields[field_block[fields] == b]
            cover[y, members] = assign_crops(rng, labelled[members], None if y == 0 else cover[y - 1, members])
    winter = np.array([CROP_BY_RAW[raw].winter if raw in CROP_BY_RAW else False for raw in range(200)])
    return Landscape(
        parcel=parcel,
        border=border,
        vigour=(1.0 + 0.07 * gaussian_field(rng, shape, 5.0)).astype(np.float32),
        soil=(1.0 + 0.12 * gaussian_field(rng, shape, 120.0, beta=4.0)).astype(np.float32),
        cover=cover[:n_years],
        uniforms=rng.uniform(0, 1, (n_years, n, N_UNIFORMS)).astype(np.float32),
        next_winter=winter[cover[1:]],
        soil_factor=rng.uniform(0.8, 1.2, n).astype(np.float32),
        fold=split(rng, ny, nx),
    )


def split(rng: np.random.Generator, ny: int, nx: int) -> np.ndarray:
    """Partition of the 48 px tiles: -1 for the eval blocks, else the fold 0..9."""
    n_eval = max(1, round(EVAL_SHARE * ny * nx))
    eval_blocks = rng.choice(ny * nx, n_eval, replace=False)
    rows, cols = np.mgrid[0:ny * BLOCK_TILES, 0:nx * BLOCK_TILES]
    block = (rows // BLOCK_TILES) * nx + cols // BLOCK_TILES
    fold = np.full(block.shape, -1, dtype=np.int64)
    rest = np.flatnonzero(~np.isin(block, eval_blocks))
    fold.flat[rng.permutation(rest)] = np.arange(len(rest)) % FOLDS
    return fold
