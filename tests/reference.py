"""A float64 numpy reference of the MTLCC network, written from docs/ORIGINAL.md (§1.12–1.14, §2.3–2.5), for the tests.

Weights are read by their TF1 names (ORIGINAL.md §2.12), as a TF1 checkpoint would hold them. Everything is computed the
plain way: the convolution on the concatenation ``[x, h]``, one layer norm per gate, a Python loop over time.
"""

from __future__ import annotations

import numpy as np


def reflect_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """REFLECT pad by k//2 then VALID convolution. x (N, H, W, C), kernel (kh, kw, C, O)."""
    kh, kw = kernel.shape[:2]
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="reflect")
    height, width = x.shape[1], x.shape[2]
    out = np.zeros((x.shape[0], height, width, kernel.shape[3]))
    for a in range(kh):
        for b in range(kw):
            out += np.einsum("nhwc,co->nhwo", padded[:, a:a + height, b:b + width, :], kernel[a, b])
    return out


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Per sample over (H, W, C), ε 1e-12, gamma/beta per channel."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def gru_step(x, state, w, normalize=True):
    """The original ConvGRUCell.call; ``w`` maps names inside the cell scope to arrays. Returns (h, (h,), gates)."""
    (h,) = state
    y = reflect_conv(np.concatenate([x, h], axis=-1), w["gates/kernel"])
    if normalize:
        r, u = np.split(y, 2, axis=-1)
        r = layer_norm(r, w["gates/LayerNorm/gamma"], w["gates/LayerNorm/beta"])
        u = layer_norm(u, w["gates/LayerNorm_1/gamma"], w["gates/LayerNorm_1/beta"])
    else:
        r, u = np.split(y + w["gates/bias"], 2, axis=-1)
    r, u = sigmoid(r), sigmoid(u)
    y = reflect_conv(np.concatenate([x, r * h], axis=-1), w["candidate/kernel"])
    if normalize:
        y = layer_norm(y, w["candidate/LayerNorm/gamma"], w["candidate/LayerNorm/beta"])
    else:
        y = y + w["candidate/bias"]
    candidate = np.tanh(y)
    h = u * h + (1 - u) * candidate
    return h, (h,), {"r": r, "u": u, "candidate": candidate, "h": h}


def lstm_step(x, state, w, normalize=True, peephole=False):
    """The original ConvLSTMCell.call (forget bias 1). Returns (h, (c, h), gates)."""
    c, h = state
    y = reflect_conv(np.concatenate([x, h], axis=-1), w["kernel"])
    if not normalize:
        y = y + w["bias"]
    j, i, f, o = np.split(y, 4, axis=-1)
    if peephole:
        i = i + w["W_ci"] * c
        f = f + w["W_cf"] * c
    if normalize:
        j = layer_norm(j, w["LayerNorm/gamma"], w["LayerNorm/beta"])
        i = layer_norm(i, w["LayerNorm_1/gamma"], w["LayerNorm_1/beta"])
        f = layer_norm(f, w["LayerNorm_2/gamma"], w["LayerNorm_2/beta"])
    f = sigmoid(f + 1.0)
    i = sigmoid(i)
    c = c * f + i * np.tanh(j)
    if peephole:
        o = o + w["W_co"] * c
    if normalize:
        o = layer_norm(o, w["LayerNorm_3/gamma"], w["LayerNorm_3/beta"])
        c = layer_norm(c, w["LayerNorm_4/gamma"], w["LayerNorm_4/beta"])
    o = sigmoid(o)
    h = o * np.tanh(c)
    return h, (c, h), {"i": i, "j": j, "f": f, "o": o, "c": c, "h": h}


def dynamic_rnn(step, x, lengths, filters, n_states):
    """TF1 dynamic_rnn: x (N, T, H, W, C); steps t >= length output 0 and copy the state. Returns
    (outputs (N, T, H, W, F), final state tuple, gates {name: (N, T, H, W, F)})."""
    n, steps, height, width = x.shape[:4]
    state = tuple(np.zeros((n, height, width, filters)) for _ in range(n_states))
    outputs = np.zeros((n, steps, height, width, filters))
    gates = {}
    for t in range(steps):
        out, new_state, values = step(x[:, t], state)
        valid = (t < lengths)[:, None, None, None]
        state = tuple(np.where(valid, new, old) for new, old in zip(new_state, state, strict=True))
        outputs[:, t] = np.where(valid, out, 0)
        for name, value in values.items():
            gates.setdefault(name, np.zeros((n, steps, height, width, filters)))[:, t] = np.where(valid, value, 0)
    return outputs, state, gates


