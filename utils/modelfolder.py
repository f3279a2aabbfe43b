"""A model folder: ``params.ini`` plus checkpoints in the original's name-based TF1 checkpoint format.

This project writes its checkpoints exactly as the original TF1 ``Saver`` did: ``model.ckpt-<step>.index`` and
``model.ckpt-<step>.data-00000-of-00001`` keyed by the original variable names
(``convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel``, ``class/bn/moving_mean``, ``<name>/Adam``,
``<name>/Adam_1``, ``beta1_power``, ``beta2_power``, ``global_step``, ``samples_seen``), plus the ``checkpoint``
state file. So there is one format: the released TF1 models load directly, and our checkpoints can be inspected
with the original's tools. Names come from :meth:`modelzoo.seqencmodel.SequentialEncoder.named_variables`.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from modelzoo.params import ModelParams, read_params_ini
from modelzoo.seqencmodel import SequentialEncoder, build_model, make_optimizer
from utils.cli import UserError, warn
from utils.fsio import atomic_file

PARAMS_FILE = "params.ini"
CHECKPOINT_BASENAME = "model.ckpt"
STATE_FILE = "checkpoint"
LOCK_FILE = ".lock"
COUNTERS = ("global_step", "samples_seen")
ADAM_SLOTS = ("Adam", "Adam_1")  # TF1 names of Adam's first and second moment slots
BETA_POWERS = ("beta1_power", "beta2_power")
TF1_BN_ACCUMULATORS = ("/biased", "/local_step")  # zero-debias state of TF1 batch norm; Keras does not debias
RESOLVE_ATTEMPTS = 3  # of the latest checkpoint, while a training may rotate checkpoints
KEEP_EVERY_N_HOURS = 10000.0  # the TF1 Saver's default: in effect, keep only the newest max_to_keep
_CHECKPOINT_FILE_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_STEP = re.compile(r"-(\d+)$")


def checkpoint_exists(prefix: str | os.PathLike) -> bool:
    """Whether ``prefix`` names a complete checkpoint (its ``.index`` file exists)."""
    return Path(f"{prefix}.index").is_file()


def find_checkpoint(directory: str | os.PathLike, name: str | None = None, required: bool = True) -> str | None:
    """Resolve a checkpoint prefix in ``directory``: ``name`` (e.g. ``model.ckpt-13824``, relative to the folder, or
    a path; a trailing ``.index``/``.data-…``/``.meta`` is ignored) or else the latest.

    The latest is the one the ``checkpoint`` state file names (TF1 state files with absolute paths of another
    machine are resolved inside ``directory``), or without a state file the one with the highest step. With
    ``required`` a missing checkpoint is a :class:`UserError`; otherwise ``None`` is returned.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: model folder does not exist")
    if name is not None:
        name = _CHECKPOINT_FILE_SUFFIX.sub("", str(name))
        prefix = Path(name) if Path(name).is_absolute() else directory / name
        if not checkpoint_exists(prefix):
            raise UserError(f"{prefix}: no such checkpoint (no {prefix.name}.index)")
        return str(prefix)
    state = _read_state(directory)
    problem = _state_problem(directory, state)
    if state.paths and not problem:
        return str(directory / state.paths[-1])
    on_disk = _checkpoints_on_disk(directory)
    if on_disk:
        if problem:
            warn(f"{directory / STATE_FILE}: {problem}; using the newest complete checkpoint on disk, {on_disk[-1]}")
        return str(directory / on_disk[-1])
    if required:
        raise UserError(f"{directory}: no checkpoint in the model folder (run 'python init_graph.py {directory}' "
                        "or train.py first)")
    return None


def _checkpoints_on_disk(directory: Path) -> list[str]:
    """Names of the complete checkpoints in ``directory``, by step."""
    return [index.with_suffix("").name
            for index in sorted(directory.glob(f"{CHECKPOINT_BASENAME}*.index"), key=_step_of)]


