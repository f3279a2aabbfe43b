"""Crop calendars and land covers: the fraction of each endmember in a parcel on a given day of year.

Every crop follows one template: a winter ground cover ``g0`` (winter crops sown in autumn), green-up (logistic
at ``up``), a maximum green cover ``gmax``, senescence (logistic at ``sen``; green turns into straw), harvest
(``harvest``; stubble, then ploughing), an optional catch crop after early harvests and the emergence of next
season's winter crop in autumn. Special terms: rape flowers (yellow, May), meadow mowing cuts, asparagus ridges
under plastic foil in spring, the dark senescence of beans. Per parcel and year, uniform random numbers ``u``
shift the timing (+-6 days) and harvest (+-10 days) and scale the vigour.

The winter cereals differ by a few days and percent only (as in reality hard to separate), as do summer oat and
summer barley. Non-crop covers (forest, settlement, water, roads, field margins) are static mixtures with a
leaf-on season.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.synthetic.spectra import ASPHALT, DARK, DRY, ENDMEMBERS, FLOWER, FOIL, GREEN, ROOF, SOIL, WATER

NEVER = 999.0  # a date after every day of year
# Random numbers per parcel and year: timing, vigour, harvest date, catch crop or foil type, stubble duration and
# first cut, cut interval, number of cuts.
N_UNIFORMS = 7


@dataclass(frozen=True)
class Crop:
    """One crop class: raw label id, target share and its calendar (days of year)."""

    raw: int
    support: float  # pixels of the class in the paper's evaluation set (ORIGINAL.md §10.1): the target share
    g0: float  # green cover in winter (winter crops)
    up: float  # green-up (logistic centre) and its width
    rup: float
    gmax: float  # green cover at the peak
    sen: float  # senescence (logistic centre) and its width
    rsen: float
    harvest: float
    stubble: float = 0.5  # straw cover right after harvest
    permanent: bool = False  # stays on its parcel every year (no rotation)
    flower: float = 0.0  # peak cover of yellow flowers (rape)
    dark: float = 0.0  # share of the senescent canopy that turns black (beans)
    foil: bool = False  # asparagus ridges under plastic foil in spring
    cuts: bool = False  # mown 3-4 times a year (meadow)

    @property
    def winter(self) -> bool:
        """Sown in the autumn before (green in winter)."""
        return self.g0 > 0 and not self.permanent


CROPS = (
    Crop(1, 153010, 0, 165, 10, .96, NEVER, 10, 285, stubble=.15),  # sugar beet
    Crop(2, 73695, 0, 139, 7, .88, 199, 6, 224),  # summer oat
    Crop(3, 475047, .45, 95, 10, .92, 305, 12, NEVER, permanent=True, cuts=True),  # meadow
    Crop(5, 238215, .50, 78, 8, .90, 174, 6, 201, flower=.6),  # rape
    Crop(8, 103868, 0, 158, 9, .92, NEVER, 10, 238, stubble=.1, permanent=True),  # hop
    Crop(9, 68519, .23, 97, 10, .89, 182, 7, 216),  # winter spelt
    Crop(12, 128810, .24, 93, 9, .92, 177, 6, 207),  # winter triticale
    Crop(13, 55432, 0, 126, 8, .90, 200, 6, 232, dark=.5),  # beans
    Crop(15, 15621, 0, 118, 7, .86, 176, 5, 198),  # peas
    Crop(16, 265914, 0, 160, 8, .88, 217, 5, 245, stubble=.3),  # potatoe
    Crop(17, 46498, 0, 168, 8, .90, 248, 6, 272),  # soybeans
    Crop(19, 39633, 0, 195, 10, .85, 298, 10, NEVER, permanent=True, foil=True),  # asparagus
    Crop(22, 1589217, .24, 95, 9, .93, 180, 6, 214),  # winter wheat
    Crop(23, 512710, .30, 85, 9, .92, 165, 6, 190),  # winter barley
    Crop(24, 72722, .28, 88, 9, .95, 172, 7, 200),  # winter rye
    Crop(25, 163711, 0, 135, 7, .88, 193, 6, 218),  # summer barley
    Crop(26, 1795452, 0, 180, 9, .93, 258, 8, 278, stubble=.35),  # maize
    Crop(6, 90000, 0, 150, 8, .85, 228, 7, 252),  # other crop (raw id not in classes.txt)
)
CROP_BY_RAW = {crop.raw: crop for crop in CROPS}


@dataclass(frozen=True)
class Cover:
    """A non-crop land cover (label 0): endmember fractions ``base + leafon(t) * delta``."""

    code: int
    name: str
    base: dict[int, float]
    delta: dict[int, float]


FOREST_CONIFER, FOREST_DECIDUOUS, ROOFS, PAVED, GARDEN, WATER_BODY, ROAD, MARGIN = range(100, 108)
COVERS = {cover.code: cover for cover in (
    Cover(FOREST_CONIFER, "coniferous forest", {GREEN: .55, DARK: .45}, {}),
    Cover(FOREST_DECIDUOUS, "deciduous forest", {GREEN: .08, DRY: .30, DARK: .35}, {GREEN: .52, DRY: -.25}),
    Cover(ROOFS, "roofs", {ROOF: .75, ASPHALT: .15, DARK: .10}, {}),
    Cover(PAVED, "streets and yards", {ASPHALT: .80, GREEN: .05}, {GREEN: .05}),
    Cover(GARDEN, "gardens", {GREEN: .30, DRY: .15, ROOF: .05}, {GREEN: .35, DRY: -.10}),
    Cover(WATER_BODY, "water", {WATER: .97}, {GREEN: .03}),
    Cover(ROAD, "road with verges", {ASPHALT: .45, GREEN: .10, DRY: .10}, {GREEN: .20, DRY: -.05}),
    Cover(MARGIN, "field margin, hedge", {GREEN: .35, DRY: .20}, {GREEN: .40, DRY: -.15}),
)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def leafon(t: np.ndarray) -> np.ndarray:
    """Leaf-on season of deciduous vegetation: 0 in winter, 1 from mid May to mid October."""
    return sigmoid((t - 118.0) / 6.0) - sigmoid((t - 292.0) / 8.0)


def crop_fractions(crop: Crop, t: np.ndarray, u: np.ndarray, next_winter: np.ndarray) -> np.ndarray:
    """Endmember fractions ``(T, F, E)`` of ``F`` parcels of one crop on days ``t`` ``(T,)`` (soil left 0)."""
    t = t[:, None] - 12.0 * (u[:, 0] - 0.5)
    gmax = crop.gmax * (0.85 + 0.2 * u[:, 1])
    harvest = crop.harvest + 20.0 * (u[:, 2] - 0.5)
    grow = crop.g0 + (gmax - crop.g0) * sigmoid((t - crop.up) / crop.rup)
    senescent = sigmoid((t - crop.sen) / crop.rsen)
    green = grow * (1.0 - senescent)
    dry = 0.9 * grow * senescent
    out = np.zeros((*t.shape, len(ENDMEMBERS)), dtype=np.float32)
    if crop.cuts:
        first, interval = 135.0 + 15.0 * u[:, 4], 38.0 + 10.0 * u[:, 5]
        for k in range(4):
            cut = np.where(k < 3 + (u[:, 6] > 0.5), first + k * interval, NEVER)
            since = np.where(t >= cut, t - cut, NEVER)
            green = green * (1.0 - 0.45 * np.exp(-since / 12.0))
            dry = dry + 0.25 * grow * np.exp(-since / 5.0)
    if crop.flower:
        flowers = crop.flower * (0.8 + 0.4 * u[:, 1]) * np.exp(-(((t - 128.0) / 13.0) ** 2))
        green = green - 0.6 * flowers
        out[..., FLOWER] = flowers
    if crop.foil:
        covered = 0.55 * sigmoid((t - 65.0) / 4.0) * (1.0 - sigmoid((t - 172.0) / 3.0))
        out[..., FOIL] = covered * (u[:, 3] < 0.4)
        out[..., DARK] = covered * ((u[:, 3] >= 0.4) & (u[:, 3] < 0.7))
    since = t - harvest
    after = since >= 0
    stubble = crop.stubble * np.exp(-np.maximum(since, 0) / (12.0 + 25.0 * u[:, 4]))
    catch = 0.65 * sigmoid((since - 30.0) / 7.0) * ((u[:, 3] < 0.35) & (harvest < 235))
    sown = 0.25 * next_winter * sigmoid((t - np.maximum(harvest + 25.0, 280.0)) / 8.0)
    green = np.where(after, catch + sown, green)
    dry = np.where(after, stubble, dry)
    out[..., GREEN] = np.maximum(green, 0.0)
    out[..., DRY] = dry * (1.0 - crop.dark)
    out[..., DARK] += dry * crop.dark
    return out


def cover_fractions(cover: Cover, t: np.ndarray) -> np.ndarray:
    """Endmember fractions ``(T, E)`` of a static land cover on days ``t`` (soil left 0)."""
    out = np.zeros((len(t), len(ENDMEMBERS)), dtype=np.float32)
    season = leafon(t)
    for endmember, value in cover.base.items():
        out[:, endmember] += value
    for endmember, value in cover.delta.items():
        out[:, endmember] += value * season
    return out


def fractions(codes: np.ndarray, u: np.ndarray, next_winter: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Endmember fractions ``(T, F, E)`` of parcels with cover ``codes`` ``(F,)`` (raw crop ids or cover codes).

    ``u`` ``(F, N_UNIFORMS)`` are the parcels' random numbers of the year, ``next_winter`` ``(F,)`` whether a winter
    crop is sown in autumn, ``t`` ``(T,)`` the days of year (shifted by the year's weather). The soil fraction is the
    remainder ``1 - sum`` and is filled in by the renderer.
    """
    out = np.zeros((len(t), len(codes), len(ENDMEMBERS)), dtype=np.float32)
    for code in np.unique(codes):
        chosen = codes == code
        if code in CROP_BY_RAW:
            out[:, chosen] = crop_fractions(CROP_BY_RAW[code], t, u[chosen], next_winter[chosen])
        else:
            out[:, chosen] = cover_fractions(COVERS[int(code)], t)[:, None, :]
    out[..., SOIL] = 0.0
    return out
