"""The observations of one tile as arrays (:class:`Series`), its conversion to and from a record, and the dates of
the records (day of year + year) against calendar dates and ``YYYYMMDD`` file names."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np

from utils.cli import UserError
from utils.georef import GeoRef
from utils.records import Tile


def date_of(year: int, doy: int, source: str) -> datetime.date:
    """The calendar date of ``doy`` (1..366) in ``year``; a :class:`UserError` naming ``source`` if there is none."""
    try:
        date = datetime.date(int(year), 1, 1) + datetime.timedelta(days=int(doy) - 1) if doy >= 1 else None
    except (ValueError, OverflowError):
        date = None
    if date is None or date.year != year:
        raise UserError(f"{source}: day of year {doy} of year {year} is not a date")
    return date


def doy_and_year(date: datetime.date) -> tuple[int, int]:
    """``(day of year, year)`` of a date, as the records store it."""
    return date.timetuple().tm_yday, date.year


def date_stems(dates: list[datetime.date]) -> list[str]:
    """File stems ``YYYYMMDD`` of the dates; repeated days get ``_1``, ``_2`` … in order."""
    seen: dict[datetime.date, int] = {}
    stems = []
    for date in dates:
        count = seen.get(date, 0)
        seen[date] = count + 1
        stems.append(date.strftime("%Y%m%d") + (f"_{count}" if count else ""))
    return stems


def parse_date(text: str, source: str | os.PathLike) -> datetime.date:
    """A ``YYYYMMDD`` string as a date; a :class:`UserError` naming ``source`` if it is none."""
    try:
        return datetime.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise UserError(f"{source}: {text!r} is not a date YYYYMMDD") from None


@dataclass
class Series:
    """The observations of one tile, without padding: ``x10 (T,H,W,4)``, ``x20 (T,H/2,W/2,6)``,
    ``x60 (T,H/6,W/6,3)`` int64 DN, their ``dates``, the raw class ids ``labels (H,W)`` and the 10 m ``georef``."""

    x10: np.ndarray
    x20: np.ndarray
    x60: np.ndarray
    dates: list[datetime.date]
    labels: np.ndarray
    georef: GeoRef | None

    @classmethod
    def from_tile(cls, tile: Tile, georef: GeoRef | None, source: str) -> Series:
        """The valid dates (``doy > 0``) of a record; the labels of its first step."""
        keep = tile.doy > 0
        dates = [date_of(year, doy, source) for year, doy in zip(tile.year[keep], tile.doy[keep], strict=True)]
        return cls(tile.x10[keep], tile.x20[keep], tile.x60[keep], dates, np.asarray(tile.labels[0]), georef)

    def to_tile(self, nobs: int, source: str) -> Tile:
        """The record: every array zero-padded at the end to ``nobs`` steps, the labels repeated over all steps."""
        count = len(self.dates)
        if count > nobs:
            raise UserError(f"{source}: {count} dates do not fit into nobs = {nobs} (raise --nobs)")
        doy, year = np.array([doy_and_year(date) for date in self.dates], dtype=np.int64).reshape(-1, 2).T

        def padded(values: np.ndarray) -> np.ndarray:
            out = np.zeros((nobs, *values.shape[1:]), dtype=np.int64)
            out[:count] = values
            return out

        height, width = self.labels.shape
        return Tile(x10=padded(self.x10), x20=padded(self.x20), x60=padded(self.x60), doy=padded(doy),
                    year=padded(year), labels=np.broadcast_to(self.labels.astype(np.int64), (nobs, height, width)))