def _step_of(index_file: Path) -> int:
    match = _STEP.search(index_file.with_suffix("").name)
    return int(match.group(1)) if match else -1


class ModelFolder:
    """A folder with ``params.ini`` (section ``[flags]``, as written by ``modelzoo/seqencmodel.py`` or the original)
    and zero or more checkpoints. ``path`` may also name the folder's ``graph.meta`` or ``params.ini`` (the
    original's ``init_graph.py`` took ``<folder>/graph.meta``)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.name in ("graph.meta", PARAMS_FILE) and not path.is_dir():
            path = path.parent
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: not a model folder but a file")
        if not path.is_dir():
            raise UserError(f"{path}: model folder does not exist (create it with modelzoo/seqencmodel.py)")
        if not (path / PARAMS_FILE).is_file():
            raise UserError(f"{path}: no {PARAMS_FILE} in the model folder (create it with modelzoo/seqencmodel.py)")
        self.path = path
        self.params: ModelParams = read_params_ini(path / PARAMS_FILE)

    def build_model(self) -> SequentialEncoder:
        """A freshly initialised network configured by ``params.ini``."""
        return build_model(self.params)

    def check_classes(self, num_classes: int, classes_file: str | os.PathLike) -> None:
        """The network's logits must match the ``num_classes`` classes (without unknown) of ``classes_file``."""
        if self.params.num_classes != num_classes:
            raise UserError(f"{self.path / PARAMS_FILE}: the model has num_classes = {self.params.num_classes} but "
                            f"{classes_file} lists {num_classes} classes besides unknown")

    def load_network(self, checkpoint: str | None = None, allow_untrained: bool = False,
                     mixed_precision: str = "none") -> tuple[SequentialEncoder, str | None, int]:
        """The network of ``params.ini`` with a checkpoint's weights (``checkpoint`` or the latest), for inference:
        ``(model, checkpoint prefix or None, global step)``.

        Without a checkpoint the randomly initialised network is returned only when ``allow_untrained`` (the original
        did so silently). ``mixed_precision`` (none, mixed_float16, mixed_bfloat16) sets the dtype policy. The latest
        checkpoint is resolved again if a training rotates it away while it is being read.
        """
        model = build_model(self.params, mixed_precision=mixed_precision)
        state = TrainingState(model)
        attempts = RESOLVE_ATTEMPTS
        while True:
            prefix = self.checkpoint(checkpoint, required=False)
            if prefix is None and not allow_untrained:
                raise UserError(f"{self.path}: no checkpoint in the model folder (train the model first, or pass "
                                "--allow_untrained to use its random initial weights)")
            if prefix is None:
                return model, None, 0
            try:
                state.restore(prefix, include_optimizer=False)
                return model, prefix, int(state.global_step.numpy())
            except UserError:  # the latest checkpoint rotated away by a training between resolving and reading it
                attempts -= 1
                if checkpoint is not None or checkpoint_exists(prefix) or not attempts:
                    raise

    def initial_state(self, seed: int | None = None) -> TrainingState:
        """A fresh network of ``params.ini`` (initialised from ``seed`` if given) with its Adam optimizer's slots
        created and the counters at 0."""
        if seed is not None:
            keras.utils.set_random_seed(seed)
        return TrainingState(self.build_model(), make_optimizer(self.params))

    def checkpoint_prefix(self, step: int) -> Path:
        """The path prefix of the checkpoint of ``step``: ``<folder>/model.ckpt-<step>``."""
        return self.path / f"{CHECKPOINT_BASENAME}-{step}"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one training: an exclusive ``flock`` on ``.lock``, released when the block ends or the
        process dies, however it dies. A folder held by another process is a :class:`UserError` naming it."""
        path = self.path / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise UserError(f"{path}: cannot open the lock file ({err.strerror or err})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise UserError(f"{self.path}: the model folder is in use by another training (process {holder}); "
                                "wait for it to end or train into another folder") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def checkpoint(self, name: str | None = None, required: bool = True) -> str | None:
        """Resolve a checkpoint: ``name`` (e.g. ``model.ckpt-13824``, relative to the folder) or else the latest.

        With ``required`` a missing checkpoint is a :class:`UserError`; otherwise ``None`` is returned.
        """
        return find_checkpoint(self.path, name, required)


def read_checkpoint(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every variable of a name-based checkpoint as ``{name: array}`` (TF1 or this project's)."""
    reader = _reader(prefix)
    return _read_tensors(reader, prefix, sorted(reader.get_variable_to_shape_map()))


