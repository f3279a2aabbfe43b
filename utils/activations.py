"""Per-date activations of the recurrent cell for one tile (ORIGINAL.md §6), computed by the model's own cell code
(:meth:`modelzoo.seqencmodel.SequentialEncoder.trace`), and their output as PNGs, GIFs and ``.npy`` arrays.

Output folder ``<outdir>/sample0/`` (the original's names for the forward direction, ``backward/`` beside it)::

    time{t}_x.png                    RGB of date t (B04 B03 B02, 2-98 % stretch of the tile's clearer dates)
    time{t}/{d}_{gate}.png           channel d of a gate at date t, forward direction
    backward/time{t}/{d}_{gate}.png  the same for the backward direction (t is the same date)
    final_state/{d}.png              channel d of the final state (forward 0..F-1, backward F..2F-1)
    prediction_scores/{k}.png        softmax score of class index k + 1
    ground_truth.png, predictions.png  class maps in the TUM colours
    animations/{d}_{gate}.gif, animations/x.gif, backward/animations/…  the PNGs over time
    arrays/*.npy, backward/arrays/*.npy, dates.csv   the raw values (all channels, valid dates only)

Gate files: LSTM ``iGate jGate fGate oGate state (c) output (h)``; GRU ``rGate uGate candidate output (h)``.
Colour maps as the original: gates in (0, 1) ``inferno`` on 0..1; j, c, h and the candidate ``RdBu_r`` on −1..1
(the original's value/2 + 0.5); final state and scores ``inferno`` on 0..1.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import tensorflow as tf
from PIL import Image

from modelzoo.cells import ConvGRUCell, ConvLSTMCell
from modelzoo.seqencmodel import SequentialEncoder
from utils.cli import UserError
from utils.dataset import Dataset, iterate, read_tileids
from utils.fsio import atomic_dir, atomic_file
from utils.rasters import write_class_png, write_colormapped_png, write_png
from utils.records import read_tile
from utils.series import date_of

CELLS = {"gru": ConvGRUCell, "lstm": ConvLSTMCell}
GATE_FILES = {"i": "iGate", "j": "jGate", "f": "fGate", "o": "oGate", "c": "state", "h": "output",
              "r": "rGate", "u": "uGate", "candidate": "candidate"}
SIGNED = frozenset({"j", "c", "h", "candidate"})  # shown on −1..1 with RdBu_r; the others on 0..1 with inferno
DIRECTION_FOLDERS = {"fw": "", "bw": "backward"}
RGB_CHANNELS = (0, 1, 2)  # x10 bands B04 B03 B02
BLUE = 2
STRETCH_PERCENTILES = (2.0, 98.0)
GIF_FRAME_MS = 500
SAMPLE = "sample0"


@dataclass
class Activations:
    """Everything written for one tile; time axes hold the valid dates only."""

    tileid: int
    layer: int  # the ConvRNN layer of ``gates`` (1 = first)
    dates: list[datetime.date]
    x: np.ndarray  # (L, H, W, C) network input
    gates: dict[str, dict[str, np.ndarray]]  # direction → gate → (L, H, W, F)
    final_state: np.ndarray  # (H, W, D·F·layers)
    scores: np.ndarray  # (H, W, num_classes) softmax
    labels: np.ndarray  # (H, W) class index (0 = unknown)
    predictions: np.ndarray  # (H, W) class index

    @property
    def filters(self) -> int:
        return next(iter(self.gates["fw"].values())).shape[-1]


def load_tile(dataset: Dataset, partition: str, tileid: int | None, fold: int = 0
              ) -> tuple[int, dict[str, np.ndarray], list[datetime.date]]:
    """``(tileid, batch of one, valid dates)``; ``tileid=None`` takes the partition's first tile with a file."""
    if tileid is None:
        tileid = dataset.tile_files(partition, fold)[0][0]
    elif not dataset.split_tileids([tileid])[0]:
        present = dataset.split_tileids(read_tileids(dataset.root, partition, fold))[0]
        examples = ", ".join(map(str, present[:8])) + (", …" if len(present) > 8 else "")
        raise UserError(f"{dataset.config.datadir}: no file for tile {tileid} (tiles of partition {partition}: "
                        f"{examples or 'none'})")
    ((_, path),) = dataset.tile_files(partition, fold, tileids=[tileid])
    batch = next(iterate(dataset.pipeline(partition, fold, batchsize=1, tileids=[tileid], temporal_samples=None)))
    tile = read_tile(path)
    dates = [date_of(year, doy, str(path)) for year, doy in zip(tile.year, tile.doy, strict=True) if doy > 0]
    return tileid, batch, dates


