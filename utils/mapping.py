"""Maps of whole areas (``predict.py``): the network's class scores over windows of its tile size, blended where
windows overlap, accumulated band of rows by band of rows in constant memory.

**Windows.** The network normalises each tile over all its pixels (layer norm over H, W, C), so it sees windows of
exactly the size it was trained on (``pix10m``). Windows start every ``stride`` px (a multiple of 6, for the 60 m
grid) from the area's top-left corner; the last row and column of windows end at most 5 px beyond the area (or
reach beyond it when the area is smaller than one window), so every pixel is covered.

**Blending.** The scores of a window are weighted by a raised cosine, ``w(i) w(j)`` with ``w(i) = sin²(π (i + ½) /
size)``: never 0 inside a window, small at its borders, where the network sees least context and reflect padding,
and with a stride of half the window the weights of the overlapping windows sum to a constant. A pixel's score is
the weighted mean over the windows that observed it (a window's pixel without any valid date has weight 0); its class
is the arg-max of the blended scores. Pixels no window observed are no data.

**Bands.** Window rows are processed in bands whose height bounds the accumulator (full width, :data:`ACC_BYTES`)
and whose reads are blocks of about :data:`utils.sentinel2.BLOCK_BYTES`. The accumulator holds the rows of the band;
the rows no later window reaches are finished and handed out; the overlap is carried into the next band. The bands
depend only on the area, so a part of the map (``--part K/N``) processes the whole bands its rows need and equals the
same rows of the whole map exactly, and a run resumed after its last finished band equals an uninterrupted one.

**Batches.** Windows are batched ``batchsize`` at a time with their dates padded to a multiple of
:data:`DATE_BUCKET` (the padding is masked); a window's scores depend only on itself and the batch shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from utils.bands import GROUPS
from utils.cli import UserError
from utils.dataset import DAYS_PER_YEAR, DN_SCALE, FIRST_YEAR
from utils.sentinel2 import Area, Block

ACC_BYTES = 256 << 20  # memory of the score accumulator of one band of rows
DATE_BUCKET = 4  # dates of a batch are padded to a multiple of this
ALIGN = 6  # windows start on the 60 m grid


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Starts of the windows of ``size`` px every ``stride`` px that cover ``0..length``; the last one ends at most
    5 px beyond ``length`` (all starts are multiples of 6 when ``stride`` is)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    last = math.ceil((length - size) / ALIGN) * ALIGN
    return starts + [last] if starts[-1] < last else starts


def check_windows(size: int, stride: int) -> None:
    """One-line errors for a window size off the 60 m grid and a stride that is not a multiple of 6 up to it."""
    if size % ALIGN:
        raise UserError(f"window size {size} px (pix10m of the model) is not a multiple of 6 (a 60 m pixel)")
    if stride < ALIGN or stride % ALIGN or stride > size:
        raise UserError(f"--stride {stride}: must be a multiple of 6 between 6 and the window size {size}")


def blend_weights(size: int) -> np.ndarray:
    """(size, size) float32 raised-cosine weights ``w(i) w(j)``, ``w(i) = sin²(π (i + ½) / size)``."""
    w = np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2
    return np.outer(w, w).astype(np.float32)


@dataclass(frozen=True)
class Plan:
    """The windows of an area and their grouping: window ``rows`` and ``cols`` (starts in px), ``bands`` of window
    rows ``(first, stop)`` and ``chunk`` window columns per read."""

    height: int
    width: int
    size: int
    stride: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    bands: tuple[tuple[int, int], ...]
    chunk: int

    @classmethod
    def of(cls, area: Area, size: int, stride: int, num_classes: int) -> Plan:
        """The plan of ``area`` for windows of ``size`` every ``stride`` px (bands within :data:`ACC_BYTES`)."""
        check_windows(size, stride)
        rows = tuple(window_starts(area.height, size, stride))
        cols = tuple(window_starts(area.width, size, stride))
        span = cols[-1] + size
        acc_rows = ACC_BYTES // (span * (num_classes + 1) * 4)
        read_side = area.block_side(ALIGN)
        per_band = max(1, min(acc_rows, read_side) - size) // stride + 1
        height = (per_band - 1) * stride + size
        read_width = max(size, int(read_side * read_side / height))
        chunk = max(1, (read_width - size) // stride + 1)
        bands = tuple((first, min(first + per_band, len(rows))) for first in range(0, len(rows), per_band))
        return cls(area.height, area.width, size, stride, rows, cols, bands, chunk)

    @property
    def span(self) -> int:
        """Width in px of the accumulator (the area and the part of the last windows beyond it)."""
        return self.cols[-1] + self.size

    def band_rows(self, band: int) -> tuple[int, int, int]:
        """``(top, finished, bottom)`` of a band: its accumulator covers rows ``top..bottom``; rows up to
        ``finished`` are final once the band is done (the next band's windows start there)."""
        first, stop = self.bands[band]
        top, bottom = self.rows[first], self.rows[stop - 1] + self.size
        finished = self.rows[stop] if stop < len(self.rows) else bottom
        return top, finished, bottom

    def part_rows(self, part: int, parts: int) -> tuple[int, int]:
        """Rows ``r0..r1`` of the area in part ``part`` (1-based) of ``parts``."""
        return self.height * (part - 1) // parts, self.height * part // parts

    def part_bands(self, r0: int, r1: int) -> range:
        """The bands whose windows reach into rows ``r0..r1``."""
        needed = [band for band in range(len(self.bands))
                  if self.rows[self.bands[band][0]] < r1 and self.band_rows(band)[2] > r0]
        return range(needed[0], needed[-1] + 1)

    @property
    def windows(self) -> int:
        """Number of windows."""
        return len(self.rows) * len(self.cols)


class Accumulator:
    """Weighted score sums ``(rows, span, K)`` and weight sums ``(rows, span)`` of the rows ``top..`` of a band."""

    def __init__(self, top: int, rows: int, span: int, num_classes: int, carry: np.ndarray | None = None):
        self.top = top
        self.data = np.zeros((rows, span, num_classes + 1), np.float32)  # K score sums, then the weight sum
        if carry is not None:
            self.data[:len(carry)] = carry

    def add(self, row: int, col: int, scores: np.ndarray, weights: np.ndarray) -> None:
        """Add a window's ``scores`` (size, size, K) weighted by ``weights`` (size, size) at pixel ``(row, col)``."""
        size = len(weights)
        target = self.data[row - self.top:row - self.top + size, col:col + size]
        target[..., :-1] += scores * weights[..., None]
        target[..., -1] += weights

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The sums of the area rows ``start..stop`` (within the accumulator)."""
        return self.data[start - self.top:stop - self.top]


def blend(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blended scores (…, K) and the observed mask (…) of accumulator sums; unobserved pixels get NaN scores."""
    weight = sums[..., -1]
    observed = weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(observed[..., None], sums[..., :-1] / weight[..., None], np.nan)
    return scores.astype(np.float32), observed


@dataclass
class WindowInput:
    """One window's cleaned series and where it goes: ``(row, col)`` in the area and its blending weights."""

    row: int
    col: int
    block: Block
    weights: np.ndarray

    @property
    def dates(self) -> int:
        return len(self.block.dates)


def band_windows(area: Area, plan: Plan, band: int, base_weights: np.ndarray) -> Iterator[WindowInput]:
    """The windows of a band that observed anything, read chunk by chunk, in row-major order within a chunk."""
    first, stop = plan.bands[band]
    top, _, bottom = plan.band_rows(band)
    size = plan.size
    for c0 in range(0, len(plan.cols), plan.chunk):
        cols = plan.cols[c0:c0 + plan.chunk]
        block = area.read(top, cols[0], bottom - top, cols[-1] + size - cols[0])
        for row in plan.rows[first:stop]:
            for col in cols:
                window = block.window(row - top, col - cols[0], size, size).cleaned()
                if window.dates:
                    weights = base_weights * window.coverage
                    yield WindowInput(row, col, _edge_padded(window, area.height - row, area.width - col), weights)


def _edge_padded(window: Block, rows: int, cols: int) -> Block:
    """The window with its rows and columns beyond the area's ``rows`` × ``cols`` repeating the last ones inside, so
    that the network's tile statistics are not pulled by zeros (their scores get no weight)."""
    size = window.shape[0]
    if rows >= size and cols >= size:
        return window
    arrays = {}
    for group in GROUPS:
        f = group.factor
        inside_rows, inside_cols = min(-(-rows // f), size // f), min(-(-cols // f), size // f)
        values = window.arrays[group.name]
        index_rows = np.minimum(np.arange(values.shape[1]), inside_rows - 1)
        index_cols = np.minimum(np.arange(values.shape[2]), inside_cols - 1)
        arrays[group.name] = values[:, index_rows][:, :, index_cols]
    return Block(arrays, window.valid, window.dates, window.georef)


def batch_arrays(windows: list[WindowInput], batchsize: int, size: int) -> dict[str, np.ndarray]:
    """The network input of up to ``batchsize`` windows, padded to ``batchsize`` windows and to a multiple of
    :data:`DATE_BUCKET` dates (empty windows and padded dates have day of year 0)."""
    steps = max(DATE_BUCKET, math.ceil(max(w.dates for w in windows) / DATE_BUCKET) * DATE_BUCKET)
    batch = {group.name: np.zeros((batchsize, steps, size // group.factor, size // group.factor, len(group.bands)),
                                  np.float32) for group in GROUPS}
    batch["doy"] = np.zeros((batchsize, steps), np.float32)
    batch["year"] = np.zeros((batchsize, steps), np.float32)
    for k, window in enumerate(windows):
        t = window.dates
        for group in GROUPS:
            batch[group.name][k, :t] = window.block.arrays[group.name] * np.float32(DN_SCALE)
        days = np.array([date.timetuple().tm_yday for date in window.block.dates], np.float32)
        batch["doy"][k, :t] = days / np.float32(DAYS_PER_YEAR)
        batch["year"][k, :t] = np.array([date.year for date in window.block.dates], np.float32) - np.float32(FIRST_YEAR)
    return batch


def bucket(window: WindowInput) -> int:
    """The padded number of dates of a window's batch."""
    return max(DATE_BUCKET, math.ceil(window.dates / DATE_BUCKET) * DATE_BUCKET)


def scored_windows(windows: Iterator[WindowInput], forward: Callable[[dict], np.ndarray], batchsize: int,
                   size: int) -> Iterator[tuple[WindowInput, np.ndarray]]:
    """``(window, scores)`` of every window: windows wait per :func:`bucket` until ``batchsize`` of them can run;
    the rest run, padded, at the end."""
    queues: dict[int, list[WindowInput]] = {}
    for window in windows:
        queue = queues.setdefault(bucket(window), [])
        queue.append(window)
        if len(queue) == batchsize:
            yield from zip(queue, forward(batch_arrays(queue, batchsize, size)), strict=False)
            queues[bucket(window)] = []
    for key in sorted(queues):
        if queues[key]:
            yield from zip(queues[key], forward(batch_arrays(queues[key], batchsize, size)), strict=False)


def make_forward(model: tf.keras.Model, strategy: tf.distribute.Strategy) -> Callable[[dict], np.ndarray]:
    """The softmax scores (B, H, W, K) of a batch of numpy arrays, batch norm in inference mode, with the batch
    split over the replicas of ``strategy`` (the batch size must be a multiple of their number)."""
    replicas = strategy.num_replicas_in_sync

    def scores(batch):
        return tf.nn.softmax(tf.cast(model(batch, training=False), tf.float32))

    @tf.function(reduce_retracing=True)
    def step(batch):
        return strategy.run(scores, args=(batch,))

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        share = len(batch["doy"]) // replicas
        values = strategy.experimental_distribute_values_from_function(
            lambda context: {name: tf.constant(array[context.replica_id_in_sync_group * share:
                                                     (context.replica_id_in_sync_group + 1) * share])
                             for name, array in batch.items()})
        return np.concatenate([result.numpy() for result in strategy.experimental_local_results(step(values))])

    return forward