def reverse_sequence(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse the first lengths[n] steps of sample n along axis 1."""
    out = x.copy()
    for n, length in enumerate(lengths):
        out[n, :length] = x[n, :length][::-1]
    return out


def resize_legacy_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """TF1 resize_images: bilinear, source coordinate = target coordinate × in/out, clamped at the last pixel.
    images (..., h, w, C)."""
    in_h, in_w = images.shape[-3], images.shape[-2]

    def weights(out_size, in_size):
        src = np.arange(out_size) * (in_size / out_size)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, in_size - 1), src - low

    y0, y1, dy = weights(height, in_h)
    x0, x1, dx = weights(width, in_w)
    rows = images[..., y0, :, :] * (1 - dy)[:, None, None] + images[..., y1, :, :] * dy[:, None, None]
    return rows[..., x0, :] * (1 - dx)[:, None] + rows[..., x1, :] * dx[:, None]


def network_input(batch):
    """x (B, T, H, W, 15) and sequence lengths from a batch dict (ORIGINAL.md §1.13–1.14, length = count of doy > 0)."""
    x10 = np.asarray(batch["x10"], np.float64)
    b, t, h, w = x10.shape[:4]
    x20 = resize_legacy_bilinear(np.asarray(batch["x20"], np.float64), h, w)
    x60 = resize_legacy_bilinear(np.asarray(batch["x60"], np.float64), h, w)
    doy = np.broadcast_to(np.asarray(batch["doy"], np.float64)[:, :, None, None, None], (b, t, h, w, 1))
    year = np.broadcast_to(np.asarray(batch["year"], np.float64)[:, :, None, None, None], (b, t, h, w, 1))
    lengths = (np.asarray(batch["doy"]) > 0).sum(axis=1)
    return np.concatenate([x10, x20, x60, doy, year], axis=-1), lengths


def batch_norm(x, w, prefix, training):
    axes = tuple(range(x.ndim - 1))
    mean, var = (x.mean(axis=axes), x.var(axis=axes)) if training else (w[f"{prefix}/moving_mean"],
                                                                         w[f"{prefix}/moving_variance"])
    return (x - mean) / np.sqrt(var + 1e-3) * w[f"{prefix}/gamma"] + w[f"{prefix}/beta"]


def activation(x, name):
    return np.maximum(x, 0) if name == "relu" else np.where(x > 0, x, 0.2 * x)


def encoder(batch, weights, p, training=False):
    """The bidirectional (or forward) ConvRNN layers: returns (x, lengths, outputs, final_states, gates per layer).

    ``weights`` maps TF1 names to arrays, ``p`` is a ModelParams-like object.
    """
    x, lengths = network_input(batch)
    layer_input, outputs, finals, all_gates = x, [], [], []
    for index in range(1, p.convrnn_layers + 1):
        scope = f"convrnn{index}"
        if p.convrnn_compression_filters > 0:
            y = np.einsum("bthwc,cf->bthwf", layer_input, weights[f"{scope}/comp/conv3d/kernel"][0, 0, 0])
            layer_input = activation(batch_norm(y, weights, f"{scope}/comp/bn", training), p.cnn_activation)
        cell = "conv_lstm_cell" if p.convcell == "lstm" else "conv_gru_cell"
        directions = ["fw", "bw"] if p.bidirectional else [None]
        results = {}
        for direction in directions:
            owner = "bw" if direction == "bw" and p.separate_weights else "fw"
            prefix = f"{scope}/bidirectional_rnn/{owner}/{cell}/" if p.bidirectional else f"{scope}/rnn/{cell}/"
            w = {name[len(prefix):]: value for name, value in weights.items() if name.startswith(prefix)}
            if p.convcell == "lstm":
                def step(xt, state, w=w):
                    return lstm_step(xt, state, w, p.convrnn_normalize, p.peephole)
            else:
                def step(xt, state, w=w):
                    return gru_step(xt, state, w, p.convrnn_normalize)
            seq = reverse_sequence(layer_input, lengths) if direction == "bw" else layer_input
            out, state, gates = dynamic_rnn(step, seq, lengths, p.convrnn_filters, 2 if p.convcell == "lstm" else 1)
            if direction == "bw":
                out = reverse_sequence(out, lengths)
                gates = {name: reverse_sequence(g, lengths) for name, g in gates.items()}
            results[direction or "fw"] = (out, state[0], gates)  # the final feature: GRU h, LSTM c
        out = np.concatenate([r[0] for r in results.values()], axis=-1)
        outputs.append(out)
        finals.append(np.concatenate([r[1] for r in results.values()], axis=-1))
        all_gates.append({d: r[2] for d, r in results.items()})
        layer_input = out
    return x, lengths, np.concatenate(outputs, axis=-1), np.concatenate(finals, axis=-1), all_gates


def logits(batch, weights, p, training=False):
    """The whole network: encoder, then reflect-pad conv, batch norm, (leaky) ReLU."""
    *_, final, _ = encoder(batch, weights, p, training)
    y = reflect_conv(final, weights["class/conv2d/kernel"])
    return activation(batch_norm(y, weights, "class/bn", training), p.cnn_activation)
