"""A model folder: ``params.ini`` plus checkpoints in the original's name-based TF1 checkpoint format.

This project writes its checkpoints exactly as the original TF1 ``Saver`` did: ``model.ckpt-<step>.index`` and
``model.ckpt-<step>.data-00000-of-00001`` keyed by the original variable names
(``convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel``, ``class/bn/moving_mean``, ``<name>/Adam``,
``<name>/Adam_1``, ``beta1_power``, ``beta2_power``, ``global_step``, ``samples_seen``), plus the ``checkpoint``
state file. So there is one format: the released TF1 models load directly, and our checkpoints can be inspected
with the original's tools. Names come from :meth:`modelzoo.seqencmodel.SequentialEncoder.named_variables`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from modelzoo.params import ModelParams, read_params_ini
from modelzoo.seqencmodel import SequentialEncoder, build_model
from utils.cli import UserError
from utils.fsio import atomic_file

PARAMS_FILE = "params.ini"
CHECKPOINT_BASENAME = "model.ckpt"
STATE_FILE = "checkpoint"
COUNTERS = ("global_step", "samples_seen")
ADAM_SLOTS = ("Adam", "Adam_1")  # TF1 names of Adam's first and second moment slots
BETA_POWERS = ("beta1_power", "beta2_power")


def checkpoint_exists(prefix: str | os.PathLike) -> bool:
    """Whether ``prefix`` names a complete checkpoint (its ``.index`` file exists)."""
    return Path(f"{prefix}.index").is_file()


class ModelFolder:
    """A folder with ``params.ini`` (section ``[flags]``, as written by ``modelzoo/seqencmodel.py`` or the original)
    and zero or more checkpoints. ``path`` may also name the folder's ``graph.meta`` or ``params.ini`` (the
    original's ``init_graph.py`` took ``<folder>/graph.meta``)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.name in ("graph.meta", PARAMS_FILE) and not path.is_dir():
            path = path.parent
        if not path.is_dir():
            raise UserError(f"{path}: model folder does not exist (create it with modelzoo/seqencmodel.py)")
        if not (path / PARAMS_FILE).is_file():
            raise UserError(f"{path}: no {PARAMS_FILE} in the model folder (create it with modelzoo/seqencmodel.py)")
        self.path = path
        self.params: ModelParams = read_params_ini(path / PARAMS_FILE)

    def build_model(self) -> SequentialEncoder:
        """A freshly initialised network configured by ``params.ini``."""
        return build_model(self.params)

    def checkpoint_prefix(self, step: int) -> Path:
        """The path prefix of the checkpoint of ``step``: ``<folder>/model.ckpt-<step>``."""
        return self.path / f"{CHECKPOINT_BASENAME}-{step}"

    def latest_checkpoint(self) -> str | None:
        """The newest complete checkpoint named by the ``checkpoint`` state file, or ``None``."""
        latest = tf.train.latest_checkpoint(str(self.path))
        return latest if latest and checkpoint_exists(latest) else None

    def checkpoint(self, name: str | None = None, required: bool = True) -> str | None:
        """Resolve a checkpoint: ``name`` (e.g. ``model.ckpt-13824``, relative to the folder) or else the latest.

        With ``required`` a missing checkpoint is a :class:`UserError`; otherwise ``None`` is returned.
        """
        if name is not None:
            prefix = Path(name) if Path(name).is_absolute() else self.path / name
            if not checkpoint_exists(prefix):
                raise UserError(f"{prefix}: no such checkpoint (no {prefix.name}.index)")
            return str(prefix)
        latest = self.latest_checkpoint()
        if latest is None and required:
            raise UserError(f"{self.path}: no checkpoint in the model folder (run init_graph.py or train.py first)")
        return latest


