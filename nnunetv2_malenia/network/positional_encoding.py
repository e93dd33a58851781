"""Fixed sine/cosine positional encodings for 2D and 3D feature maps (DETR/Mask2Former style, any number of axes).

Coordinates are normalised to (0, 1] per axis, so a token at the same relative position gets the same encoding
whatever the patch size (sliding-window inference uses the training patch, but 2D and 3D plans differ).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch


def sine_positional_encoding(spatial_shape: Sequence[int], channels: int, *, temperature: float = 10000.0,
                             device=None, dtype=torch.float32) -> torch.Tensor:
    """[prod(spatial_shape), channels] encoding of a feature map flattened in C order (last axis fastest).

    The channels are split evenly between the axes; each axis gets sin/cos pairs of geometrically spaced
    frequencies. Channels that do not divide evenly (channels % (2 * ndim)) are zero.
    """
    ndim = len(spatial_shape)
    assert ndim >= 1 and channels >= 2 * ndim, (
        f"need at least 2 channels per axis; got channels={channels} for spatial_shape={tuple(spatial_shape)}")
    per_axis = (channels // ndim) // 2 * 2          # even, so every frequency gets a sin and a cos
    half = per_axis // 2
    freqs = temperature ** (-torch.arange(half, device=device, dtype=torch.float32) / half)   # [half]
    axes = [torch.arange(1, n + 1, device=device, dtype=torch.float32) / n * 2 * math.pi for n in spatial_shape]
    grids = torch.meshgrid(*axes, indexing="ij")                      # ndim x [*spatial]
    parts = []
    for grid in grids:
        angles = grid.reshape(-1, 1) * freqs                          # [N, half]
        parts.append(torch.cat((angles.sin(), angles.cos()), dim=1))  # [N, per_axis]
    pos = torch.cat(parts, dim=1)                                      # [N, ndim * per_axis]
    if pos.shape[1] < channels:
        pos = torch.nn.functional.pad(pos, (0, channels - pos.shape[1]))   # [N, channels]
    return pos.to(dtype)
