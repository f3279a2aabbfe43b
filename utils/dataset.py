"""A dataset root in the original layout (ORIGINAL.md §1.2): ``dataset.ini``, ``classes.txt``, ``tileids/`` and the
per-tile TFRecord files, read into the tf.data pipeline of docs/DESIGN.md.

``python -m utils.dataset ROOT [--fold K]`` reads every partition of every section and prints a summary.
"""

from __future__ import annotations

import argparse
import configparser
import os
import secrets
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import tensorflow as tf

from utils import records
from utils.classes import read_classes
from utils.cli import ArgumentParser, UserError, run, warn
from utils.fsio import read_text
from utils.labels import describe_ids, id_counts, unlisted_ids
from utils.options import DATADIR_HELP
from utils.synthetic import ensure_default_dataset

INI_KEYS = ("datadir", "pix10", "nobs", "nbands10", "nbands20", "nbands60", "tiletable")
FOLDED_PARTITIONS = ("train", "test")
PARTITIONS = ("train", "test", "eval")
DN_SCALE = 1e-4  # reflectance per digital number
DAYS_PER_YEAR = 365.0  # doy is given to the network as a fraction of the year
FIRST_YEAR = 2016.0  # and the year as years since the first of the original data
_READ_BUFFER = 1 << 20
_RNG = "philox"
_UNREADABLE = "no readable tf.train.Example record (the file is empty, truncated, corrupt or not a TFRecord)"


def add_datadir_argument(parser: argparse.ArgumentParser) -> None:
    """The original's ``--datadir`` flag: a dataset root such as ``data_IJGI18/datasets/full/240``."""
    parser.add_argument("--datadir", default=None, help=DATADIR_HELP)


def normalized(values: Mapping[str, tf.Tensor | np.ndarray]) -> dict[str, tf.Tensor]:
    """The network's inputs from the records' values ``x10``, ``x20``, ``x60``, ``doy``, ``year`` (docs/DESIGN.md
    "Batch dict"): bands in DN × 1e-4, doy / 365 (0 stays 0 on padded dates), year − 2016; float32, same shapes."""
    bands = {key: tf.cast(values[key], tf.float32) * DN_SCALE for key in ("x10", "x20", "x60")}
    return {**bands, "doy": tf.cast(values["doy"], tf.float32) / DAYS_PER_YEAR,
            "year": tf.cast(values["year"], tf.float32) - FIRST_YEAR}


def resolve_datadir(value: str | os.PathLike | None, pix10m: int = 24) -> Path:
    """Return the dataset root to use: ``--datadir``, else ``$datadir``, else the embedded synthetic dataset.

    The synthetic dataset root matching the tile size (``240`` for 24 px, ``480`` for 48 px) is generated
    on first use.
    """
    value = value or os.environ.get("datadir") or None  # noqa: SIM112 (the original's variable name)
    if value is None:
        return ensure_default_dataset(pix10m)
    root = Path(value)
    if not root.is_dir():
        raise UserError(f"{root}: dataset root does not exist")
    if not (root / "dataset.ini").is_file():
        raise UserError(f"{root}: not a dataset root (no dataset.ini)")
    return root