def read_checkpoint(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every variable of a name-based checkpoint as ``{name: array}`` (TF1 or this project's)."""
    reader = _reader(prefix)
    return {name: reader.get_tensor(name) for name in sorted(reader.get_variable_to_shape_map())}


def checkpoint_shapes(prefix: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of a name-based checkpoint, without reading the values."""
    return {name: tuple(shape) for name, shape in _reader(prefix).get_variable_to_shape_map().items()}


def _reader(prefix: str | os.PathLike):
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as err:
        message = getattr(err, "message", str(err)).splitlines()[0]
        raise UserError(f"{prefix}: unreadable checkpoint ({message})") from None
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in reader.get_variable_to_shape_map():
        raise UserError(f"{prefix}: an object-based TF2 checkpoint; expected a name-based MTLCC checkpoint")
    return reader


def write_checkpoint(prefix: str | os.PathLike, tensors: dict[str, np.ndarray | tf.Tensor]) -> None:
    """Write ``{name: value}`` as a name-based checkpoint at ``prefix``; its files appear only when complete."""
    prefix = Path(prefix)
    tmp = prefix.with_name(f".{prefix.name}.{os.getpid()}.part")
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(tmp), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.convert_to_tensor(tensors[name]) for name in names])
    data = sorted(tmp.parent.glob(f"{tmp.name}.data-*"))
    for part in data:
        os.replace(part, prefix.parent / part.name.replace(tmp.name, prefix.name, 1))
    os.replace(f"{tmp}.index", f"{prefix}.index")  # the index last: it marks the checkpoint complete


def delete_checkpoint(prefix: str | os.PathLike) -> None:
    """Remove the files of one checkpoint (index first, so that a partial deletion is not taken as complete)."""
    prefix = Path(prefix)
    Path(f"{prefix}.index").unlink(missing_ok=True)
    for part in prefix.parent.glob(f"{prefix.name}.data-*"):
        part.unlink()
    Path(f"{prefix}.meta").unlink(missing_ok=True)


@dataclass
class _Rotation:
    """The ``checkpoint`` state file: kept checkpoints (oldest first) with their times."""

    paths: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    last_preserved: float = 0.0


class TrainingState:
    """What a checkpoint holds: the network's variables, Adam's slots and the counters ``global_step`` and
    ``samples_seen``, all by their original TF1 names.

    ``save`` keeps ``max_to_keep`` checkpoints and, like the TF1 ``Saver``, preserves one every
    ``keep_every_n_hours``. ``restore`` reads this project's checkpoints and the original's alike.
    """

    def __init__(self, model: SequentialEncoder, optimizer: tf.keras.optimizers.Optimizer | None = None):
        self.model = model
        self.optimizer = optimizer
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.samples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_seen")

    def variables(self, include_optimizer: bool = True) -> dict[str, tf.Variable]:
        """``{TF1 name: variable}`` of the model, the counters and (when built) the optimizer's Adam slots."""
        named = dict(self.model.named_variables())
        named["global_step"] = self.global_step
        named["samples_seen"] = self.samples_seen
        if include_optimizer and self._optimizer_built():
            for name, variable in self.model.named_variables().items():
                if variable.trainable:
                    index = self.optimizer._get_variable_index(variable)
                    named[f"{name}/{ADAM_SLOTS[0]}"] = self.optimizer._momentums[index]
                    named[f"{name}/{ADAM_SLOTS[1]}"] = self.optimizer._velocities[index]
        return named

    def _optimizer_built(self) -> bool:
        return self.optimizer is not None and getattr(self.optimizer, "built", False)

    def build_optimizer(self) -> None:
        """Create the optimizer's slot variables (they exist only after its first step otherwise)."""
        if self.optimizer is not None and not self._optimizer_built():
            self.optimizer.build(self.model.trainable_variables)

    def tensors(self) -> dict[str, np.ndarray]:
        """Current values by name, including TF1's ``beta1_power``/``beta2_power`` derived from the step count."""
        values = {name: np.asarray(variable.numpy()) for name, variable in self.variables().items()}
        if self._optimizer_built():
            steps = int(self.optimizer.iterations.numpy())
            for power, beta in zip(BETA_POWERS, (self.optimizer.beta_1, self.optimizer.beta_2), strict=True):
                values[power] = np.float32(float(beta) ** (steps + 1))
        return values

    def restore(self, prefix: str | os.PathLike, include_optimizer: bool = True) -> set[str]:
        """Load a checkpoint into the model (and the optimizer, if its slots are in the checkpoint).

        A missing network variable or a shape mismatch is a :class:`UserError` naming the variable; the
        checkpoint's names that were not used are returned (e.g. TF1's ``class/bn/.../biased`` accumulators).
        """
        shapes = checkpoint_shapes(prefix)
        reader = _reader(prefix)
        if include_optimizer:
            self.build_optimizer()
        targets = self.variables(include_optimizer)
        slots = {name for name in targets if name.rsplit("/", 1)[-1] in ADAM_SLOTS}
        if slots and not slots <= shapes.keys():
            targets = {name: variable for name, variable in targets.items() if name not in slots}
        missing = [name for name in targets if name not in shapes and name not in COUNTERS]
        if missing:
            raise UserError(f"{prefix}: checkpoint has no variable '{missing[0]}' ({len(missing)} of the network's "
                            f"variables missing): not a checkpoint of the network in params.ini")
        for name, variable in targets.items():
            if name in shapes and tuple(variable.shape) != shapes[name]:
                raise UserError(f"{prefix}: variable '{name}' has shape {list(shapes[name])} in the checkpoint but "
                                f"{list(variable.shape)} in the network of params.ini")
        for name, variable in targets.items():
            if name in shapes:
                variable.assign(tf.cast(reader.get_tensor(name), variable.dtype))
        if self._optimizer_built() and slots <= shapes.keys():
            self.optimizer.iterations.assign(int(self.global_step.numpy()))
        return set(shapes) - set(targets) - set(BETA_POWERS)

    def save(self, folder: ModelFolder, max_to_keep: int = 5, keep_every_n_hours: float = 1.0) -> str:
        """Write ``model.ckpt-<global_step>`` into ``folder``, update the state file and rotate old checkpoints."""
        prefix = folder.checkpoint_prefix(int(self.global_step.numpy()))
        write_checkpoint(prefix, self.tensors())
        _update_state(folder.path, prefix.name, max_to_keep, keep_every_n_hours)
        return str(prefix)


def _read_state(directory: Path) -> _Rotation:
    state = tf.train.get_checkpoint_state(str(directory))
    if state is None:
        return _Rotation()
    paths = [Path(path).name for path in state.all_model_checkpoint_paths]
    times = list(state.all_model_checkpoint_timestamps) or [time.time()] * len(paths)
    return _Rotation(paths, times[-len(paths):] if paths else [], state.last_preserved_timestamp)


def _update_state(directory: Path, name: str, max_to_keep: int, keep_every_n_hours: float) -> None:
    rotation = _read_state(directory)
    now = time.time()
    if name in rotation.paths:
        index = rotation.paths.index(name)
        del rotation.paths[index], rotation.times[index]
    rotation.paths.append(name)
    rotation.times.append(now)
    if rotation.last_preserved == 0.0:
        rotation.last_preserved = now
    while max_to_keep > 0 and len(rotation.paths) > max_to_keep:
        oldest, stamp = rotation.paths.pop(0), rotation.times.pop(0)
        if stamp - rotation.last_preserved >= keep_every_n_hours * 3600:
            rotation.last_preserved = stamp  # preserved on disk, dropped from the list (as the TF1 Saver did)
        else:
            delete_checkpoint(directory / oldest)
    lines = [f'model_checkpoint_path: "{name}"']
    lines += [f'all_model_checkpoint_paths: "{path}"' for path in rotation.paths]
    lines += [f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in rotation.times]
    lines.append(f"last_preserved_timestamp: {rotation.last_preserved!r}")
    with atomic_file(directory / STATE_FILE) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
