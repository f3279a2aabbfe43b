"""The simulated world (landscape + one sky per year) and the rendering of a 48 px tile into Sentinel-2 bands."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.bands import GROUPS
from utils.records import Tile
from utils.synthetic.landscape import MARGIN_PX, TILE, Landscape, make_landscape
from utils.synthetic.phenology import fractions
from utils.synthetic.sky import Sky, make_sky
from utils.synthetic.spectra import (
    DARK,
    DRY,
    FLOWER,
    GREEN,
    NOISE_DN,
    NOISE_REL,
    SNOW,
    SOIL,
    WATER,
    surface_reflectance,
    top_of_atmosphere,
)

PSF = (0.1, 0.8, 0.1)  # separable sensor point spread function (10 m pixels)
LANDSCAPE, SKY, NOISE = range(3)  # random streams
DEFAULT_BLOCKS = (2, 2)
DEFAULT_YEARS = (2016, 2017)
DEFAULT_NOBS = 46


@dataclass(frozen=True)
class World:
    """Everything simulated for one seed: the landscape and the acquisitions and weather of every year."""

    seed: int
    years: tuple[int, ...]
    nobs: int
    landscape: Landscape
    skies: dict[int, Sky]

    @property
    def tiles(self) -> tuple[int, int]:
        """Rows and columns of 48 px tiles."""
        return self.landscape.fold.shape


@dataclass(frozen=True)
class Scene:
    """One 48 px tile in one year as simulated, before quantisation and padding.

    ``bands`` ``(T, 48, 48, 13)`` float32 TOA DN of all bands at 10 m (order ``spectra.BANDS``), ``doy`` ``(T,)``,
    ``labels`` ``(48, 48)`` raw ids, ``cover`` ``(48, 48)`` raw crop id or land-cover code, and the ``(T, 48, 48)``
    maps ``cloud`` (opacity), ``shadow`` (share of direct sunlight blocked / 0.8), ``cirrus`` (reflectance of the thin
    ice cloud layer) and ``snow`` (cover fraction).
    """

    year: int
    doy: np.ndarray
    bands: np.ndarray
    labels: np.ndarray
    cover: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray
    cirrus: np.ndarray
    snow: np.ndarray


def make_world(seed: int = 0, blocks: tuple[int, int] = DEFAULT_BLOCKS, years: tuple[int, ...] = DEFAULT_YEARS,
               nobs: int = DEFAULT_NOBS) -> World:
    """Simulate the landscape and skies for ``seed`` (the same seed always gives the same world)."""
    landscape = make_landscape(np.random.default_rng([seed, LANDSCAPE]), blocks, len(years))
    skies = {year: make_sky(np.random.default_rng([seed, SKY, year]), year, landscape.parcel.shape, nobs)
             for year in years}
    return World(seed, tuple(years), nobs, landscape, skies)


def render_tile(world: World, year: int, row: int, col: int, acquisitions: np.ndarray | None = None) -> Scene:
    """Simulate the Sentinel-2 series of the 48 px tile ``(row, col)`` in ``year`` (13 bands at 10 m).

    ``acquisitions``: indices into the year's sky, in date order, among those it has weather for (``sky.dates``); None
    renders those of the tile's orbit zone (its record). The noise depends on the acquisitions rendered together.
    """
    land, sky = world.landscape, world.skies[year]
    y = world.years.index(year)
    if acquisitions is None:
        acquisitions = sky.acquisitions(row, col)
    window = (slice(row * TILE, (row + 1) * TILE + 2 * MARGIN_PX), slice(col * TILE, (col + 1) * TILE + 2 * MARGIN_PX))
    parcels, pixel_parcel = np.unique(land.parcel[window], return_inverse=True)
    pixel_parcel = pixel_parcel.ravel()
    cover = land.cover[y, parcels]
    parts = fractions(cover, land.uniforms[y, parcels], land.next_winter[y, parcels],
                      sky.doy[acquisitions] + sky.shift)[:, pixel_parcel]
    parts[..., [GREEN, DRY, FLOWER]] *= land.vigour[window].reshape(1, -1, 1)
    parts /= np.maximum(parts.sum(axis=-1, keepdims=True), 1.0)
    soil = land.soil[window].ravel() * land.soil_factor[parcels][pixel_parcel]
    parts[..., SOIL] = (1.0 - parts.sum(axis=-1)) * soil * sky.moisture[acquisitions, None]

    yy, xx = np.mgrid[window]
    weather = sky.sample(acquisitions, yy.ravel(), xx.ravel())
    snow = weather["snow"] * (1.0 - 0.6 * (parts[..., GREEN] + parts[..., DARK])) * (1.0 - parts[..., WATER])
    parts *= (1.0 - snow)[..., None]
    parts[..., SNOW] = snow
    toa = top_of_atmosphere(surface_reflectance(parts), sky.aerosol[acquisitions], sky.vapour[acquisitions],
                            weather["cloud"], weather["shadow"], weather["cirrus"],
                            sky.cloud_spectrum[acquisitions])
    size = TILE + 2 * MARGIN_PX
    dn = 1e4 * blur(toa.reshape(len(acquisitions), size, size, -1))
    add_noise(np.random.default_rng([world.seed, NOISE, year, row, col]), dn)

    def inner(a: np.ndarray) -> np.ndarray:
        return a.reshape(-1, size, size)[:, MARGIN_PX:-MARGIN_PX, MARGIN_PX:-MARGIN_PX]

    inside = (slice(window[0].start + MARGIN_PX, window[0].stop - MARGIN_PX),
              slice(window[1].start + MARGIN_PX, window[1].stop - MARGIN_PX))
    return Scene(
        year=year, doy=sky.doy[acquisitions].astype(np.int64), bands=np.maximum(dn, 1.0).astype(np.float32),
        labels=land.labels(y, *inside), cover=land.cover[y][land.parcel[inside]],
        cloud=inner(weather["cloud"]), shadow=inner(weather["shadow"]), cirrus=inner(weather["cirrus"]),
        snow=inner(snow),
    )


def add_noise(rng: np.random.Generator, dn: np.ndarray) -> None:
    """Add sensor noise to ``(T, H, W, 13)`` DN in place, drawn per pixel of each band's native grid (10/20/60 m)."""
    for group in GROUPS:
        bands, k = group.positions, group.factor
        t, h, w, _ = dn.shape
        noise = rng.standard_normal((t, h // k, w // k, len(bands)), dtype=np.float32)
        noise = np.repeat(np.repeat(noise, k, axis=1), k, axis=2)
        dn[..., bands] += noise * (NOISE_DN[bands] + NOISE_REL * dn[..., bands])


def blur(a: np.ndarray) -> np.ndarray:
    """Apply the separable PSF over axes 1 and 2, dropping the 1 px margin: ``(T, H+2, W+2, B) -> (T, H, W, B)``."""
    w0, w1, w2 = PSF
    a = w0 * a[:, :-2] + w1 * a[:, 1:-1] + w2 * a[:, 2:]
    return w0 * a[:, :, :-2] + w1 * a[:, :, 1:-1] + w2 * a[:, :, 2:]


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over ``k x k`` pixel blocks of ``(T, H, W, B)``."""
    t, h, w, b = a.shape
    return a.reshape(t, h // k, k, w // k, k, b).mean(axis=(2, 4), dtype=np.float64)


def to_tile(scene: Scene, rows: slice, cols: slice, nobs: int) -> Tile:
    """The record of a window of a scene: x10 = bands, x20 and x60 = 2x2 and 6x6 block means, zero-padded to nobs."""
    bands = scene.bands[:, rows, cols]
    t, h, w, _ = bands.shape

    def padded(values: np.ndarray) -> np.ndarray:
        out = np.zeros((nobs, *values.shape[1:]), dtype=np.int64)
        out[:t] = np.rint(values)
        return out

    return Tile(
        **{group.name: padded(block_mean(bands[..., group.positions], group.factor)) for group in GROUPS},
        doy=padded(scene.doy),
        year=padded(np.full(t, scene.year)),
        labels=np.broadcast_to(scene.labels[rows, cols], (nobs, h, w)),
    )
