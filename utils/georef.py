"""Georeference of tiles: ``geotransforms.csv`` (ORIGINAL.md §1.5) and the :class:`GeoRef` every raster writer takes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from utils.cli import UserError
from utils.fsio import read_text


@dataclass(frozen=True)
class GeoRef:
    """GDAL geotransform ``(xmin, xres, 0, ymax, 0, -yres)`` and EPSG code of a tile's 10 m grid."""

    transform: tuple[float, float, float, float, float, float]
    epsg: int

    @property
    def origin(self) -> tuple[float, float]:
        """Top-left corner ``(x, y)`` in CRS units."""
        return self.transform[0], self.transform[3]

    def scaled(self, factor: int) -> GeoRef:
        """The same origin with ``factor`` times larger pixels (the 20 m grid is ``scaled(2)``, 60 m ``scaled(6)``)."""
        xmin, xres, rot1, ymax, rot2, yres = self.transform
        return GeoRef((xmin, xres * factor, rot1, ymax, rot2, yres * factor), self.epsg)

    def corner_pixel(self, x: float, y: float, factor: int = 1) -> tuple[int, int] | None:
        """``(row, col)`` of this grid's pixel whose top-left corner is the point ``(x, y)``, or None when the point
        is no pixel corner of the grid whose pixels are ``factor`` times larger (to 0.1 % of a pixel)."""
        xmin, xres, _, ymax, _, yres = self.transform
        row, col = (y - ymax) / yres, (x - xmin) / xres
        if abs(row - round(row)) > 1e-3 or abs(col - round(col)) > 1e-3 or round(row) % factor or round(col) % factor:
            return None
        return round(row), round(col)

    def shifted(self, row: int, col: int) -> GeoRef:
        """The same grid with its top-left corner at pixel ``(row, col)`` (the georeference of a window)."""
        xmin, xres, rot1, ymax, rot2, yres = self.transform
        return GeoRef((xmin + col * xres, xres, rot1, ymax + row * yres, rot2, yres), self.epsg)


def read_geotransforms(path: str | os.PathLike) -> dict[int, GeoRef]:
    """Read ``geotransforms.csv``: no header, rows ``tileid,xmin,xres,0,ymax,0,-yres,srid``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    georefs = {}
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 8:
            raise UserError(f"{path}:{lineno}: expected 8 comma-separated columns, got {len(fields)}")
        try:
            tileid = int(fields[0])
            transform = tuple(float(value) for value in fields[1:7])
            epsg = int(fields[7])
        except ValueError:
            raise UserError(f"{path}:{lineno}: not a number in {line.strip()!r}") from None
        georefs[tileid] = GeoRef(transform, epsg)
    return georefs


def format_geotransform_row(tileid: int, georef: GeoRef) -> str:
    """One line of ``geotransforms.csv`` in the original's layout (integer resolutions and rotations)."""
    xmin, xres, rot1, ymax, rot2, yres = georef.transform

    def number(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else repr(float(value))

    return ",".join([str(tileid), repr(float(xmin)), number(xres), number(rot1), repr(float(ymax)), number(rot2),
                     number(yres), str(georef.epsg)])
