"""Endmember spectra and the top-of-atmosphere (L1C) signal model of the simulator.

All 13 bands are simulated at 10 m in the order of :data:`utils.bands.BANDS`. Surface reflectance is a linear
mixture of the endmembers below; the TOA reflectance adds path radiance (aerosol scattering, strongest in B01/B02),
multiplies the surface term by a transmittance (water vapour absorption in B09, near-total absorption in the B10
cirrus band), and blends in clouds, cloud shadows and cirrus. Values are reflectance; DN = reflectance x 10000.
"""

from __future__ import annotations

import numpy as np

from utils.bands import BANDS

# Endmembers (columns of the abundance arrays).
GREEN, DRY, SOIL, FLOWER, WATER, ASPHALT, ROOF, FOIL, DARK, SNOW = range(10)
ENDMEMBERS = ("green vegetation", "senescent vegetation", "soil", "rape flowers", "water", "asphalt",
              "roof tiles", "white plastic foil", "dark (canopy shadow, black foil)", "snow")
# Surface reflectance per endmember (rows) and band (columns):
#     B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09   B10   B11   B12
SPECTRA = np.array([
    [.020, .028, .062, .026, .090, .290, .390, .420, .440, .430, .300, .180, .075],  # green vegetation
    [.070, .090, .140, .190, .240, .280, .310, .330, .350, .360, .300, .390, .290],  # senescent vegetation, straw
    [.060, .080, .120, .160, .190, .210, .230, .250, .260, .270, .300, .340, .290],  # loamy soil (dry)
    [.030, .040, .230, .210, .250, .370, .420, .440, .450, .440, .300, .240, .110],  # yellow rape flowers
    [.050, .045, .050, .030, .025, .015, .012, .010, .009, .008, .000, .004, .002],  # water
    [.080, .090, .100, .110, .120, .130, .140, .150, .155, .160, .200, .180, .170],  # asphalt, concrete
    [.050, .060, .090, .200, .260, .290, .310, .320, .330, .330, .300, .400, .340],  # red roof tiles
    [.550, .560, .570, .570, .570, .570, .570, .570, .570, .560, .500, .520, .480],  # white plastic foil
    [.015, .015, .020, .015, .020, .030, .035, .040, .040, .040, .040, .030, .020],  # shadow, black foil
    [.900, .900, .880, .850, .830, .800, .780, .750, .720, .600, .300, .080, .060],  # snow
], dtype=np.float32)

# Atmosphere: path reflectance at aerosol factor 1, and two-way transmittance of the surface signal.
PATH = np.array([.090, .058, .022, .012, .010, .007, .006, .005, .004, .002, .001, .001, .0005], dtype=np.float32)
TRANSMITTANCE = np.array([.78, .82, .88, .91, .92, .93, .94, .94, .95, .40, .0015, .93, .90], dtype=np.float32)
B09, B10 = BANDS.index("B09"), BANDS.index("B10")
# Thick water cloud (TOA reflectance at brightness 1); B10 is set per cloud from its top height.
CLOUD = np.array([.42, .40, .38, .37, .37, .38, .39, .38, .39, .20, .00, .33, .25], dtype=np.float32)
# Sensor noise at each band's native resolution: standard deviation in DN = NOISE_DN + NOISE_REL x signal.
NOISE_DN = np.array([6, 5, 4, 4, 4, 4, 4, 4, 4, 4, 1, 3, 3], dtype=np.float32)
NOISE_REL = 0.004


def surface_reflectance(abundances: np.ndarray) -> np.ndarray:
    """Linear mixture: abundances ``(..., endmembers)`` -> reflectance ``(..., 13 bands)``."""
    return abundances @ SPECTRA


def top_of_atmosphere(surface: np.ndarray, aerosol: np.ndarray, vapour: np.ndarray, cloud: np.ndarray,
                      shadow: np.ndarray, cirrus: np.ndarray, cloud_spectrum: np.ndarray) -> np.ndarray:
    """TOA reflectance ``(T, P, 13)`` from surface reflectance ``(T, P, 13)``.

    ``aerosol`` and ``vapour`` ``(T,)`` scale the path reflectance and the B09 absorption; ``cloud`` (opacity),
    ``shadow`` (fraction of direct light blocked) and ``cirrus`` (B10 reflectance of thin ice cloud) are ``(T, P)``;
    ``cloud_spectrum`` ``(T, 13)`` is the per-date cloud brightness and B10 signal.
    """
    transmittance = np.broadcast_to(TRANSMITTANCE, (len(vapour), len(BANDS))).copy()
    transmittance[:, B09] = 0.62 - 0.4 * vapour
    toa = surface * transmittance[:, None, :]
    toa *= (1.0 - 0.8 * shadow)[..., None]
    toa += (aerosol[:, None] * PATH)[:, None, :]
    toa *= (1.0 - cloud)[..., None]
    toa += cloud[..., None] * cloud_spectrum[:, None, :]
    flat = np.ones(len(BANDS), dtype=np.float32)
    flat[B09] = 0.5
    toa += cirrus[..., None] * flat
    return toa