@dataclass(frozen=True)
class SectionConfig:
    """One section ("year") of ``dataset.ini``; ``datadir`` is resolved against the dataset root."""

    name: str
    datadir: Path
    pix10: int
    nobs: int
    nbands10: int
    nbands20: int
    nbands60: int
    tiletable: str

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every stored array of a record (the original's ``calc_expected_shapes``, integer division)."""
        pix, nobs = self.pix10, self.nobs
        return {"x10": (nobs, pix, pix, self.nbands10), "x20": (nobs, pix // 2, pix // 2, self.nbands20),
                "x60": (nobs, pix // 6, pix // 6, self.nbands60), "doy": (nobs,), "year": (nobs,),
                "labels": (nobs, pix, pix)}


_SHAPE_TERMS = {"x10": "nobs, pix10, pix10, nbands10", "x20": "nobs, pix10/2, pix10/2, nbands20",
                "x60": "nobs, pix10/6, pix10/6, nbands60", "doy": "nobs", "year": "nobs",
                "labels": "nobs, pix10, pix10"}


def _read_ini(root: Path) -> tuple[Path, configparser.ConfigParser]:
    path = Path(root) / "dataset.ini"
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_text(path), source=str(path))
    except configparser.Error as err:
        raise UserError(f"{path}: {str(err).splitlines()[0]}") from None
    return path, parser


def _section_config(path: Path, parser: configparser.ConfigParser, section: str) -> SectionConfig:
    if not parser.has_section(section):
        raise UserError(f"{path}: no section [{section}] (sections: {', '.join(parser.sections()) or 'none'})")
    values = parser[section]
    for key in INI_KEYS:
        if key not in values or not values[key].strip():
            raise UserError(f"{path}: section [{section}] has no key '{key}'")
    numbers = {}
    for key in ("pix10", "nobs", "nbands10", "nbands20", "nbands60"):
        try:
            numbers[key] = int(values[key])
        except ValueError:
            raise UserError(f"{path}: section [{section}] key '{key}' = {values[key]!r} is not an integer") from None
        if numbers[key] < 1:
            raise UserError(f"{path}: section [{section}] key '{key}' = {numbers[key]} must be positive")
    return SectionConfig(name=section, datadir=path.parent / values["datadir"].strip(),
                         tiletable=values["tiletable"].strip(), **numbers)


def read_dataset_ini(root: str | os.PathLike) -> dict[str, SectionConfig]:
    """Every section of ``<root>/dataset.ini``, each with all keys the original requires."""
    path, parser = _read_ini(Path(root))
    if not parser.sections():
        raise UserError(f"{path}: no sections")
    return {section: _section_config(path, parser, section) for section in parser.sections()}


def read_section(root: str | os.PathLike, section: str) -> SectionConfig:
    """One section of ``<root>/dataset.ini``."""
    path, parser = _read_ini(Path(root))
    return _section_config(path, parser, section)


def tileids_file(root: str | os.PathLike, partition: str, fold: int = 0) -> Path:
    """``tileids/train_fold<k>.tileids``, ``tileids/test_fold<k>.tileids``, or ``tileids/<partition>.tileids``."""
    name = f"{partition}_fold{fold}" if partition in FOLDED_PARTITIONS else partition.removesuffix(".tileids")
    return Path(root) / "tileids" / f"{name}.tileids"


def read_tileids(root: str | os.PathLike, partition: str, fold: int = 0) -> list[int]:
    """The tile ids of a partition file, in file order (blank lines ignored)."""
    path = tileids_file(root, partition, fold)
    if not path.is_file():
        present = sorted(p.stem for p in path.parent.glob("*.tileids"))
        raise UserError(f"{path}: no such file (partitions in {path.parent}: {', '.join(present) or 'none'})")
    ids = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ids.append(int(line))
        except ValueError:
            raise UserError(f"{path}:{lineno}: tile id {line.strip()!r} is not an integer") from None
    if not ids:
        raise UserError(f"{path}: no tile ids")
    return ids


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn a bad-record error raised while iterating a pipeline into a one-line :class:`UserError` naming the file.

    Use it around every loop over (or ``fit``/``predict`` on) a :meth:`Dataset.pipeline`.
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        message = records.data_error_message(err)
        if message is None:
            raise
        raise UserError(message) from None


def iterate(dataset: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
    """Yield a pipeline's batches as numpy dicts, with :func:`translate_errors`."""
    with translate_errors():
        yield from dataset.as_numpy_iterator()


class Dataset:
    """One section of a dataset root: its config, classes, tile files and the tf.data pipeline."""

    def __init__(self, root: str | os.PathLike, section: str = "2016", temporal_samples: int | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: dataset root does not exist")
        self.config = read_section(self.root, section)
        self.classes = read_classes(self.root)
        self.temporal_samples = self._checked_samples(temporal_samples)
        self._reported: set[str] = set()

    def _checked_samples(self, temporal_samples: int | None) -> int | None:
        nobs = self.config.nobs
        if temporal_samples is not None and not 1 <= temporal_samples <= nobs:
            raise UserError(f"{self.root / 'dataset.ini'}: temporal_samples = {temporal_samples} must lie in "
                            f"1..nobs = {nobs} of section [{self.config.name}]")
        return temporal_samples

    @cached_property
    def _files(self) -> dict[int, Path]:
        datadir = self.config.datadir
        if not datadir.is_dir():
            raise UserError(f"{datadir}: data folder of section [{self.config.name}] does not exist")
        files: dict[int, Path] = {}
        for entry in os.scandir(datadir):
            match = records.TILE_FILE.fullmatch(entry.name)
            if match is None:
                continue
            tileid = int(match.group(1))
            if tileid in files:
                raise UserError(f"{datadir}: tile {tileid} is stored twice ({files[tileid].name}, {entry.name})")
            files[tileid] = Path(entry.path)
        return files

    def stored_tiles(self) -> list[tuple[int, Path]]:
        """``(tileid, file)`` of every tile file of the section's data folder, sorted by id."""
        return sorted(self._files.items())

    def split_tileids(self, tileids: Iterable[int]) -> tuple[list[int], list[int]]:
        """(ids with a file, ids without) among ``tileids``, each sorted and without duplicates."""
        ids = sorted({int(tileid) for tileid in tileids})
        return [i for i in ids if i in self._files], [i for i in ids if i not in self._files]

    def tile_files(self, partition: str, fold: int = 0, tileids: Iterable[int] | None = None) -> list[tuple[int, Path]]:
        """``(tileid, file)`` of the partition's ids (or of ``tileids``) that have a file, sorted by id.

        Ids without a file are counted and reported once on stderr; none with a file is an error.
        """
        if tileids is None:
            source = str(tileids_file(self.root, partition, fold))
            tileids = read_tileids(self.root, partition, fold)
        else:
            source = f"the tile ids given for {partition}"
        present, missing = self.split_tileids(tileids)
        total = len(present) + len(missing)
        if not present:
            raise UserError(f"{source}: none of its {total} tile ids has a file in {self.config.datadir}")
        if missing and source not in self._reported:
            self._reported.add(source)
            print(f"{len(missing)} of {total} tile ids in {source} have no file in {self.config.datadir}/",
                  file=sys.stderr)
        return [(tileid, self._files[tileid]) for tileid in present]

    def pipeline(self, partition: str, fold: int = 0, batchsize: int = 4, shuffle: bool = False,
                 seed: int | None = None, repeat: bool = False, temporal_samples: int | None | str = "default",
                 augment: bool = False, limit_batches: int = -1, tileids: Iterable[int] | None = None,
                 drop_remainder: bool = False, prefetch: int | None = tf.data.AUTOTUNE,
                 raw_labels: bool = False, skip: int = 0) -> tf.data.Dataset:
        """The batched tf.data pipeline of a partition, yielding the batch dict of docs/DESIGN.md.

        ``shuffle`` reshuffles the file order every epoch; ``seed`` fixes the file orders, temporal samples and
        symmetries (None: a fresh random seed). ``temporal_samples`` ("default": the constructor's value) keeps a
        sorted random subset of the ``nobs`` steps. ``augment`` applies a random one of the 8 symmetries of the
        square to each tile. ``limit_batches > 0`` keeps the first ``limit_batches * batchsize`` files.
        ``raw_labels`` yields the raw class ids of the records (int64) instead of class indices. ``skip`` leaves out
        the first ``skip`` tiles of the stream (a resumed training continues where it stopped: the draws are keyed
        by epoch and file, so the rest is the same; whole epochs are skipped without reading). Iterate it through
        :func:`iterate` or :func:`translate_errors` so that bad records become one-line errors.
        """
        if batchsize < 1:
            raise UserError(f"batchsize = {batchsize} must be at least 1")
        samples = self.temporal_samples if temporal_samples == "default" else self._checked_samples(temporal_samples)
        files = self.tile_files(partition, fold, tileids)
        if limit_batches > 0:
            files = files[:limit_batches * batchsize]
        seed = secrets.randbits(63) if seed is None else seed
        shuffle_key, sample_key, symmetry_key = tf.unstack(
            tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), num=3, alg=_RNG))
        paths = tf.constant([str(path) for _, path in files])
        compressions = tf.constant([records.compression_of(path) for _, path in files])
        tileid_of = tf.constant([tileid for tileid, _ in files], tf.int64)
        num_files = len(files)

        @tf.autograph.experimental.do_not_convert
        def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
            order = tf.range(num_files, dtype=tf.int64)
            if shuffle:
                order = tf.random.experimental.stateless_shuffle(order, seed=_fold_in(shuffle_key, epoch), alg=_RNG)
            return tf.data.Dataset.from_tensor_slices((order, tf.fill([num_files], epoch)))

        @tf.autograph.experimental.do_not_convert
        def read(index: tf.Tensor, epoch: tf.Tensor) -> tf.data.Dataset:
            # One record per file; read errors end in the "unreadable" sentinel so that the file name reaches
            # the error message (see process), instead of an anonymous DataLossError.
            file = tf.data.TFRecordDataset(paths[index], compression_type=compressions[index],
                                           buffer_size=_READ_BUFFER)
            good = file.take(1).map(lambda serialized: (records.parse_features(serialized), True)).ignore_errors()
            empty = {key: tf.zeros([0], spec.dtype) for key, spec in records.FEATURE_SPEC.items()}
            return good.concatenate(tf.data.Dataset.from_tensors((empty, False))).take(1).map(
                lambda features, readable: (index, epoch, features, readable))

        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.classes.ids, tf.int64),
                                                tf.range(len(self.classes.ids), dtype=tf.int32)),
            default_value=0)

        @tf.autograph.experimental.do_not_convert
        def process(index, epoch, features, readable) -> dict[str, tf.Tensor]:
            path = paths[index]
            with tf.control_dependencies([records.check(readable, path, _UNREADABLE)]):
                arrays = self._checked_arrays(records.decode_features(features, path), path)
            element = epoch * num_files + index  # keys the random draws: independent of parallelism
            if samples is not None:
                arrays = _temporal_sample(arrays, samples, _fold_in(sample_key, element))
            batch = normalized(arrays)
            batch["labels"] = arrays["labels"][0] if raw_labels else table.lookup(arrays["labels"][0])
            if augment:
                batch = _random_symmetry(batch, _fold_in(symmetry_key, element))
            batch["tileid"] = tileid_of[index]
            return batch

        first_epoch, first_index = divmod(skip, max(num_files, 1))
        epochs = tf.data.Dataset.counter(first_epoch) if repeat else tf.data.Dataset.range(first_epoch, 1)
        dataset = epochs.flat_map(epoch_order).skip(first_index)
        dataset = dataset.interleave(read, cycle_length=tf.data.AUTOTUNE, num_parallel_calls=tf.data.AUTOTUNE,
                                     deterministic=True)
        dataset = dataset.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(batchsize, drop_remainder=drop_remainder)
        return dataset.prefetch(prefetch) if prefetch else dataset

    def _checked_arrays(self, arrays: dict[str, tf.Tensor], path: tf.Tensor) -> dict[str, tf.Tensor]:
        """Assert that every array has the shape dataset.ini implies; set those static shapes."""
        checked = {}
        for name, expected in self.config.shapes.items():
            shape = tf.shape(arrays[name], out_type=tf.int64)
            match = records.check(tf.reduce_all(tf.equal(shape, expected)), path, f"{name} has shape ", shape,
                                  f" but section [{self.config.name}] of dataset.ini expects {list(expected)} "
                                  f"({_SHAPE_TERMS[name]})")
            with tf.control_dependencies([match]):
                checked[name] = tf.ensure_shape(arrays[name], expected)
        return checked