def checkpoint_shapes(prefix: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of a name-based checkpoint, without reading the values."""
    return {name: tuple(shape) for name, shape in _reader(prefix).get_variable_to_shape_map().items()}


def _comparison_row(source: str, target: str, name: str) -> str:
    return f"{source:>17} <-> {target:<17} name: {name}"


def comparison_lines(source: Mapping[str, tuple[int, ...]], target: Mapping[str, tuple[int, ...]],
                     mode: str = "all") -> list[str]:
    """The table of two ``{name: shape}`` maps: a header, one row per variable (sorted), then a summary line."""
    def shape(shapes: Mapping[str, tuple[int, ...]], name: str) -> str:
        return str(list(shapes[name])) if name in shapes else "x"

    names = sorted(set(source) | set(target))
    equal = [name for name in names if source.get(name) == target.get(name)]
    lines = [_comparison_row("<source shape>", "<target shape>", "<variable name>")]
    lines += [_comparison_row(shape(source, name), shape(target, name), name)
              for name in (names if mode == "all" else equal)]
    common = set(source) & set(target)
    lines.append(f"{len(names)} variables: {len(equal)} of equal name and shape, {len(common) - len(equal)} of "
                 f"other shapes, {len(set(source) - common)} only in the source, {len(set(target) - common)} only "
                 "in the target")
    return lines


def _read_tensors(reader, prefix: str | os.PathLike, names: list[str]) -> dict[str, np.ndarray]:
    """The values of ``names``; a missing or damaged data file is a :class:`UserError`."""
    try:
        return {name: reader.get_tensor(name) for name in names}
    except (tf.errors.OpError, IndexError, ValueError) as err:  # pybind raises IndexError for OUT_OF_RANGE
        message = getattr(err, "message", None) or str(err)
        raise UserError(f"{prefix}: unreadable checkpoint ({message.splitlines()[0]})") from None


def _reader(prefix: str | os.PathLike):
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as err:
        message = getattr(err, "message", str(err)).splitlines()[0]
        raise UserError(f"{prefix}: unreadable checkpoint ({message})") from None
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in reader.get_variable_to_shape_map():
        raise UserError(f"{prefix}: an object-based TF2 checkpoint (tf.train.Checkpoint); expected a name-based "
                        "MTLCC checkpoint as written by train.py, init_graph.py or the original TF1 code")
    return reader


def write_checkpoint(prefix: str | os.PathLike, tensors: dict[str, np.ndarray | tf.Tensor]) -> None:
    """Write ``{name: value}`` as a name-based checkpoint at ``prefix``; its files appear only when complete
    (the ``.index`` file last, as it marks a checkpoint complete)."""
    prefix = Path(prefix)
    tmp = prefix.with_name(f".{prefix.name}.{os.getpid()}.part")
    names = sorted(tensors)
    try:
        tf.raw_ops.SaveV2(prefix=str(tmp), tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.convert_to_tensor(tensors[name]) for name in names])
        for part in tmp.parent.glob(f"{tmp.name}.data-*"):
            os.replace(part, prefix.parent / part.name.replace(tmp.name, prefix.name, 1))
        os.replace(f"{tmp}.index", f"{prefix}.index")
    except (tf.errors.OpError, OSError) as err:
        message = getattr(err, "message", None) or getattr(err, "strerror", None) or str(err)
        raise UserError(f"{prefix}: cannot write the checkpoint ({message.splitlines()[0]})") from None
    finally:
        for leftover in tmp.parent.glob(f"{tmp.name}*"):
            leftover.unlink()


def delete_checkpoint(prefix: str | os.PathLike) -> None:
    """Remove the files of one checkpoint (index first, so that a partial deletion is not taken as complete)."""
    prefix = Path(prefix)
    Path(f"{prefix}.index").unlink(missing_ok=True)
    for part in prefix.parent.glob(f"{prefix.name}.data-*"):
        part.unlink()
    Path(f"{prefix}.meta").unlink(missing_ok=True)


def export_keras(model: SequentialEncoder, path: str | os.PathLike) -> None:
    """Save ``model`` as a ``.keras`` archive (architecture and weights; reload with ``keras.models.load_model``
    after importing ``modelzoo.seqencmodel``). The file appears only when complete."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UserError(f"{path}: a Keras model file must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as staging:
        staged = Path(staging) / path.name
        keras.saving.save_model(model, staged)
        os.replace(staged, path)


def _tf1_extra(name: str, network: dict[str, object]) -> bool:
    """Whether checkpoint variable ``name`` is TF1 bookkeeping that a network of ``network``'s variables may ignore:
    batch-norm zero-debias accumulators, Adam's beta powers and Adam slots of the network's variables."""
    owner, _, slot = name.rpartition("/")
    return name.endswith(TF1_BN_ACCUMULATORS) or name in BETA_POWERS or (slot in ADAM_SLOTS and owner in network)


class TrainingState:
    """What a checkpoint holds: the network's variables, Adam's slots and the counters ``global_step`` and
    ``samples_seen``, all by their original TF1 names.

    Adam's slots are created at once (zeros, step 0), so that a compiled train step creates no variables. Create
    the state (like the model and the optimizer) inside ``strategy.scope()`` when training with a
    ``tf.distribute`` strategy; ``save`` and ``restore`` run in cross-replica context. ``save`` keeps
    ``max_to_keep`` checkpoints and, like the TF1 ``Saver``, preserves one every ``keep_every_n_hours``.
    ``restore`` reads this project's checkpoints and the original's alike.
    """

    def __init__(self, model: SequentialEncoder, optimizer: keras.optimizers.Optimizer | None = None):
        self.model = model
        self.optimizer = optimizer
        self.strategy = tf.distribute.get_strategy()  # the scope the variables live in, for the optimizer's slots
        counter = dict(dtype=tf.int64, trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.global_step = tf.Variable(0, name="global_step", **counter)
        self.samples_seen = tf.Variable(0, name="samples_seen", **counter)
        self.build_optimizer()

    def variables(self, include_optimizer: bool = True) -> dict[str, tf.Variable]:
        """``{TF1 name: variable}`` of the model, the counters and (with an optimizer) Adam's slots."""
        network = self.model.named_variables()
        named = {**network, "global_step": self.global_step, "samples_seen": self.samples_seen}
        if include_optimizer and self.optimizer is not None:
            for name, variable in network.items():
                if variable.trainable:
                    index = self.optimizer._get_variable_index(variable)
                    named[f"{name}/{ADAM_SLOTS[0]}"] = self.optimizer._momentums[index]
                    named[f"{name}/{ADAM_SLOTS[1]}"] = self.optimizer._velocities[index]
        return named

    def build_optimizer(self) -> None:
        """Create the optimizer's slot variables in the state's strategy scope (done on construction)."""
        if self.optimizer is not None and not self.optimizer.built:
            with self.strategy.scope():
                self.optimizer.build(self.model.trainable_variables)

    def tensors(self) -> dict[str, np.ndarray]:
        """Current values by name, including TF1's ``beta1_power``/``beta2_power`` derived from the step count."""
        values = {name: np.asarray(variable.numpy()) for name, variable in self.variables().items()}
        if self.optimizer is not None:
            steps = int(self.optimizer.iterations.numpy())
            for power, beta in zip(BETA_POWERS, (self.optimizer.beta_1, self.optimizer.beta_2), strict=True):
                values[power] = np.float32(float(beta) ** (steps + 1))
        return values

    def restore(self, prefix: str | os.PathLike, include_optimizer: bool = True) -> set[str]:
        """Load a checkpoint into the model, the counters and (if its Adam slots are in the checkpoint and
        ``include_optimizer``) the optimizer. Nothing is assigned unless the whole checkpoint fits.

        A network variable missing from the checkpoint, a shape mismatch, or a checkpoint variable the network
        does not have (another network) is a :class:`UserError` naming the variable. Returns the checkpoint's
        names that were not used: TF1 bookkeeping (``class/bn/class/bn/moving_mean/biased``, ``…/local_step``)
        and, without ``include_optimizer``, the Adam state.
        """
        reader = _reader(prefix)
        shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
        network = self.model.named_variables()
        missing = [name for name in network if name not in shapes]
        if missing:
            raise UserError(f"{prefix}: checkpoint has no variable '{missing[0]}' ({len(missing)} of the network's "
                            f"variables missing): not a checkpoint of the network in params.ini")
        use_optimizer = include_optimizer and self.optimizer is not None and any(
            name.rpartition("/")[2] in ADAM_SLOTS for name in shapes)
        named = self.variables(use_optimizer)
        targets = {name: variable for name, variable in named.items() if name in shapes}
        absent_slots = sorted(set(named) - set(targets) - set(COUNTERS))
        if absent_slots:
            raise UserError(f"{prefix}: checkpoint has Adam slots but not '{absent_slots[0]}' "
                            f"({len(absent_slots)} missing)")
        for name, variable in targets.items():
            if tuple(variable.shape) != shapes[name]:
                raise UserError(f"{prefix}: variable '{name}' has shape {list(shapes[name])} in the checkpoint but "
                                f"{list(variable.shape)} in the network of params.ini")
        unused = set(shapes) - set(targets)
        foreign = sorted(name for name in unused if not _tf1_extra(name, network))
        if foreign:
            raise UserError(f"{prefix}: checkpoint variable '{foreign[0]}' is not in the network of params.ini "
                            f"({len(foreign)} such variables): not a checkpoint of this network")
        values = _read_tensors(reader, prefix, [*targets, *(["beta2_power"] if "beta2_power" in shapes else [])])
        for name, variable in targets.items():
            variable.assign(tf.cast(values[name], variable.dtype))
        if use_optimizer:
            self.optimizer.iterations.assign(self._adam_steps(values))
        return unused - ({*BETA_POWERS} if use_optimizer else set())

    def _adam_steps(self, values: dict[str, np.ndarray]) -> int:
        """Adam's step count t: TF1 stores ``beta2_power`` = β2^(t+1); where that has underflowed (t ≳ 87k for the
        default β2, bias correction long finished) or is absent, ``global_step``."""
        beta2 = float(self.optimizer.beta_2)
        if "beta2_power" in values and 0.0 < beta2 < 1.0:
            power = float(values["beta2_power"])
            if np.finfo(np.float32).tiny <= power < 1.0:
                return max(round(math.log(power) / math.log(beta2)) - 1, 0)
        return int(self.global_step.numpy())

    def save(self, folder: ModelFolder, max_to_keep: int = 5, keep_every_n_hours: float = 1.0) -> str:
        """Write ``model.ckpt-<global_step>`` into ``folder``, update the state file and rotate old checkpoints."""
        prefix = folder.checkpoint_prefix(int(self.global_step.numpy()))
        write_checkpoint(prefix, self.tensors())
        record_checkpoint(folder.path, prefix.name, max_to_keep, keep_every_n_hours)
        return str(prefix)


@dataclass
class _Rotation:
    """The ``checkpoint`` state file: kept checkpoints (oldest first, names relative to the folder) and times."""

    paths: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    last_preserved: float = 0.0
    unreadable: bool = False


def _state_problem(directory: Path, state: _Rotation) -> str | None:
    """What makes the state file unusable (unreadable, or its latest checkpoint missing after a kill), or None."""
    if state.unreadable:
        return "unreadable checkpoint state file"
    if state.paths and not checkpoint_exists(directory / state.paths[-1]):
        return f"names checkpoint {state.paths[-1]}, which does not exist"
    return None


def _read_state(directory: Path) -> _Rotation:
    """The state file's checkpoints by their names inside ``directory`` (TF1 wrote absolute paths); empty without a
    state file, ``unreadable`` for one that cannot be parsed (empty, binary or not a state)."""
    if not (directory / STATE_FILE).is_file():
        return _Rotation()
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except ValueError:  # an empty file, or bytes that are not UTF-8
        state = None
    if state is None:
        return _Rotation(unreadable=True)
    paths = [Path(path).name for path in state.all_model_checkpoint_paths]
    latest = Path(state.model_checkpoint_path).name
    if latest and latest not in paths:
        paths.append(latest)
    elif latest:  # the latest last, as the rotation expects
        paths.append(paths.pop(paths.index(latest)))
    stamps = list(state.all_model_checkpoint_timestamps)
    times = stamps[-len(paths):] if len(stamps) >= len(paths) else [time.time()] * len(paths)
    return _Rotation(paths, times if paths else [], state.last_preserved_timestamp)


def record_checkpoint(directory: str | os.PathLike, name: str, max_to_keep: int = 5,
                      keep_every_n_hours: float = KEEP_EVERY_N_HOURS) -> None:
    """Make checkpoint ``name`` (already written in ``directory``) the latest in the state file and delete the
    oldest beyond ``max_to_keep`` (0: keep all), except one every ``keep_every_n_hours`` (as the TF1 ``Saver``)."""
    directory = Path(directory)
    now = time.time()
    rotation = _read_state(directory)
    problem = _state_problem(directory, rotation)
    if problem:  # rotate what is on disk; the times of those checkpoints are lost with the state
        warn(f"{directory / STATE_FILE}: {problem}; rewritten from the checkpoints on disk")
        others = [other for other in _checkpoints_on_disk(directory) if other != name]
        rotation = _Rotation(others, [now] * len(others))
    kept = [(path, stamp) for path, stamp in zip(rotation.paths, rotation.times, strict=True)
            if path != name and checkpoint_exists(directory / path)]
    rotation.paths, rotation.times = [path for path, _ in kept], [stamp for _, stamp in kept]
    rotation.paths.append(name)
    rotation.times.append(now)
    if rotation.last_preserved == 0.0:
        rotation.last_preserved = now
    expired = []
    while max_to_keep > 0 and len(rotation.paths) > max_to_keep:
        oldest, stamp = rotation.paths.pop(0), rotation.times.pop(0)
        if stamp - rotation.last_preserved >= keep_every_n_hours * 3600:
            rotation.last_preserved = stamp  # preserved on disk, dropped from the list (as the TF1 Saver did)
        else:
            expired.append(oldest)
    lines = [f'model_checkpoint_path: "{name}"']
    lines += [f'all_model_checkpoint_paths: "{path}"' for path in rotation.paths]
    lines += [f"all_model_checkpoint_timestamps: {stamp!r}" for stamp in rotation.times]
    lines.append(f"last_preserved_timestamp: {rotation.last_preserved!r}")
    with atomic_file(directory / STATE_FILE) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    for oldest in expired:  # after the state file names only kept checkpoints: a kill leaves a usable folder
        delete_checkpoint(directory / oldest)
