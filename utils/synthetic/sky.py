"""Sentinel-2 acquisitions and the weather on each of them: clouds, shadows, cirrus, haze, water vapour, snow.

Two relative orbits overlap the area: orbit 0 images the west, orbit 1 (3 days later) the east, tiles in the
middle are seen by both. Each orbit is revisited every 10 days by Sentinel-2A and, from June 2017, every 5 days
with Sentinel-2B. Every acquisition day has its own weather: a regime (clear, broken or overcast; cloudier in
winter), cloud fields from a random fractal field thresholded at the day's cloud fraction (soft, semi-transparent
edges), cloud shadows displaced away from the sun by cloud height x tan(sun zenith), thin cirrus on some days
(high B10), haze (path radiance), water vapour (B09) and snow on winter days. Like an archive query with a
granule cloud-cover limit, an acquisition enters the dataset if its granule cloud cover (the area's cloud fraction
seen through the larger granule) is at most ``GRANULE_LIMIT`` (and the 4 clearest of each orbit); a tile whose two
orbits give more than ``nobs`` keeps a random ``nobs`` of them. Clouds, shadows and snow stay in the observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.synthetic.landscape import MARGIN_PX, TILE
from utils.synthetic.noise import bilinear, gaussian_field
from utils.synthetic.spectra import B10, CLOUD

REVISIT = 10
ORBIT_PHASE = (2, 5)  # first Sentinel-2A acquisition (days since 2016-01-01) of orbit 0 and orbit 1
S2B_START = 366 + 151  # 2017-06-01
GRANULE_LIMIT = 0.6
MIN_OBSERVATIONS = 4
CELL = 6  # px per cell of the cloud grids (60 m); clouds are thresholded after upsampling, keeping sharp edges
PAD = 252  # px of cloud grid beyond the area, for shadows of clouds outside it
LATITUDE = 48.4


@dataclass(frozen=True)
class Sky:
    """The acquisitions of one year (arrays over acquisitions) and which of them each 48 px tile gets."""

    doy: np.ndarray  # day of year
    orbit: np.ndarray  # relative orbit 0 (west) or 1 (east)
    satellite: np.ndarray  # "S2A" or "S2B"
    cloudiness: np.ndarray  # cloud fraction of the area
    threshold: np.ndarray  # cloud-field level above which there is cloud
    depth: np.ndarray  # optical depth scale of the clouds
    cloud_spectrum: np.ndarray  # (A, 13) TOA reflectance of thick cloud (with its B10 by cloud top height)
    shadow_offset: np.ndarray  # (A, 2) px from a shaded pixel to the cloud casting the shadow
    cirrus: np.ndarray  # B10 reflectance of the cirrus layer (0: none)
    snow_threshold: np.ndarray  # aux-field level above which there is snow (inf: no snow)
    aerosol: np.ndarray  # path radiance factor
    vapour: np.ndarray  # water vapour 0..1 (B09 absorption)
    moisture: np.ndarray  # soil brightness factor (wet soil is darker)
    grids: np.ndarray  # (A, 2, Hc, Wc) float32: cloud field and aux field (cirrus, snow)
    zone: np.ndarray  # (rows, cols) of 48 px tiles: 0 orbit 0 only, 1 both orbits, 2 orbit 1 only
    dates: tuple[np.ndarray, ...]  # acquisition indices per zone, in date order
    shift: float  # phenology shift of this year's weather (days)

    def acquisitions(self, row: int, col: int) -> np.ndarray:
        """Indices of the acquisitions in the record of the 48 px tile ``(row, col)``, in date order."""
        return self.dates[self.zone[row, col]]

    def sample(self, index: np.ndarray, y: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
        """Cloud opacity, shadow, cirrus (B10 reflectance) and snow cover ``(T, P)`` at pixel coordinates ``(P,)``."""
        a = index[:, None]
        gy, gx = (y + PAD) / np.float32(CELL), (x + PAD) / np.float32(CELL)
        cloud_level = bilinear(self.grids[:, 0], a, gy, gx)
        shaded_level = bilinear(self.grids[:, 0], a, gy + self.shadow_offset[a, 0] / CELL,
                                gx + self.shadow_offset[a, 1] / CELL)
        aux = bilinear(self.grids[:, 1], a, gy, gx)
        return {
            "cloud": self.opacity(a, cloud_level),
            "shadow": self.opacity(a, shaded_level),
            "cirrus": self.cirrus[a] * np.clip(aux + 1.0, 0.0, None) / 2.0,
            "snow": np.clip((aux - self.snow_threshold[a]) / 0.3, 0.0, 1.0),
        }

    def opacity(self, a: np.ndarray, level: np.ndarray) -> np.ndarray:
        return 1.0 - np.exp(-self.depth[a] * np.clip((level - self.threshold[a]) / 0.35, 0.0, None))


def summer(doy: np.ndarray) -> np.ndarray:
    """0 in mid January, 1 in mid July."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * (doy - 15) / 365.25)