def _fold_in(key: tf.Tensor, data: tf.Tensor) -> tf.Tensor:
    """A stateless RNG key derived from ``key`` and the integer ``data``."""
    return tf.random.experimental.stateless_fold_in(key, data, alg=_RNG)


def _temporal_sample(arrays: dict[str, tf.Tensor], samples: int, key: tf.Tensor) -> dict[str, tf.Tensor]:
    """Keep a sorted random subset of ``samples`` time steps (ORIGINAL.md §1.9); labels keep all steps."""
    nobs = arrays["doy"].shape[0]
    steps = tf.random.experimental.stateless_shuffle(tf.range(nobs), seed=key, alg=_RNG)[:samples]
    steps = tf.sort(steps)
    return {name: value if name == "labels" else tf.gather(value, steps) for name, value in arrays.items()}


def _random_symmetry(batch: dict[str, tf.Tensor], key: tf.Tensor) -> dict[str, tf.Tensor]:
    """Apply one of the 8 symmetries of the square, uniformly drawn, to x10/x20/x60/labels alike: reverse the height
    axis, the width axis, and swap the two (tiles are square), each with p = 0.5."""
    draws = tf.random.stateless_uniform([3], seed=key, alg=_RNG) < 0.5
    out = dict(batch)
    for name in ("x10", "x20", "x60", "labels"):
        height = 0 if name == "labels" else 1  # labels are (H, W), the bands (T, H, W, C)
        value = out[name]
        value = tf.cond(draws[0], lambda v=value, a=height: tf.reverse(v, [a]), lambda v=value: v)
        value = tf.cond(draws[1], lambda v=value, a=height + 1: tf.reverse(v, [a]), lambda v=value: v)
        swapped = list(range(value.shape.rank))
        swapped[height], swapped[height + 1] = height + 1, height
        out[name] = tf.cond(draws[2], lambda v=value, p=swapped: tf.transpose(v, p), lambda v=value: v)
    return out


