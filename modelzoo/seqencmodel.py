"""The MTLCC network (ORIGINAL.md §2): input preparation, the bidirectional ConvRNN encoder, the classification head,
the masked loss and accuracy, the optimiser, and the command line that writes a model folder.

Run as a script from the repository root::

    python modelzoo/seqencmodel.py --modelfolder tmp/convgru128 --convrnn_filters 128 --convcell gru \\
        --num_classes 17 --pix10m 24

writes ``params.ini`` and ``model.txt`` (every variable with its TF1 name, shape and size) into the folder.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python modelzoo/seqencmodel.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import modelzoo  # noqa: F401 (TensorFlow then starts without its chatter)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from modelzoo.cells import ConvGRUCell, ConvLSTMCell, reflect_conv, reverse_valid_steps, run_recurrence  # noqa: E402
from modelzoo.params import (  # noqa: E402
    MIXED_PRECISION,
    PARAMS_FILENAME,
    ModelParams,
    add_model_arguments,
    params_from_args,
    write_params_ini,
)
from utils.cli import ArgumentParser, UserError, run  # noqa: E402
from utils.fsio import atomic_file  # noqa: E402

SUMMARY_FILENAME = "model.txt"
FEATURE_KEYS = ("x10", "x20", "x60", "doy", "year")
LEAKY_RELU_SLOPE = 0.2


def per_frame(function, x: tf.Tensor) -> tf.Tensor:
    """Apply ``function`` of (N, H, W, C) frames to every frame of ``x`` (A, B, H, W, C): → (A, B, H', W', C')."""
    shape = tf.shape(x)
    y = function(tf.reshape(x, tf.concat([[-1], shape[2:]], axis=0)))
    return tf.reshape(y, tf.concat([shape[:2], tf.shape(y)[1:]], axis=0))


def resize_legacy_bilinear(images: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Resize (B, T, h, w, C) to (B, T, height, width, C) as TF1 ``resize_images`` did: bilinear, no align_corners,
    no half-pixel centres (source pixel = target pixel × in/out)."""
    return per_frame(lambda frames: tf.raw_ops.ResizeBilinear(
        images=frames, size=tf.stack([height, width]), align_corners=False, half_pixel_centers=False), images)


def _activation(name: str):
    return tf.nn.relu if name == "relu" else (lambda x: tf.nn.leaky_relu(x, alpha=LEAKY_RELU_SLOPE))


def _bn_variables(bn: keras.layers.BatchNormalization) -> dict[str, keras.Variable]:
    return {"gamma": bn.gamma, "beta": bn.beta, "moving_mean": bn.moving_mean, "moving_variance": bn.moving_variance}


class ConvBNAct(keras.layers.Layer):
    """The original's ``conv_bn_relu`` block: reflect padding, convolution without bias, batch norm, (leaky) ReLU.

    A kernel size of three values (the compression block's 1×1×1 conv3d) acts on (T, N, H, W, C) frame by frame;
    its first value must be 1. The convolution runs in the compute dtype; the batch norm statistics are float32.
    """

    def __init__(self, in_channels: int, filters: int, kernel_size: tuple[int, ...], activation: str, **kwargs):
        super().__init__(**kwargs)
        if len(kernel_size) == 3 and kernel_size[0] != 1:
            raise ValueError(f"a temporal kernel size other than 1 is not supported: {kernel_size}")
        self.kernel = self.add_weight(shape=(*kernel_size, in_channels, filters),
                                      initializer=keras.initializers.GlorotUniform(), name="kernel")
        self.bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, center=True, scale=True,
                                                  synchronized=True, dtype=self.dtype_policy, name="bn")
        self.bn.build((None,) * len(kernel_size) + (None, filters))
        self.activation = _activation(activation)
        self.built = True

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        x, kernel = tf.cast(x, self.compute_dtype), tf.cast(self.kernel, self.compute_dtype)
        if len(kernel.shape) == 5:
            y = per_frame(lambda frames: reflect_conv(frames, kernel[0]), x)
        else:
            y = reflect_conv(x, kernel)
        return self.activation(self.bn(y, training=training))


def make_cell(params: ModelParams, input_channels: int, name: str, dtype=None) -> ConvGRUCell | ConvLSTMCell:
    """The ConvGRU or ConvLSTM cell that ``params`` describe, reading ``input_channels`` (``dtype``: a Keras dtype
    policy, default the global one)."""
    common = dict(filters=params.convrnn_filters, kernel_size=params.convrnn_kernel, input_channels=input_channels,
                  normalize=params.convrnn_normalize, name=name, dtype=dtype)
    if params.convcell == "lstm":
        return ConvLSTMCell(peephole=params.peephole, peephole_size=(params.pix10m, params.pix10m), **common)
    return ConvGRUCell(**common)


class ConvRNNLayer(keras.layers.Layer):
    """One original ``convrnn_layer`` (ORIGINAL.md §2.4): optional compression, then a cell run forward and backward.

    Works time-major: ``x`` is (T, B, H, W, C). The backward direction reads each sample's valid prefix reversed
    (``tf.reverse_sequence`` semantics) and its outputs are reversed back. One cell serves both directions unless
    ``separate_weights``. With one cell and ``stack_directions`` (default: when a GPU is visible) both directions
    run as one batch of 2B in a single loop: fewer, larger kernels. Otherwise they run as two independent loops,
    which the CPU executor overlaps (measured faster on CPU). ``recompute``: gradient checkpointing over time
    (see :func:`modelzoo.cells.run_recurrence`).
    """

    def __init__(self, params: ModelParams, input_channels: int, recompute: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.bidirectional = params.bidirectional
        self.swap_memory = params.swap_memory
        self.recompute = recompute
        self.keep_prob = params.recurrent_dropout_i
        self.compression = None
        if params.convrnn_compression_filters > 0:
            self.compression = ConvBNAct(input_channels, params.convrnn_compression_filters, (1, 1, 1),
                                         params.cnn_activation, dtype=self.dtype_policy, name="comp")
            input_channels = params.convrnn_compression_filters
        self.cell_fw = make_cell(params, input_channels, name="fw", dtype=self.dtype_policy)
        self.cell_bw = self.cell_fw
        if self.bidirectional and params.separate_weights:
            self.cell_bw = make_cell(params, input_channels, name="bw", dtype=self.dtype_policy)
        self.seed = keras.random.SeedGenerator() if self.keep_prob < 1.0 else None
        self.stack_directions = bool(tf.config.list_physical_devices("GPU"))
        self.directions = 2 if self.bidirectional else 1
        self.output_channels = self.directions * params.convrnn_filters
        self.built = True

    def call(self, x: tf.Tensor, lengths: tf.Tensor, training: bool = False, with_gates: bool = False):
        """``x`` (T, B, H, W, C), ``lengths`` (B,) → ``(outputs (T, B, H, W, D·F), final (B, H, W, D·F), gates)``.

        ``gates`` is ``{"fw": {name: (T, B, H, W, F)}, "bw": {...}}`` in the original time order (empty dicts
        unless ``with_gates``).
        """
        if self.compression is not None:
            x = self.compression(x, training=training)
        dropout = training and self.keep_prob < 1.0
        if not self.bidirectional:
            out, state, gates = self._run(self.cell_fw, self._project(self.cell_fw, x, dropout), lengths, dropout,
                                          with_gates)
            return out, self.cell_fw.feature(state), {"fw": gates}

        def reverse(tensor):
            return reverse_valid_steps(tensor, lengths)

        in_fw = self._project(self.cell_fw, x, dropout)
        if dropout or self.cell_bw is not self.cell_fw:  # dropout: independent masks, as two TF1 DropoutWrappers
            in_bw = self._project(self.cell_bw, reverse(x), dropout)
        else:  # the projection commutes with the per-frame time reversal: project (or take the frames) once
            in_bw = reverse(in_fw)
        if self.cell_bw is self.cell_fw and self.stack_directions:
            batch = tf.shape(x)[1]
            out, state, gates = self._run(self.cell_fw, tf.concat([in_fw, in_bw], axis=1),
                                          tf.concat([lengths, lengths], axis=0), dropout, with_gates)
            out_fw, out_bw = out[:, :batch], out[:, batch:]
            state_fw, state_bw = tuple(s[:batch] for s in state), tuple(s[batch:] for s in state)
            gates_fw = {name: g[:, :batch] for name, g in gates.items()}
            gates_bw = {name: g[:, batch:] for name, g in gates.items()}
        else:
            out_fw, state_fw, gates_fw = self._run(self.cell_fw, in_fw, lengths, dropout, with_gates)
            out_bw, state_bw, gates_bw = self._run(self.cell_bw, in_bw, lengths, dropout, with_gates)
        outputs = tf.concat([out_fw, reverse(out_bw)], axis=-1)
        final = tf.concat([self.cell_fw.feature(state_fw), self.cell_bw.feature(state_bw)], axis=-1)
        return outputs, final, {"fw": gates_fw, "bw": {name: reverse(g) for name, g in gates_bw.items()}}

    def _project(self, cell, x: tf.Tensor, dropout: bool) -> tf.Tensor:
        """The loop inputs of the frames ``x`` (T, N, H, W, C), with input dropout if asked: the cell's input
        projection of every frame, or with ``recompute`` the frames themselves (every step projects its own)."""
        if dropout:
            x = keras.random.dropout(x, 1.0 - self.keep_prob, seed=self.seed)
        return x if self.recompute else per_frame(cell.input_projection, x)

    def _run(self, cell, projections: tf.Tensor, lengths: tf.Tensor, dropout: bool, with_gates: bool):
        masks = None
        if dropout:
            shape = tf.concat([tf.shape(projections)[:-1], [cell.filters]], axis=0)
            masks = keras.random.dropout(tf.ones(shape, dtype=cell.state_dtype), 1.0 - self.keep_prob,
                                         seed=self.seed)
        return run_recurrence(cell, projections, lengths, masks, with_gates, self.swap_memory, self.recompute)


@keras.saving.register_keras_serializable(package="mtlcc")
class SequentialEncoder(keras.Model):
    """The MTLCC network: ``model(batch, training)`` → logits (B, H, W, num_classes).

    ``batch`` is the pipeline's dict (``x10``, ``x20``, ``x60``, ``doy``, ``year``; other keys are ignored). The
    spatial size is free: the same weights run on 24 and 48 px tiles (unless LSTM peepholes fix it to ``pix10m``).

    Runtime options that leave the weights unchanged: ``dtype`` (a Keras dtype policy such as ``"mixed_float16"``:
    convolutions in float16/bfloat16; input preparation, norm statistics, recurrent state and logits float32) and
    ``recompute`` (gradient checkpointing over time, for long sequences).
    """

    def __init__(self, params: ModelParams | Mapping[str, object], recompute: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.params = params if isinstance(params, ModelParams) else ModelParams.from_mapping(params)
        self.recompute = recompute
        channels = self.params.input_channels
        for index in range(1, self.params.convrnn_layers + 1):
            # attributes, not a list: tf.train.Checkpoint tracks only attributes of Keras layers
            layer = ConvRNNLayer(self.params, channels, recompute, dtype=self.dtype_policy, name=f"convrnn{index}")
            setattr(self, f"convrnn{index}", layer)
            channels = layer.output_channels
        features = sum(layer.output_channels for layer in self.rnn_layers)
        self.head = ConvBNAct(features, self.params.num_classes, self.params.classkernel, self.params.cnn_activation,
                              dtype=self.dtype_policy, name="class")
        self.built = True

    @property
    def rnn_layers(self) -> list[ConvRNNLayer]:
        """The ConvRNN layers, first to last."""
        return [getattr(self, f"convrnn{index}") for index in range(1, self.params.convrnn_layers + 1)]

    @property
    def batch_norms(self) -> list[keras.layers.BatchNormalization]:
        """Every batch norm of the network, input to output: the compression blocks' (if any), then the head's."""
        return [layer.compression.bn for layer in self.rnn_layers if layer.compression is not None] + [self.head.bn]

    def get_config(self) -> dict:
        return {**super().get_config(), "params": self.params.as_dict(), "recompute": self.recompute}

    @classmethod
    def from_config(cls, config: dict) -> SequentialEncoder:
        return cls(**config)

    def prepare_inputs(self, batch: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """The network input ``x`` (B, T, H, W, 15) and the sequence lengths (B,) of a batch (ORIGINAL.md §1.13–1.14).

        x20 and x60 are resized to the x10 grid with legacy bilinear sampling; doy and year become constant
        planes; the channel order is x10, x20, x60, doy, year. The sequence length is the number of steps with
        ``doy > 0`` (the original counted the steps whose top-left pixel of band 0 was > 0).
        """
        missing = [key for key in FEATURE_KEYS if key not in batch]
        if missing:
            raise UserError(f"model input: batch has no {', '.join(missing)}")
        x10, x20, x60, doy, year = (tf.cast(batch[key], tf.float32) for key in FEATURE_KEYS)
        p = self.params
        for key, tensor, bands in (("x10", x10, p.num_bands_10m), ("x20", x20, p.num_bands_20m),
                                   ("x60", x60, p.num_bands_60m)):
            if tensor.shape.rank != 5 or tensor.shape[-1] not in (None, bands):
                raise UserError(f"model input: {key} has shape {tensor.shape}, expected (B, T, H, W, {bands}) "
                                f"(--num_bands_{key[1:]}m)")
        shape = tf.shape(x10)
        height, width = shape[2], shape[3]
        if p.peephole and p.convcell == "lstm" and x10.shape[2:4] not in ((p.pix10m, p.pix10m), (None, None)):
            raise UserError(f"model input: the peephole weights fix the tile to {p.pix10m} px (--pix10m), "
                            f"got x10 of shape {x10.shape}")
        planes = tf.ones(tf.stack([shape[0], shape[1], height, width, 1]), dtype=x10.dtype)
        x = tf.concat([x10, resize_legacy_bilinear(x20, height, width), resize_legacy_bilinear(x60, height, width),
                       doy[:, :, None, None, None] * planes, year[:, :, None, None, None] * planes], axis=-1)
        lengths = tf.reduce_sum(tf.cast(doy > 0, tf.int32), axis=1)
        return x, lengths

    def _encode(self, batch, training: bool, gates_of: int | None = None):
        x, lengths = self.prepare_inputs(batch)
        layer_input = tf.transpose(x, [1, 0, 2, 3, 4])  # time-major inside the encoder
        outputs, finals = [], []
        for index, layer in enumerate(self.rnn_layers, start=1):
            traced = index == gates_of
            out, final, gates = layer(layer_input, lengths, training=training, with_gates=traced)
            outputs.append(out)
            finals.append(final)
            if traced:
                break
            layer_input = out
        return x, lengths, outputs, finals, gates

    def call(self, batch: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Logits (B, H, W, num_classes), float32: batch norm and (leaky) ReLU applied, as in the original."""
        _, _, _, finals, _ = self._encode(batch, training)
        return tf.cast(self.head(tf.concat(finals, axis=-1), training=training), tf.float32)

    def encode(self, batch: Mapping[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        """``x`` (B, T, H, W, 15), ``sequence_lengths`` (B,), ``outputs`` (B, T, H, W, D·F·L: every layer's
        outputs, forward then backward per layer) and ``final_states`` (B, H, W, D·F·L: GRU h, LSTM c)."""
        x, lengths, outputs, finals, _ = self._encode(batch, training)
        outputs = tf.transpose(tf.concat(outputs, axis=-1), [1, 0, 2, 3, 4])
        return {"x": x, "sequence_lengths": lengths, "outputs": outputs, "final_states": tf.concat(finals, axis=-1)}

    def trace(self, batch: Mapping[str, tf.Tensor], layer: int = 1) -> dict[str, dict[str, tf.Tensor]]:
        """Per-date gates of ConvRNN layer ``layer`` (inference mode), computed by the model's own cell code.

        Returns ``{"fw": {name: (B, T, H, W, F)}, "bw": {...}}`` ("bw" only when bidirectional), in the original
        time order, zeros on padded steps. GRU: r, u, candidate (after tanh), h. LSTM: i, f, o (after the
        sigmoid; f includes the forget bias), j (after its norm, before tanh), c (normalised, as carried), h.
        """
        if not 1 <= layer <= len(self.rnn_layers):
            raise UserError(f"trace: layer {layer} does not exist (the model has {len(self.rnn_layers)})")
        *_, gates = self._encode(batch, training=False, gates_of=layer)
        return {direction: {name: tf.transpose(g, [1, 0, 2, 3, 4]) for name, g in values.items()}
                for direction, values in gates.items()}

    def named_variables(self) -> dict[str, keras.Variable]:
        """Every weight by its ORIGINAL TF1 variable name (ORIGINAL.md §2.12), e.g.
        ``convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel`` or ``class/bn/moving_mean``."""
        names = {}
        for index, layer in enumerate(self.rnn_layers, start=1):
            scope = f"convrnn{index}"
            if layer.compression is not None:
                names[f"{scope}/comp/conv3d/kernel"] = layer.compression.kernel
                names.update({f"{scope}/comp/bn/{k}": v for k, v in _bn_variables(layer.compression.bn).items()})
            if layer.bidirectional:
                cells = {f"{scope}/bidirectional_rnn/fw": layer.cell_fw}
                if layer.cell_bw is not layer.cell_fw:
                    cells[f"{scope}/bidirectional_rnn/bw"] = layer.cell_bw
            else:
                cells = {f"{scope}/rnn": layer.cell_fw}
            for prefix, cell in cells.items():
                names.update({f"{prefix}/{cell.tf1_scope}/{k}": v for k, v in cell.tf1_variables().items()})
        names["class/conv2d/kernel"] = self.head.kernel
        names.update({f"class/bn/{k}": v for k, v in _bn_variables(self.head.bn).items()})
        return names


def dtype_policy(mixed_precision: str | None) -> keras.DTypePolicy:
    """The Keras dtype policy of a ``--mixed_precision`` value: none (float32), mixed_float16 or mixed_bfloat16."""
    name = mixed_precision or "none"
    if name not in MIXED_PRECISION:
        raise UserError(f"--mixed_precision: {name!r} is not one of {', '.join(MIXED_PRECISION)}")
    return keras.DTypePolicy("float32" if name == "none" else name)


def build_model(params: ModelParams, mixed_precision: str | None = None, recompute: bool = False
                ) -> SequentialEncoder:
    """The network of ``params`` with all variables created (freshly initialised, float32).

    ``mixed_precision`` (none, mixed_float16, mixed_bfloat16) and ``recompute`` (gradient checkpointing over time)
    are runtime options: they change neither the variables nor ``params.ini``.
    """
    return SequentialEncoder(params, recompute=recompute, dtype=dtype_policy(mixed_precision), name="mtlcc")


def per_pixel_xe(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy per pixel (B, H, W) against class index − 1; 0 where the class index is 0 (unknown)."""
    labels = tf.cast(labels, tf.int32)
    xe = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels - 1, 0),
                                                        logits=tf.cast(logits, tf.float32))
    return tf.where(labels > 0, xe, tf.zeros_like(xe))


def masked_xe_sum(labels: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(sum of the cross-entropy over the valid pixels, number of valid pixels), both float32."""
    return tf.reduce_sum(per_pixel_xe(labels, logits)), tf.reduce_sum(tf.cast(labels > 0, tf.float32))


def masked_correct(labels: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(number of valid pixels whose arg-max logit is class index − 1, number of valid pixels), both float32."""
    labels = tf.cast(labels, tf.int32)
    correct = tf.logical_and(labels > 0, tf.argmax(logits, axis=-1, output_type=tf.int32) == labels - 1)
    return tf.reduce_sum(tf.cast(correct, tf.float32)), tf.reduce_sum(tf.cast(labels > 0, tf.float32))


def masked_xe_mean(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The training loss: mean cross-entropy over the valid pixels of the whole batch; 0 when there are none."""
    return tf.math.divide_no_nan(*masked_xe_sum(labels, logits))


def make_optimizer(params: ModelParams, mixed_precision: str | None = None) -> keras.optimizers.Optimizer:
    """Adam with the original's settings (default lr 0.01, ε 0.9). Keras' update uses the same "ε-hat" form as TF1:
    ``θ −= lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε)``.

    With ``mixed_precision="mixed_float16"`` it is wrapped in a dynamic ``LossScaleOptimizer``: a training step
    computes the gradients of ``optimizer.scale_loss(loss)`` (the loss itself for the other settings) and
    ``apply_gradients`` unscales them and skips steps with non-finite gradients. Build it
    (``optimizer.build(variables)``) before tracing a step, so that the traced step reads the current loss scale.
    """
    adam = keras.optimizers.Adam(learning_rate=params.learning_rate, beta_1=params.beta1, beta_2=params.beta2,
                                 epsilon=params.epsilon)
    if dtype_policy(mixed_precision).compute_dtype == "float16":
        return keras.optimizers.LossScaleOptimizer(adam)
    return adam


def model_summary(model: SequentialEncoder) -> str:
    """A readable listing: every variable's TF1 name, shape and size, then the trainable and other totals."""
    rows = [(name, "x".join(map(str, var.shape)), f"{int(tf.size(var)):,}", "" if var.trainable else "(not trainable)")
            for name, var in model.named_variables().items()]
    width = [max(len(row[k]) for row in rows) for k in range(3)]
    trainable = sum(int(tf.size(v)) for v in model.trainable_variables)
    other = sum(int(tf.size(v)) for v in model.named_variables().values() if not v.trainable)
    p = model.params
    lines = [f"MTLCC sequential encoder: conv{p.convcell} F={p.convrnn_filters}, {p.convrnn_layers} layer(s), "
             f"{'bidirectional' if p.bidirectional else 'forward only'}"
             f"{', separate fw/bw weights' if p.bidirectional and p.separate_weights else ''}, "
             f"{p.num_classes} classes",
             ""]
    lines += [f"{n:<{width[0]}}  {s:>{width[1]}}  {c:>{width[2]}}  {t}".rstrip() for n, s, c, t in rows]
    lines += ["", f"trainable parameters: {trainable:,}", f"non-trainable parameters: {other:,}"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Write a model folder: ``params.ini`` and ``model.txt``."""
    parser = ArgumentParser(description="Define an MTLCC network: write params.ini and model.txt into "
                                         "--modelfolder (weights are written by init_graph.py or train.py).")
    add_model_arguments(parser)
    params = params_from_args(parser.parse_args(argv))
    if params.modelfolder is None:
        raise UserError("--modelfolder is required")
    folder = Path(params.modelfolder)
    model = build_model(params)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_params_ini(folder / PARAMS_FILENAME, params)
        summary = model_summary(model)
        with atomic_file(folder / SUMMARY_FILENAME) as tmp:
            tmp.write_text(summary)
    except OSError as err:
        raise UserError(f"{folder}: cannot write the model folder ({err.strerror or err})") from None
    print(summary.splitlines()[0])
    print(f"wrote {folder / PARAMS_FILENAME} and {folder / SUMMARY_FILENAME} "
          f"({sum(int(tf.size(v)) for v in model.trainable_variables):,} trainable parameters)")


if __name__ == "__main__":
    run(main)
