"""Sentinel-2 MSI bands: their names, product levels and the three resolution groups of the
records (``x10``, ``x20``, ``x60``, ORIGINAL.md §1.7)."""

from __future__ import annotations

from dataclasses import dataclass

# The 13 bands in the L1C order (the order of a 13-band stack and of the ``band_id`` 0..12 of the product metadata).
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
# Level-2A products have no B10 (the cirrus band is used by the atmospheric correction only).
L2A_MISSING = ("B10",)
LEVELS = ("L1C", "L2A")
# Band order inside the records (ORIGINAL.md §1.7, the third-party loader's order).
X10_BANDS = ("B04", "B03", "B02", "B08")
X20_BANDS = ("B05", "B06", "B07", "B8A", "B11", "B12")
X60_BANDS = ("B01", "B09", "B10")


@dataclass(frozen=True)
class Group:
    """One resolution group of the records: its array name, folder, pixel size factor (in 10 m pixels) and bands."""

    name: str
    folder: str
    factor: int
    bands: tuple[str, ...]

    @property
    def positions(self) -> list[int]:
        """Where the group's bands stand in :data:`BANDS` (the last axis of a 13-band stack)."""
        return [BANDS.index(band) for band in self.bands]


GROUPS = (Group("x10", "10m", 1, X10_BANDS), Group("x20", "20m", 2, X20_BANDS), Group("x60", "60m", 6, X60_BANDS))


def level_bands(level: str) -> tuple[str, ...]:
    """The bands a product of ``level`` (L1C or L2A) holds, in the L1C order."""
    return tuple(band for band in BANDS if level == "L1C" or band not in L2A_MISSING)