def summarize(root: str | os.PathLike, fold: int = 0, batchsize: int = 32) -> str:
    """Read every partition of every section through the pipeline; return the summary printed by the CLI. A section
    whose data folder is missing is reported as such; raw label ids missing from ``classes.txt`` get a warning."""
    sections = read_dataset_ini(root)
    classes = read_classes(root)
    partitions = {tileids_file(root, p, fold).stem: read_tileids(root, p, fold)
                  for p in PARTITIONS if tileids_file(root, p, fold).is_file()}
    if not partitions:
        raise UserError(f"{Path(root) / 'tileids'}: no train/test (fold {fold}) or eval partition files")
    lines = [f"dataset {root}: {classes.num_classes} classes + unknown, sections {', '.join(sections)}, "
             f"fold {fold}"]
    for name, config in sections.items():
        lines += ["", f"[{name}] datadir {config.datadir.name}/, pix10 {config.pix10}, nobs {config.nobs}, "
                      f"bands {config.nbands10}/{config.nbands20}/{config.nbands60}"]
        if not config.datadir.is_dir():
            lines.append(f"  no data: the data folder {config.datadir} does not exist")
            continue
        dataset = Dataset(root, name)
        lines.append(f"  {'partition':<14}{'tiles':>7}{'missing':>9}   observations per tile min / mean / max")
        split = {label: dataset.split_tileids(ids) for label, ids in partitions.items()}
        tileids = sorted(set().union(*(present for present, _ in split.values())))
        observations, raw_counts = {}, Counter()
        if tileids:
            pipeline = dataset.pipeline("all partitions", tileids=tileids, batchsize=batchsize, temporal_samples=None,
                                        raw_labels=True)
            for batch in iterate(pipeline):
                for tileid, doy in zip(batch["tileid"], batch["doy"], strict=True):
                    observations[tileid] = int((doy > 0).sum())
                raw_counts += id_counts(batch["labels"])
        for label, (present, missing) in split.items():
            counts = [observations[tileid] for tileid in present]
            spread = f"{min(counts):>3} / {np.mean(counts):.1f} / {max(counts)}" if counts else "  -"
            lines.append(f"  {label:<14}{len(present):>7}{len(missing):>9}   {spread}")
        histogram = np.zeros(len(classes.ids), np.int64)
        for raw, pixels in raw_counts.items():
            histogram[classes.to_index(raw)] += pixels
        total = max(int(histogram.sum()), 1)
        lines.append(f"  class histogram of the {len(tileids)} tiles of all partitions:")
        lines.append(f"  {'index':>5} {'raw':>4}  {'class':<20}{'pixels':>12}{'share':>9}")
        for index, (raw, class_name, pixels) in enumerate(zip(classes.ids, classes.names, histogram, strict=True)):
            lines.append(f"  {index:>5} {raw:>4}  {class_name:<20}{pixels:>12}{100 * pixels / total:>8.2f}%")
        unknown = unlisted_ids(raw_counts, classes.ids)
        if unknown:
            labelled = sum(n for i, n in raw_counts.items() if i != 0)
            warn(f"{Path(root) / 'classes.txt'}: label ids of section [{name}] that it does not list count as "
                 f"unknown (index 0): {describe_ids(unknown, labelled)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m utils.dataset [ROOT] [--fold K]``."""
    parser = ArgumentParser(prog="python -m utils.dataset",
                                     description="Read every partition of every section of a dataset root and print "
                                                 "tiles per partition, class histogram and observation counts.")
    parser.add_argument("root", nargs="?", help="dataset root with dataset.ini, classes.txt, tileids/ and the data "
                                                "folders (default: $datadir, else the synthetic 24 px root, generated "
                                                "on first use)")
    parser.add_argument("--fold", type=int, default=0, help="fold of the train/test partitions (default 0)")
    args = parser.parse_args(argv)
    print(summarize(resolve_datadir(args.root), args.fold))


if __name__ == "__main__":
    run(main)
