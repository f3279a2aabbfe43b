"""Training step of the MTLCC network against its compute floor and against Keras' own ConvLSTM2D network.

    python benchmarks/bench_model.py                    # F=128, 24 px, 30 dates, batch 4 (issue #8)
    python benchmarks/bench_model.py --filters 32 --repeats 3

Rows, all timed in one process with the repeats interleaved (minimum per row):

- ``ours`` — one training step (forward, gradients, Adam update) of the bidirectional ConvGRU / ConvLSTM network.
- ``floor`` — the step's convolution FLOPs divided by the throughput of one large convolution of each shape the
  step uses (forward, every frame of the step in one call), summed over the shapes.
- ``keras`` — the same step of ``Bidirectional(ConvLSTM2D(F, 3, padding="same"))`` + the same conv/BN/leaky-ReLU
  head on the same prepared input: what a user would pick instead. Compared per executed convolution FLOP.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils import tfquiet  # noqa: E402

tfquiet.install()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # no retracing notes: every network has its own step function

from modelzoo import cells  # noqa: E402
from modelzoo.params import ModelParams  # noqa: E402
from modelzoo.seqencmodel import LEAKY_RELU_SLOPE, build_model, make_optimizer, masked_xe_mean  # noqa: E402
from utils.cli import run, str2bool  # noqa: E402

KERNEL = 3
CLASSES = 17
CHANNELS = 15


@dataclass(frozen=True)
class Conv:
    """``count`` executions of a KERNEL×KERNEL convolution over ``frames`` frames; ``passes`` counts the forward
    pass plus the gradient convolutions it needs (3 with the input gradient, 2 without)."""

    frames: int
    cin: int
    cout: int
    passes: int

    def flops(self, pixels: int) -> float:
        return 2.0 * self.frames * pixels * KERNEL * KERNEL * self.cin * self.cout * self.passes


def our_convs(cell: str, batch: int, steps: int, filters: int) -> list[Conv]:
    """The convolutions of one training step of our network (shared weights, input projection computed once for
    all frames and both directions, no recurrent convolution on the zero state of the first step)."""
    outputs = {"gru": (2 * filters, filters), "lstm": (4 * filters,)}[cell]
    recurrent = 2 * batch * (steps - 1)  # both directions
    return [Conv(batch * steps, CHANNELS, sum(outputs), 2)] + [Conv(recurrent, filters, out, 3) for out in outputs] + [
        Conv(batch, 2 * filters, CLASSES, 3)]


def keras_convs(batch: int, steps: int, filters: int) -> list[Conv]:
    """The convolutions of one training step of ``Bidirectional(ConvLSTM2D)``: per step and direction four input
    and four recurrent convolutions of F outputs each (also on the zero initial state)."""
    frames = 2 * batch * steps
    return [Conv(frames, CHANNELS, 4 * filters, 2), Conv(frames, filters, 4 * filters, 3),
            Conv(batch, 2 * filters, CLASSES, 3)]


@dataclass(frozen=True)
class Variant:
    """One of our networks to time: ``options`` of :func:`build_model`; ``zero_padding`` (an ablation) swaps the
    cells' reflect-padded convolutions for zero-padded ("SAME") ones while the step is traced."""

    label: str
    cell: str
    normalize: bool = True
    options: dict = field(default_factory=dict)
    zero_padding: bool = False

    def training_step(self, filters: int) -> Callable:
        model = build_model(ModelParams(convcell=self.cell, convrnn_filters=filters,
                                        convrnn_normalize=self.normalize), **self.options)
        step = training_step(lambda data: model(data, training=True), model.trainable_variables,
                             make_optimizer(model.params))
        if not self.zero_padding:
            return step

        def zero_padded(batch):
            with mock.patch.object(cells, "reflect_conv", lambda x, kernel: tf.nn.conv2d(x, kernel, 1, "SAME")):
                return step(batch)

        return zero_padded