def schedule(year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day of year, orbit and satellite of every acquisition over the area in ``year``."""
    start = (np.datetime64(f"{year}-01-01") - np.datetime64("2016-01-01")).astype(int)
    length = (np.datetime64(f"{year + 1}-01-01") - np.datetime64(f"{year}-01-01")).astype(int)
    days, orbits, sats = [], [], []
    for orbit, phase in enumerate(ORBIT_PHASE):
        for sat, offset, first in (("S2A", 0, 0), ("S2B", REVISIT // 2, S2B_START)):
            day = np.arange(phase + offset, start + length, REVISIT)
            day = day[(day >= start) & (day >= first)]
            days.append(day - start + 1)
            orbits.append(np.full(len(day), orbit))
            sats.append(np.full(len(day), sat))
    days, orbits, sats = np.concatenate(days), np.concatenate(orbits), np.concatenate(sats)
    order = np.argsort(days, kind="stable")
    return days[order], orbits[order], sats[order]


def orbit_zones(tile_rows: int, tile_cols: int) -> np.ndarray:
    """Zone of every 48 px tile: swath edges of the two orbits run NNE, tilted like the ground track."""
    rows, cols = np.mgrid[0:tile_rows, 0:tile_cols]
    x, y = (cols + 0.5) * TILE, (rows + 0.5) * TILE
    width, tilt = tile_cols * TILE, 0.2 * (y - tile_rows * TILE / 2)
    west = x < 0.68 * width + tilt
    east = x > 0.36 * width + tilt
    return np.where(west & east, 1, np.where(west, 0, 2))


def make_sky(rng: np.random.Generator, year: int, shape: tuple[int, int], nobs: int) -> Sky:
    """Acquisitions and weather of ``year`` over an area of ``shape`` px (margins included)."""
    doy, orbit, satellite = schedule(year)
    n = len(doy)
    s = summer(doy)
    regime = rng.uniform(0, 1, n)
    clear, overcast = regime < 0.22 + 0.2 * s, regime > 0.55 + 0.2 * s
    cloudiness = np.where(clear, rng.uniform(0, 0.04, n),
                          np.where(overcast, rng.uniform(0.6, 1.0, n), rng.uniform(0.05, 0.6, n)))
    granule = np.clip(cloudiness + rng.normal(0, 0.25, n), 0, 1)
    archived = granule <= GRANULE_LIMIT
    for o in range(len(ORBIT_PHASE)):
        own = np.flatnonzero(orbit == o)
        archived[own[np.argsort(granule[own], kind="stable")[:MIN_OBSERVATIONS]]] = True

    zone = orbit_zones((shape[0] - 2 * MARGIN_PX) // TILE, (shape[1] - 2 * MARGIN_PX) // TILE)
    dates = []
    for orbits in ((0,), (0, 1), (1,)):
        candidates = np.flatnonzero(np.isin(orbit, orbits) & archived)
        dates.append(np.sort(rng.permutation(candidates)[:nobs]))
    used = np.unique(np.concatenate(dates))

    zenith = np.radians(LATITUDE + 4 - 23.44 * np.sin(2 * np.pi * (doy - 81) / 365.25))
    distance = np.minimum(rng.uniform(60, 200, n) * np.tan(zenith), PAD - 2 * CELL)
    high = rng.uniform(0, 1, n) < 0.3
    brightness = rng.uniform(0.75, 1.15, n)
    cloud_spectrum = CLOUD[None, :] * brightness[:, None]
    cloud_spectrum[:, B10] = np.where(high, rng.uniform(0.05, 0.2, n), rng.uniform(0.002, 0.008, n))
    snowy = ((doy < 70) | (doy > 335)) & (rng.uniform(0, 1, n) < 0.4)
    cirrus = np.where(~snowy & (rng.uniform(0, 1, n) < 0.2), rng.uniform(0.005, 0.03, n), 0.0)
    airmass = np.sqrt(np.cos(np.radians(30)) / np.cos(zenith))
    grid_shape = ((shape[0] + 2 * PAD) // CELL + 2, (shape[1] + 2 * PAD) // CELL + 2)
    grids = np.zeros((n, 2, *grid_shape), dtype=np.float32)
    threshold = np.full(n, np.inf)
    snow_threshold = np.full(n, np.inf)
    inside = (slice(PAD // CELL, (shape[0] + PAD) // CELL), slice(PAD // CELL, (shape[1] + PAD) // CELL))
    snow_cover = rng.uniform(0.3, 1.0, n)
    scale = rng.uniform(5, 35, n)
    for a in used:
        grids[a, 0] = gaussian_field(rng, grid_shape, scale[a])
        grids[a, 1] = gaussian_field(rng, grid_shape, 40.0, beta=3.5)
        threshold[a] = np.quantile(grids[a, 0][inside], 1.0 - cloudiness[a])
        if snowy[a]:
            snow_threshold[a] = np.quantile(grids[a, 1][inside], 1.0 - snow_cover[a])
    f32 = np.float32
    return Sky(
        doy=doy, orbit=orbit, satellite=satellite, cloudiness=cloudiness, threshold=threshold.astype(f32),
        depth=rng.uniform(1.5, 8.0, n).astype(f32), cloud_spectrum=cloud_spectrum.astype(f32),
        shadow_offset=np.stack([0.91 * distance, 0.42 * distance], axis=1).astype(f32), cirrus=cirrus.astype(f32),
        snow_threshold=snow_threshold.astype(f32),
        aerosol=(np.clip(rng.lognormal(0, 0.3, n) * (0.8 + 0.4 * s), 0.5, 2.5) * airmass).astype(f32),
        vapour=np.clip(0.3 + 0.5 * s + rng.normal(0, 0.1, n), 0.05, 1.0).astype(f32),
        moisture=rng.uniform(0.75, 1.0, n).astype(f32), grids=grids, zone=zone, dates=tuple(dates),
        shift=float(rng.normal(0, 4)),
    )
