"""Where training and inference run: TensorFlow's devices, the ``tf.distribute`` strategies (one device, the local
GPUs or CPU halves, a cluster described by ``$TF_CONFIG``), the replicas' devices, the chief, and the check that
every worker restored the same checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import tensorflow as tf

from utils.cli import UserError
from utils.trainoptions import STRATEGIES


def configure_devices(devices: Sequence[str] | None = None, allow_growth: bool = False) -> None:
    """Prepare TensorFlow's devices before its runtime starts: GPU memory growth, and as many logical CPU devices
    as ``devices`` names (``CPU:0,CPU:1`` splits the CPU in two, to try a distributed setup without GPUs)."""
    try:
        if allow_growth:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        cpus = [name for name in devices or () if "CPU" in name.upper()]
        if len(cpus) > 1:
            physical = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(physical, [tf.config.LogicalDeviceConfiguration()] * len(cpus))
    except RuntimeError as err:
        raise UserError(f"--devices/--allow_growth: TensorFlow is already initialised ({err})") from None


def make_strategy(name: str = "default", devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The distribution strategy: ``default`` (one device), ``mirrored`` (``devices`` or all local GPUs) or
    ``multiworker`` (``MultiWorkerMirroredStrategy``; the cluster comes from ``$TF_CONFIG``)."""
    if name not in STRATEGIES:
        raise UserError(f"--strategy {name!r} is not one of {', '.join(STRATEGIES)}")
    if name != "mirrored" and devices:
        raise UserError(f"--devices applies to --strategy mirrored only, not {name}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices:
            present = {_device_key(device.name) for device in tf.config.list_logical_devices()}
            for device in devices:
                if _device_key(device) not in present:
                    raise UserError(f"--devices: no device {device!r} (present: "
                                    f"{', '.join(sorted(present))})")
        return tf.distribute.MirroredStrategy(list(devices) if devices else None)
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise UserError("--strategy multiworker: $TF_CONFIG is not set (the cluster and this worker's task)")
    try:
        spec = json.loads(config)
        valid = isinstance(spec["cluster"], dict) and isinstance(spec["task"]["type"], str) \
            and int(spec["task"]["index"]) >= 0
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise UserError(f"$TF_CONFIG: not a cluster specification with a task type and index: {config!r}")
    return tf.distribute.MultiWorkerMirroredStrategy()


def _device_key(name: str) -> str:
    """``/job:localhost/replica:0/task:0/device:CPU:1``, ``/cpu:1`` and ``CPU:1`` all become ``CPU:1``."""
    kind, _, index = name.rsplit("/", 1)[-1].removeprefix("device:").upper().rpartition(":")
    return f"{kind}:{index}"


def replica_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices of this worker's replicas (the default strategy: the first GPU, else the CPU)."""
    try:
        return [_device_key(device) for device in strategy.extended.worker_devices]
    except RuntimeError:  # the default strategy
        return [_device_key((tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name)]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and logs: always, except on the non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def check_workers_agree(strategy: tf.distribute.Strategy, step: tf.Variable, folder: os.PathLike) -> None:
    """Every worker of a cluster must have restored the same ``step`` (the model folder must be shared), else all
    stop with a :class:`UserError`."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    def moments() -> tf.Tensor:
        value = tf.cast(step, tf.float64)
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.stack([value, value * value]))

    mean, square = strategy.experimental_local_results(tf.function(lambda: strategy.run(moments))())[0].numpy()
    if square > mean * mean:
        raise UserError(f"{folder}: the workers restored different checkpoints (this one: step {int(step.numpy())}); "
                        "the model folder must be the same shared folder on every worker")
