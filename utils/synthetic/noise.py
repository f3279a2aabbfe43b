"""Smooth random fields (textures, forests, clouds) and their bilinear sampling."""

from __future__ import annotations

import numpy as np


def gaussian_field(rng: np.random.Generator, shape: tuple[int, int], scale: float, beta: float = 3.0) -> np.ndarray:
    """Standardised Gaussian random field with power spectrum ``(k^2 + 1/scale^2)^(-beta/2)``.

    ``scale`` (grid cells) is the correlation length of the largest structures; ``beta`` about 3 gives
    cloud-like fractal detail, larger values smoother fields. Periodic, float32, mean 0, std 1.
    """
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    amplitude = (ky**2 + kx**2 + (1.0 / scale) ** 2) ** (-beta / 4.0)
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * amplitude, s=shape)
    field -= field.mean()
    field /= field.std()
    return field.astype(np.float32)


def bilinear(grids: np.ndarray, index: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sample ``grids[index]`` bilinearly at fractional grid coordinates ``(y, x)`` (clamped to the grid).

    ``grids`` is ``(N, H, W)``; ``index``, ``y`` and ``x`` broadcast together (e.g. ``(T, 1)`` with ``(T, P)``).
    """
    height, width = grids.shape[1:]
    y = np.clip(y, 0, height - 1.001)
    x = np.clip(x, 0, width - 1.001)
    y0 = y.astype(np.intp)
    x0 = x.astype(np.intp)
    fy = (y - y0).astype(np.float32)
    fx = (x - x0).astype(np.float32)
    top = grids[index, y0, x0] * (1 - fx) + grids[index, y0, x0 + 1] * fx
    bottom = grids[index, y0 + 1, x0] * (1 - fx) + grids[index, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy
