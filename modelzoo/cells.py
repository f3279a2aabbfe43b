"""The recurrent cells of MTLCC (``tensorflow-convlstm-cell/cell.py``, ORIGINAL.md §2.3) as Keras layers, channels-last.

Every spatial convolution REFLECT-pads H and W by ``k // 2`` and then convolves VALID, without bias when the cell
is layer-normalised. Kernels keep the original layout (input channels first, then the state channels), so TF1
checkpoints load 1:1.

A cell is used in two parts, which together equal the original ``call``:

- :meth:`input_projection` convolves the input frames with the input rows of the kernels (plus the biases). The
  convolution is linear and the reflect padding is per channel, so ``conv([x, h], K) = conv(x, K_x) + conv(h, K_h)``;
  the input part of every step is computed for all frames at once, outside the time loop.
- :meth:`step` adds the state part and applies the gates. It optionally returns the gates, so that tools that show
  per-date activations use this very code.

:func:`run_recurrence` runs a cell over a sequence in one graph loop with the semantics of TF1 ``dynamic_rnn``.

Mixed precision (a Keras ``mixed_float16`` / ``mixed_bfloat16`` dtype policy): the convolutions run in the
policy's compute dtype; their sums are cast to float32 before the layer norms, so the norm statistics, the gate
nonlinearities and the carried state stay in float32 (``state_dtype``), like every variable.
"""

from __future__ import annotations

import keras
import tensorflow as tf

LAYER_NORM_EPSILON = 1e-12


def reflect_pad(x: tf.Tensor, kernel_size: tuple[int, int]) -> tf.Tensor:
    """REFLECT-pad H and W of ``x`` (N, H, W, C) by ``k // 2`` (the edge pixel is not repeated)."""
    ph, pw = kernel_size[0] // 2, kernel_size[1] // 2
    if ph == 0 and pw == 0:
        return x
    return tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode="REFLECT")


def reflect_conv(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Reflect padding, then a VALID stride-1 convolution with ``kernel`` (kh, kw, in, out): same H and W out."""
    return tf.nn.conv2d(reflect_pad(x, kernel.shape[:2]), kernel, strides=1, padding="VALID")


def norm_weights(norms: tuple[LayerNorm, ...], shifts: tuple[float, ...] | None = None
                 ) -> tuple[tf.Tensor, tf.Tensor]:
    """``(gamma, beta)`` of k layer norms stacked to (k, F); ``shifts`` are constants added to the betas."""
    gamma = tf.stack([tf.convert_to_tensor(norm.gamma) for norm in norms])
    beta = tf.stack([tf.convert_to_tensor(norm.beta) for norm in norms])
    if shifts is not None:
        beta += tf.constant(shifts, dtype=beta.dtype)[:, None]
    return gamma, beta


def layer_norm_groups(x: tf.Tensor, norms: tuple[LayerNorm, ...], shifts: tuple[float, ...] | None = None
                      ) -> tf.Tensor:
    """Layer-normalise ``x`` (N, H, W, k·F), whose k consecutive F-channel groups each have their own norm.

    Equals ``concat([norms[g](x_g) + shifts[g] for g])`` computed in one pass: statistics per sample and group over
    (H, W, F); ``shifts`` are constants added to the groups' ``beta`` (the LSTM's forget bias).
    """
    return normalize_groups(x, *norm_weights(norms, shifts))


def normalize_groups(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) -> tf.Tensor:
    """:func:`layer_norm_groups` with the stacked weights of :func:`norm_weights`: k = ``gamma.shape[0]`` groups.

    Computed and returned in the dtype of ``gamma`` (float32), whatever the dtype of ``x``.
    """
    x = tf.cast(x, gamma.dtype)
    shape = tf.shape(x)
    grouped = tf.reshape(x, tf.concat([shape[:-1], tf.shape(gamma)], axis=0))
    mean, variance = tf.nn.moments(grouped, axes=[1, 2, 4], keepdims=True)
    normalised = tf.nn.batch_normalization(grouped, mean, variance, beta, gamma, LAYER_NORM_EPSILON)
    return tf.reshape(normalised, shape)


class LayerNorm(keras.layers.Layer):
    """TF1.7 ``tf.contrib.layers.layer_norm``: per sample over (H, W, C), ε 1e-12, ``gamma``/``beta`` of shape [C].

    Always float32 (its variables are never cast to a mixed-precision compute dtype).
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.channels = channels
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma", autocast=False)
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta", autocast=False)
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return normalize_groups(x, *norm_weights((self,)))


class _ConvRNNCell(keras.layers.Layer):
    """What both cells share: sizes, kernel creation, dtypes and the zero state."""

    tf1_scope: str  # the cell's variable scope in TF1 checkpoints
    gate_names: tuple[str, ...]  # keys of the gates returned by ``step(..., with_gates=True)``
    state_names: tuple[str, ...]  # the state tuple's components
    dropped_state: str  # the state component that ``recurrent_dropout_i`` drops (TF1 ``DropoutWrapper``)
    feature_state: str  # the state component that becomes the final feature map

    def __init__(self, filters: int, kernel_size: tuple[int, int], input_channels: int, normalize: bool, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = tuple(kernel_size)
        self.input_channels = input_channels
        self.normalize = normalize

    @property
    def state_dtype(self) -> str:
        """The dtype of the state, the gates and the outputs: float32 (the variables' dtype), also under mixed
        precision."""
        return self.variable_dtype

    def _kernel(self, name: str, outputs: int) -> keras.Variable:
        shape = (*self.kernel_size, self.input_channels + self.filters, outputs)
        return self.add_weight(shape=shape, initializer=keras.initializers.GlorotUniform(), name=name)

    def _input_rows(self, kernel: keras.Variable) -> tf.Tensor:
        return tf.cast(kernel[:, :, : self.input_channels, :], self.compute_dtype)

    def _state_rows(self, kernel: keras.Variable) -> tf.Tensor:
        return tf.cast(kernel[:, :, self.input_channels :, :], self.compute_dtype)

    def _state_conv(self, state: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """The convolution of a state tensor with state rows of a kernel, in the compute dtype."""
        return reflect_conv(tf.cast(state, self.compute_dtype), kernel)

    def _input_conv(self, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """The convolution of input frames with input rows of a kernel, in the compute dtype."""
        return reflect_conv(tf.cast(x, self.compute_dtype), kernel)

    def _float(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, self.state_dtype)

    def input_weights(self) -> dict[str, tf.Tensor]:
        """The weights of :meth:`input_projection` as tensors in the compute dtype: ``kernel`` (the input rows of
        the kernels) and, without normalisation, ``bias``."""
        raise NotImplementedError

    def input_projection(self, x: tf.Tensor, weights: dict[str, tf.Tensor] | None = None) -> tf.Tensor:
        """The input part of the cell's convolutions: (N, H, W, C) → (N, H, W, G) in the compute dtype (GRU: G = 3F,
        gates then candidate; LSTM: G = 4F). ``weights``: :meth:`input_weights` (read from the variables when None).
        """
        weights = self.input_weights() if weights is None else weights
        projection = self._input_conv(x, weights["kernel"])
        return projection + weights["bias"] if "bias" in weights else projection

    def zero_state(self, batch: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The initial state: zeros of shape (batch, height, width, filters) per component, in ``state_dtype``."""
        zeros = tf.zeros(tf.stack([batch, height, width, self.filters]), dtype=self.state_dtype)
        return tuple(zeros for _ in self.state_names)

    def feature(self, state: tuple[tf.Tensor, ...]) -> tf.Tensor:
        """The component of ``state`` that the classifier reads (GRU h, LSTM c)."""
        return state[self.state_names.index(self.feature_state)]


class ConvGRUCell(_ConvRNNCell):
    """ConvGRU: ``r, u = σ(LN(conv([x, h])))``; ``c̃ = tanh(LN(conv([x, r⊙h])))``; ``h = u⊙h + (1−u)⊙c̃``.

    Without normalisation the convolutions get biases instead (gates initialised to ones, candidate to zeros).
    """

    tf1_scope = "conv_gru_cell"
    gate_names = ("r", "u", "candidate", "h")
    state_names = ("h",)
    dropped_state = "h"
    feature_state = "h"

    def __init__(self, filters: int, kernel_size: tuple[int, int] = (3, 3), input_channels: int = 15,
                 normalize: bool = True, **kwargs):
        super().__init__(filters, kernel_size, input_channels, normalize, **kwargs)
        self.gates_kernel = self._kernel("gates_kernel", 2 * filters)
        self.candidate_kernel = self._kernel("candidate_kernel", filters)
        if normalize:
            self.reset_norm = LayerNorm(filters, name="gates_layer_norm")
            self.update_norm = LayerNorm(filters, name="gates_layer_norm_1")
            self.candidate_norm = LayerNorm(filters, name="candidate_layer_norm")
        else:
            self.gates_bias = self.add_weight(shape=(2 * filters,), initializer="ones", name="gates_bias")
            self.candidate_bias = self.add_weight(shape=(filters,), initializer="zeros", name="candidate_bias")
        self.built = True

    def input_weights(self) -> dict[str, tf.Tensor]:
        """The input rows of the gate and candidate kernels side by side (and their biases without normalisation)."""
        weights = {"kernel": tf.concat([self._input_rows(self.gates_kernel), self._input_rows(self.candidate_kernel)],
                                       axis=-1)}
        if not self.normalize:
            weights["bias"] = tf.cast(tf.concat([self.gates_bias, self.candidate_bias], axis=0), self.compute_dtype)
        return weights

    def state_kernels(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The state rows of the gate and candidate kernels, as :meth:`step` takes them (sliced once per loop)."""
        return self._state_rows(self.gates_kernel), self._state_rows(self.candidate_kernel)

    def step_weights(self) -> dict[str, tf.Tensor]:
        """The other weights :meth:`step` reads, as tensors: the stacked layer-norm weights (none without norms)."""
        if not self.normalize:
            return {}
        gates, candidate = norm_weights((self.reset_norm, self.update_norm)), norm_weights((self.candidate_norm,))
        return {"gates_norm": gates, "candidate_norm": candidate}

    def step(self, projection: tf.Tensor, state: tuple[tf.Tensor], kernels: tuple[tf.Tensor, tf.Tensor] | None,
             with_gates: bool = False, weights: dict[str, tf.Tensor] | None = None):
        """One time step from the input projection, the state ``(h,)``, :meth:`state_kernels` and
        :meth:`step_weights` (read from the variables when None).

        ``kernels=None`` declares the state zero (the first step): the recurrent convolutions are skipped.
        Returns ``(output, new state, gates)``; ``gates`` is empty unless ``with_gates``.
        """
        weights = self.step_weights() if weights is None else weights
        (h,) = state
        x_gates, x_candidate = tf.split(projection, [2 * self.filters, self.filters], axis=-1)
        gates = self._float(x_gates if kernels is None else x_gates + self._state_conv(h, kernels[0]))
        if self.normalize:
            gates = normalize_groups(gates, *weights["gates_norm"])
        r, u = tf.split(tf.sigmoid(gates), 2, axis=-1)
        candidate = self._float(x_candidate if kernels is None else x_candidate + self._state_conv(r * h, kernels[1]))
        if self.normalize:
            candidate = normalize_groups(candidate, *weights["candidate_norm"])
        candidate = tf.tanh(candidate)
        h = u * h + (1.0 - u) * candidate
        values = {"r": r, "u": u, "candidate": candidate, "h": h} if with_gates else {}
        return h, (h,), values

    def tf1_variables(self) -> dict[str, keras.Variable]:
        """The cell's variables by their names inside the TF1 cell scope."""
        if self.normalize:
            norms = {"gates/LayerNorm": self.reset_norm, "gates/LayerNorm_1": self.update_norm,
                     "candidate/LayerNorm": self.candidate_norm}
            extra = {f"{scope}/{part}": getattr(norm, part) for scope, norm in norms.items()
                     for part in ("beta", "gamma")}
        else:
            extra = {"gates/bias": self.gates_bias, "candidate/bias": self.candidate_bias}
        return {"gates/kernel": self.gates_kernel, "candidate/kernel": self.candidate_kernel, **extra}


class ConvLSTMCell(_ConvRNNCell):
    """ConvLSTM with the original's j, i, f, o split, forget bias and layer norms on j, i, f, o and c.

    ``f = σ(LN(f)+1)``, ``i = σ(LN(i))``, ``c = LN(c⊙f + i⊙tanh(LN(j)))`` (the normalised c is carried),
    ``h = σ(LN(o))⊙tanh(c)``. Peepholes ``W_ci``, ``W_cf`` (added to i, f before their norms, with the old c) and
    ``W_co`` (added to o with the new c, before normalisation) have shape (H, W, F): they fix the tile size.
    Without normalisation the convolution gets a bias (zeros) instead of the norms.
    """

    tf1_scope = "conv_lstm_cell"
    gate_names = ("i", "j", "f", "o", "c", "h")
    state_names = ("c", "h")
    dropped_state = "h"
    feature_state = "c"

    def __init__(self, filters: int, kernel_size: tuple[int, int] = (3, 3), input_channels: int = 15,
                 normalize: bool = True, peephole: bool = False, peephole_size: tuple[int, int] = (24, 24),
                 forget_bias: float = 1.0, **kwargs):
        super().__init__(filters, kernel_size, input_channels, normalize, **kwargs)
        self.peephole = peephole
        self.forget_bias = forget_bias
        self.kernel = self._kernel("kernel", 4 * filters)
        if not normalize:
            self.bias = self.add_weight(shape=(4 * filters,), initializer="zeros", name="bias")
        if peephole:  # they act on the float32 state
            shape = (*peephole_size, filters)
            glorot = keras.initializers.GlorotUniform()
            self.w_ci, self.w_cf, self.w_co = (self.add_weight(shape=shape, initializer=glorot, name=name,
                                                               autocast=False) for name in ("W_ci", "W_cf", "W_co"))
        if normalize:  # attributes, not a list: tf.train.Checkpoint tracks only attributes of Keras layers
            self.norm_j, self.norm_i, self.norm_f, self.norm_o, self.norm_c = (
                LayerNorm(filters, name=f"layer_norm{suffix}") for suffix in ("", "_1", "_2", "_3", "_4"))
        self.built = True

    @property
    def norms(self) -> tuple[LayerNorm, ...]:
        """The layer norms of j, i, f, o and c (TF1 scopes ``LayerNorm`` … ``LayerNorm_4``)."""
        return (self.norm_j, self.norm_i, self.norm_f, self.norm_o, self.norm_c)

    def input_weights(self) -> dict[str, tf.Tensor]:
        """The input rows of the kernel; without normalisation also the bias plus the forget bias (added to f before
        its sigmoid)."""
        weights = {"kernel": self._input_rows(self.kernel)}
        if not self.normalize:
            f = self.filters
            forget = tf.concat([tf.zeros([2 * f]), tf.fill([f], self.forget_bias), tf.zeros([f])], axis=0)
            weights["bias"] = tf.cast(tf.cast(self.bias, tf.float32) + forget, self.compute_dtype)
        return weights

    def state_kernels(self) -> tuple[tf.Tensor]:
        """The state rows of the kernel, as :meth:`step` takes them (sliced once per loop)."""
        return (self._state_rows(self.kernel),)

    def step_weights(self) -> dict[str, tf.Tensor]:
        """The other weights :meth:`step` reads, as tensors: the stacked layer-norm weights (the forget bias in f's
        beta) and the peepholes."""
        weights = {}
        if self.normalize:
            weights["jif_norm"] = norm_weights((self.norm_j, self.norm_i, self.norm_f), (0.0, 0.0, self.forget_bias))
            weights["o_norm"], weights["c_norm"] = norm_weights((self.norm_o,)), norm_weights((self.norm_c,))
        if self.peephole:
            weights.update(w_ci=tf.convert_to_tensor(self.w_ci), w_cf=tf.convert_to_tensor(self.w_cf),
                           w_co=tf.convert_to_tensor(self.w_co))
        return weights

    def step(self, projection: tf.Tensor, state: tuple[tf.Tensor, tf.Tensor], kernels: tuple[tf.Tensor] | None,
             with_gates: bool = False, weights: dict[str, tf.Tensor] | None = None):
        """One time step from the input projection, the state ``(c, h)``, :meth:`state_kernels` and
        :meth:`step_weights` (read from the variables when None).

        ``kernels=None`` declares the state zero (the first step): the recurrent convolution is skipped.
        Returns ``(output, new state, gates)``; ``gates`` is empty unless ``with_gates``.
        """
        weights = self.step_weights() if weights is None else weights
        c, h = state
        gates = self._float(projection if kernels is None else projection + self._state_conv(h, kernels[0]))
        if self.peephole:
            j, i, f, o = tf.split(gates, 4, axis=-1)
            jif = tf.concat([j, i + weights["w_ci"] * c, f + weights["w_cf"] * c], axis=-1)
        else:
            jif, o = tf.split(gates, [3 * self.filters, self.filters], axis=-1)
        if self.normalize:  # the forget bias rides on f's offset (without norms it is in the projection)
            jif = normalize_groups(jif, *weights["jif_norm"])
        j, i, f = tf.split(jif, 3, axis=-1)
        f = tf.sigmoid(f)
        i = tf.sigmoid(i)
        c = c * f + i * tf.tanh(j)
        if self.peephole:
            o += weights["w_co"] * c
        if self.normalize:
            o = normalize_groups(o, *weights["o_norm"])
            c = normalize_groups(c, *weights["c_norm"])
        o = tf.sigmoid(o)
        h = o * tf.tanh(c)
        values = {"i": i, "j": j, "f": f, "o": o, "c": c, "h": h} if with_gates else {}
        return h, (c, h), values

    def tf1_variables(self) -> dict[str, keras.Variable]:
        """The cell's variables by their names inside the TF1 cell scope."""
        names = {"kernel": self.kernel}
        if not self.normalize:
            names["bias"] = self.bias
        if self.peephole:
            names.update({"W_ci": self.w_ci, "W_cf": self.w_cf, "W_co": self.w_co})
        if self.normalize:
            for index, norm in enumerate(self.norms):
                scope = "LayerNorm" if index == 0 else f"LayerNorm_{index}"
                names.update({f"{scope}/beta": norm.beta, f"{scope}/gamma": norm.gamma})
        return names


def reverse_valid_steps(x: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """``tf.reverse_sequence(x, lengths, seq_axis=0, batch_axis=1)`` for time-major ``x`` (T, B, ...).

    Reverses the first ``lengths[b]`` steps of every sample and leaves the later (padded) steps in place. It is a
    gather of whole frames (the CPU kernel of ``tf.reverse_sequence`` is about ten times slower); the permutation
    is its own inverse, so the gradient is the same gather.
    """
    shape = tf.shape(x)
    steps, batch = shape[0], shape[1]
    t = tf.range(steps)[:, None]
    source = tf.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B): source step of every frame
    rows = tf.reshape(source * batch + tf.range(batch)[None, :], [-1])

    @tf.custom_gradient
    def permute(frames):
        def gather(values):
            flat = tf.reshape(values, tf.concat([[-1], shape[2:]], axis=0))
            return tf.reshape(tf.gather(flat, rows), shape)

        return gather(frames), gather

    return permute(x)


def run_recurrence(cell: ConvGRUCell | ConvLSTMCell, inputs: tf.Tensor, lengths: tf.Tensor,
                   state_masks: tf.Tensor | None = None, with_gates: bool = False, swap_memory: bool = True,
                   recompute: bool = False):
    """Run ``cell`` over time-major inputs with TF1 ``dynamic_rnn`` semantics.

    ``inputs`` are the input projections (T, N, H, W, G) of the frames (:meth:`input_projection`, computed for all
    frames at once outside the loop), or with ``recompute`` the frames (T, N, H, W, C) themselves.

    Sample n takes steps ``t < lengths[n]``; later steps output zeros and leave the state unchanged. The state
    starts at zero. ``state_masks`` (T, N, H, W, F), when given, multiplies the cell's ``dropped_state`` after every
    step (recurrent dropout). The loop runs ``max(lengths)`` steps (at least one).

    ``recompute`` (gradient checkpointing over time): every step projects its own frame, and the backward pass
    recomputes the step from its frame and state instead of keeping its intermediate activations: same results,
    the memory of the frames and states only, one more forward pass of the loop. With ``with_gates`` (inspection)
    the steps are not checkpointed.

    Returns ``(outputs (T, N, H, W, F), final state tuple, gates {name: (T, N, H, W, F)})`` (gates empty unless
    ``with_gates``; zeros on padded steps like the outputs), in the cell's ``state_dtype``.
    """
    return _recurrence(cell, inputs, lengths, state_masks, with_gates, swap_memory, recompute)


@tf.function(reduce_retracing=True, autograph=False)
def _recurrence(cell, sequence, lengths, state_masks, with_gates, swap_memory, recompute):
    shape = tf.shape(sequence)
    steps, batch, height, width = shape[0], shape[1], shape[2], shape[3]
    # at least one step (a no-op when every length is 0), so that the accumulators have a known element shape
    iterations = tf.clip_by_value(tf.reduce_max(tf.concat([lengths, [0]], axis=0)), 1, steps)
    inputs = tf.TensorArray(sequence.dtype, size=steps, element_shape=sequence.shape[1:]).unstack(sequence)
    masks = None
    if state_masks is not None:
        masks = tf.TensorArray(state_masks.dtype, size=steps, element_shape=state_masks.shape[1:])
        masks = masks.unstack(state_masks)
        dropped = cell.state_names.index(cell.dropped_state)
    names = ("output", *(cell.gate_names if with_gates else ()))
    accumulators = {name: tf.TensorArray(cell.state_dtype, size=iterations) for name in names}

    shortest = tf.reduce_min(lengths)

    # weights read once; the steps take them as tensors (no variable reads inside the loop)
    weights = {"step": cell.step_weights(), **({"input": cell.input_weights()} if recompute else {})}

    def cell_step(value, state, weights, *kernels):  # kernels () on the first step: the state is zero
        projection = cell.input_projection(value, weights["input"]) if recompute else value
        return cell.step(projection, state, kernels or None, with_gates, weights["step"])

    step = cell_step
    if recompute and not with_gates:  # keeps only the step's inputs; the backward pass reruns it under a tape
        checkpointed = tf.recompute_grad(lambda *args: cell_step(*args)[:2])

        def step(*args):
            return (*checkpointed(*args), {})

    def advance(t, state, accumulators, kernels):
        output, new_state, gates = step(inputs.read(t), state, weights, *(kernels or ()))
        if masks is not None:
            new_state = tuple(s * masks.read(t) if k == dropped else s for k, s in enumerate(new_state))
        values = {"output": output, **gates}

        def only_valid():  # steps t >= length: output 0, state unchanged
            valid = tf.reshape(t < lengths, [-1, 1, 1, 1])
            return (tuple(tf.where(valid, new, old) for new, old in zip(new_state, state, strict=True)),
                    {name: tf.where(valid, value, tf.zeros_like(value)) for name, value in values.items()})

        new_state, values = tf.cond(t < shortest, lambda: (new_state, values), only_valid)
        accumulators = {name: acc.write(t, values[name]) for name, acc in accumulators.items()}
        return t + 1, new_state, accumulators

    # step 0 starts from the zero state, whose recurrent convolution is zero: it runs before the loop without it
    first = advance(tf.constant(0), cell.zero_state(batch, height, width), accumulators, None)
    kernels = cell.state_kernels()
    _, state, accumulators = tf.while_loop(lambda t, *_: t < iterations, lambda *loop: advance(*loop, kernels), first,
                                           swap_memory=swap_memory)
    padding = [[0, steps - iterations], [0, 0], [0, 0], [0, 0], [0, 0]]
    stacked = {name: tf.pad(acc.stack(), padding) for name, acc in accumulators.items()}
    return stacked.pop("output"), state, stacked