def random_batch(batch: int, steps: int, size: int, seed: int = 0) -> dict[str, tf.Tensor]:
    """A batch dict with every date valid and random labels (the speed does not depend on the values)."""
    rng = np.random.default_rng(seed)
    doy = np.sort(rng.integers(1, 366, (batch, steps)), axis=1) / 365
    arrays = {"x10": rng.random((batch, steps, size, size, 4)),
              "x20": rng.random((batch, steps, size // 2, size // 2, 6)),
              "x60": rng.random((batch, steps, size // 6, size // 6, 3)), "doy": doy, "year": np.zeros_like(doy)}
    tensors = {key: tf.constant(value, tf.float32) for key, value in arrays.items()}
    tensors["labels"] = tf.constant(rng.integers(0, CLASSES + 1, (batch, size, size)), tf.int32)
    return tensors


def keras_network(filters: int, steps: int, size: int) -> keras.Model:
    """``Bidirectional(ConvLSTM2D(F))`` (final states of both directions) + conv/BN/leaky-ReLU head."""
    x = keras.Input((steps, size, size, CHANNELS))
    y = keras.layers.Bidirectional(keras.layers.ConvLSTM2D(filters, KERNEL, padding="same"))(x)
    y = keras.layers.Conv2D(CLASSES, KERNEL, padding="same", use_bias=False)(y)
    y = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)(y)
    return keras.Model(x, keras.layers.LeakyReLU(LEAKY_RELU_SLOPE)(y))


def training_step(network: Callable, variables: list, optimizer: keras.optimizers.Optimizer) -> Callable:
    """A graph-compiled step: loss, gradients, Adam update; returns the loss."""

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = masked_xe_mean(batch["labels"], network(batch))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return step


def conv_probe(frames: int, size: int, cin: int, cout: int) -> Callable[[], tf.Tensor]:
    """One large stride-1 VALID convolution of ``frames`` padded frames (a single op, run eagerly)."""
    x = tf.random.normal((frames, size + KERNEL - 1, size + KERNEL - 1, cin))
    kernel = tf.random.normal((KERNEL, KERNEL, cin, cout))
    return lambda: tf.nn.conv2d(x, kernel, 1, "VALID")[0, 0, 0, 0]


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call, its result fetched to the host."""
    wall, cpu = time.perf_counter(), time.process_time()
    np.asarray(function())
    return time.perf_counter() - wall, time.process_time() - cpu


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def pipeline_rate(batchsize: int, steps: int, size: int) -> float:
    """Samples/s of the training pipeline alone (bench_pipeline.py: generated tiles, shuffle, temporal sampling)."""
    import tempfile

    from bench_pipeline import generate, throughput

    with tempfile.TemporaryDirectory(prefix="bench_model.") as tmp:
        root = generate(Path(tmp), size, tiles=100)
        return throughput(root, "2016", batches=100, batchsize=batchsize, temporal_samples=steps)[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=128)
    parser.add_argument("--batchsize", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30, help="dates per sample (all valid)")
    parser.add_argument("--size", type=int, default=24, help="tile size in px")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (minimum taken)")
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm"], choices=["gru", "lstm"])
    parser.add_argument("--options", type=str2bool, default=True,
                        help="also time the first cell with recompute and with mixed_bfloat16 (default True)")
    parser.add_argument("--ablation", type=str2bool, default=True,
                        help="also time the last cell without layer norm, and with zero instead of reflect padding "
                        "(default True)")
    parser.add_argument("--pipeline", type=str2bool, default=True,
                        help="also measure the input pipeline against the model's consumption (default True)")
    args = parser.parse_args(argv)
    b, t, f, size = args.batchsize, args.steps, args.filters, args.size
    pixels = size * size
    batch = random_batch(b, t, size)

    labels = {"gru": f"ConvGRU-{f}", "lstm": f"ConvLSTM-{f}"}
    variants = [Variant(f"{labels[cell]} ours", cell) for cell in args.cells]
    first, last = args.cells[0], args.cells[-1]
    if args.options:
        variants += [Variant(f"{labels[first]} recompute", first, options={"recompute": True}),
                     Variant(f"{labels[first]} mixed_bfloat16", first, options={"mixed_precision": "mixed_bfloat16"})]
    if args.ablation:
        variants += [Variant(f"{labels[last]} without layer norm", last, normalize=False),
                     Variant(f"{labels[last]} without layer norm, zero padding", last, normalize=False,
                             zero_padding=True)]
    steps, convs = {}, {}
    for variant in variants:
        steps[variant.label] = variant.training_step(f)
        convs[variant.label] = our_convs(variant.cell, b, t, f)
    prepare = build_model(ModelParams(convrnn_filters=1)).prepare_inputs
    theirs = keras_network(f, t, size)
    keras_label = f"Keras ConvLSTM2D-{f}"
    steps[keras_label] = training_step(lambda data: theirs(prepare(data)[0], training=True), theirs.trainable_variables,
                                   make_optimizer(ModelParams()))
    convs[keras_label] = keras_convs(b, t, f)
    shapes = sorted({(c.cin, c.cout) for conv_list in convs.values() for c in conv_list})
    timers = {**{name: (lambda s=s: s(batch)) for name, s in steps.items()},
              **{shape: conv_probe(2 * b * t, size, *shape) for shape in shapes}}
    for timer in timers.values():  # trace, compile, warm up
        timed(timer)
    wall, cpu = dict.fromkeys(timers, float("inf")), dict.fromkeys(timers, float("inf"))
    loads = []
    for _ in range(args.repeats):
        loads.append(os.getloadavg()[0])
        for name, timer in timers.items():
            seconds = timed(timer)
            wall[name], cpu[name] = min(wall[name], seconds[0]), min(cpu[name], seconds[1])

    def floor(conv_list: list[Conv], clock: dict) -> float:
        """Seconds of the convolutions at the probes' throughput (FLOPs per wall or per CPU second)."""
        return sum(c.flops(pixels) * clock[(c.cin, c.cout)] / Conv(2 * b * t, c.cin, c.cout, 1).flops(pixels)
                   for c in conv_list)

    def total(conv_list: list[Conv]) -> float:
        return sum(c.flops(pixels) for c in conv_list)

    print(f"{cpu_model()}, {os.cpu_count()} cores, load average {min(loads):.1f}-{max(loads):.1f} (1 min) during the "
          f"rounds; TensorFlow {tf.__version__}, Keras {keras.__version__}, numpy {np.__version__}")
    print(f"training step, batch {b}, {t} dates, {size} px, F={f}, bidirectional; minimum of {args.repeats} "
          "interleaved rounds; CPU = CPU seconds of this process (all threads)\n")
    print("| conv 3x3 (forward) | GFLOP per wall s | GFLOP per CPU s |\n|---|---|---|")
    for shape in shapes:
        flops = Conv(2 * b * t, *shape, 1).flops(pixels)
        print(f"| {shape[0]} -> {shape[1]} | {flops / wall[shape] / 1e9:.0f} | {flops / cpu[shape] / 1e9:.0f} |")
    print("\n| network | conv GFLOP | step s | step CPU s | step/floor | step/floor CPU | ours/Keras per FLOP | "
          "ours/Keras per FLOP CPU |\n|---|---|---|---|---|---|---|---|")
    for name, conv_list in convs.items():
        per_flop = [clock[name] / total(conv_list) / (clock[keras_label] / total(convs[keras_label]))
                    for clock in (wall, cpu)]
        print(f"| {name} | {total(conv_list) / 1e9:.0f} | {wall[name]:.2f} | {cpu[name]:.2f} | "
              f"{wall[name] / floor(conv_list, wall):.2f} | {cpu[name] / floor(conv_list, cpu):.2f} | "
              f"{per_flop[0]:.2f} | {per_flop[1]:.2f} |")
    if args.pipeline:
        consumption = b / wall[variants[0].label]
        rate = pipeline_rate(b, t, size)
        print(f"\n| input pipeline alone | {variants[0].label} training consumes | ratio |\n|---|---|---|\n"
              f"| {rate:.0f} samples/s | {consumption:.2f} samples/s | {rate / consumption:.0f}x |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run(main)