def compute(model: SequentialEncoder, batch: dict[str, np.ndarray], tileid: int, dates: list[datetime.date],
            layer: int = 1) -> Activations:
    """Run the model on a batch of one tile: gates of ConvRNN ``layer``, final state, scores, prediction."""
    encoded = model.encode(batch, training=False)
    length = int(encoded["sequence_lengths"][0])
    if length == 0:
        raise UserError(f"tile {tileid}: no observation (every doy is 0)")
    if length != len(dates):
        raise UserError(f"tile {tileid}: the model sees {length} dates but the record has {len(dates)} with doy > 0")
    traced = model.trace(batch, layer)
    scores = tf.nn.softmax(model(batch, training=False), axis=-1)[0].numpy()
    gates = {direction: {name: value[0, :length].numpy() for name, value in values.items()}
             for direction, values in traced.items()}
    return Activations(tileid=tileid, layer=layer, dates=dates, x=encoded["x"][0, :length].numpy(), gates=gates,
                       final_state=encoded["final_states"][0].numpy(), scores=scores,
                       labels=np.asarray(batch["labels"][0], dtype=np.int64),
                       predictions=np.argmax(scores, axis=-1).astype(np.int64) + 1)


def check_gates(requested: Sequence[str] | None, cell: str) -> list[str]:
    """The gates to write for a ``gru`` or ``lstm`` cell: ``requested`` (model or file names), else all of them."""
    available = CELLS[cell].gate_names
    if requested is None:
        return list(available)
    by_file = {file: name for name, file in GATE_FILES.items()}
    chosen = []
    for gate in requested:
        name = by_file.get(gate, gate)
        if name not in available:
            owners = [f"a Conv{other.upper()} gate" for other, kind in CELLS.items() if name in kind.gate_names]
            raise UserError(f"--gates: {gate!r} is {owners[0] if owners else 'no gate'}; the model's "
                            f"Conv{cell.upper()} cell has {', '.join(available)}")
        chosen.append(name)
    return chosen


def parse_channels(text: str, filters: int) -> list[int]:
    """Channel indices of 0..F−1 from ``"all"`` or a list of indices and ranges such as ``"0-7"`` or ``"0,5,10-12"``."""
    text = text.strip().lower()
    if text == "all":
        return list(range(filters))
    try:
        channels = []
        for part in text.split(","):
            low, _, high = part.partition("-")
            channels += range(int(low), int(high or low) + 1)
    except ValueError:
        raise UserError(f"--channels {text!r}: expected 'all' or indices and ranges like 0,5,10-12") from None
    bad = [c for c in channels if not 0 <= c < filters]
    if bad:
        raise UserError(f"--channels: channel {bad[0]} does not exist (the cell has {filters}, 0..{filters - 1})")
    return sorted(set(channels))


def rgb_stretch(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band 2 and 98 % percentiles of (L, H, W, 3) over the clearer half of the dates (lower median blue), so
    that clouds do not set the range; every date is shown with this one stretch."""
    blue = np.median(rgb[..., BLUE].reshape(len(rgb), -1), axis=1)
    clear = rgb[blue <= np.median(blue)].reshape(-1, 3)
    low, high = np.percentile(clear, STRETCH_PERCENTILES, axis=0)
    return low, np.maximum(high, low + 1e-6)


def to_rgb8(rgb: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(..., 3) values stretched linearly from ``low..high`` to 0..255 uint8 (clipped)."""
    return np.rint(np.clip((rgb - low) / (high - low), 0.0, 1.0) * 255).astype(np.uint8)


def _palette(cmap: str) -> Image.Image:
    """A palette image of the 256 colours of a matplotlib colour map (the only colours its PNGs contain)."""
    palette = Image.new("P", (1, 1))
    palette.putpalette(matplotlib.colormaps[cmap](np.arange(256), bytes=True)[:, :3].ravel().tolist())
    return palette


def _write_gif(path: Path, frames: Sequence[Path], size: tuple[int, int], cmap: str | None = None) -> None:
    """An animated GIF of PNG frames, with the colour map's palette (else one adapted to each frame).

    Frames are converted at the data's ``size`` (H, W) and upscaled again as the PNGs are.
    """
    palette = _palette(cmap) if cmap else None
    images = []
    for frame in frames:
        with Image.open(frame) as image:
            rgb = image.convert("RGB")
        small = rgb.resize(size[::-1], Image.Resampling.NEAREST)
        small = small.quantize(palette=palette, dither=Image.Dither.NONE) if palette else small.quantize(256)
        images.append(small.resize(rgb.size, Image.Resampling.NEAREST))
    with atomic_file(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=GIF_FRAME_MS, loop=0)


def _write_array(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def write(outdir: str | os.PathLike, acts: Activations, gates: Sequence[str], channels: Sequence[int],
          png: bool = True) -> Path:
    """Write ``<outdir>/sample0`` (layout in the module docstring); it appears only when complete."""
    folder = Path(outdir) / SAMPLE
    with atomic_dir(folder) as tmp:
        _write_arrays(tmp, acts)
        if png:
            _write_images(tmp, acts, gates, channels)
    return folder


def _write_arrays(tmp: Path, acts: Activations) -> None:
    for direction, values in acts.gates.items():
        for name, array in values.items():
            _write_array(tmp / DIRECTION_FOLDERS[direction] / "arrays" / f"{GATE_FILES[name]}.npy", array)
    _write_array(tmp / "arrays" / "x.npy", acts.x)
    _write_array(tmp / "arrays" / "final_state.npy", acts.final_state)
    _write_array(tmp / "arrays" / "prediction_scores.npy", acts.scores)
    _write_array(tmp / "arrays" / "ground_truth.npy", acts.labels)
    _write_array(tmp / "arrays" / "predictions.npy", acts.predictions)
    rows = [f"{t},{date:%Y%m%d},{date.timetuple().tm_yday},{date.year}" for t, date in enumerate(acts.dates)]
    (tmp / "dates.csv").write_text("\n".join(["time,date,doy,year", *rows]) + "\n")


def _write_images(tmp: Path, acts: Activations, gates: Sequence[str], channels: Sequence[int]) -> None:
    steps = range(len(acts.dates))
    size = acts.labels.shape
    low, high = rgb_stretch(acts.x[..., RGB_CHANNELS])
    rgb = [write_png(tmp / f"time{t}_x.png", to_rgb8(acts.x[t][..., RGB_CHANNELS], low, high)) for t in steps]
    _write_gif(tmp / "animations" / "x.gif", rgb, size)
    for direction, values in acts.gates.items():
        base = tmp / DIRECTION_FOLDERS[direction]
        for name in gates:
            vmin, cmap = (-1.0, "RdBu_r") if name in SIGNED else (0.0, "inferno")
            for d in channels:
                frames = [write_colormapped_png(base / f"time{t}" / f"{d}_{GATE_FILES[name]}.png",
                                                values[name][t, ..., d], cmap, vmin, 1.0) for t in steps]
                _write_gif(base / "animations" / f"{d}_{GATE_FILES[name]}.gif", frames, size, cmap)
    first = (acts.layer - 1) * len(acts.gates) * acts.filters  # the layer's channels in the concatenated states
    for k in range(len(acts.gates)):
        for d in channels:
            channel = first + k * acts.filters + d
            write_colormapped_png(tmp / "final_state" / f"{channel}.png", acts.final_state[..., channel], "inferno",
                                  0.0, 1.0)
    for k in range(acts.scores.shape[-1]):
        write_colormapped_png(tmp / "prediction_scores" / f"{k}.png", acts.scores[..., k], "inferno", 0.0, 1.0)
    write_class_png(tmp / "ground_truth.png", acts.labels)
    write_class_png(tmp / "predictions.png", acts.predictions)
