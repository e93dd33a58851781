"""Voxel-overlap and surface metrics on binary masks: Dice (DSC) and Normalized Surface Distance (NSD).

Empty-mask convention (nnU-Net's, ``nnunetv2/evaluation/evaluate_predictions.py``): when reference and prediction
are both empty the case says nothing about the disease, so Dice and NSD are NaN and the case is left out of every
mean. Exactly one of them empty is a complete miss or a pure false alarm: Dice 0 and NSD 0. We follow nnU-Net so
numbers from this command and from ``nnUNetv2_evaluate_folder`` agree on the same masks, and MONAI's NSD already
returns NaN / 0 in the same situations.
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """2|R∩P| / (|R| + |P|) of two boolean masks; NaN when both are empty."""
    reference = np.asarray(reference, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    if reference.shape != prediction.shape:
        raise ValueError(f"dice: shapes differ, reference {reference.shape} vs prediction {prediction.shape}")
    n_ref, n_pred = int(reference.sum()), int(prediction.sum())
    if n_ref + n_pred == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(reference, prediction).sum()) / (n_ref + n_pred)


def _union_bbox(a: np.ndarray, b: np.ndarray, margin: int = 1) -> Tuple[slice, ...]:
    """Bounding box of a|b grown by ``margin`` voxels and clipped to the volume.

    One voxel of margin keeps every surface voxel's erosion neighbourhood inside the crop, so edges (and hence
    distances) are exactly those of the full volume; masks touching the volume border stay touching it.
    """
    coords = np.nonzero(np.logical_or(a, b))
    return tuple(slice(max(int(c.min()) - margin, 0), min(int(c.max()) + margin + 1, n))
                 for c, n in zip(coords, a.shape))


def surface_dice(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 2.0,
                 use_subvoxels: bool = False) -> float:
    """Normalized Surface Distance (surface Dice at ``tolerance_mm``) of two boolean masks in world units.

    ``spacing`` is the voxel size in mm **in array-axis order** (SimpleITK's ``GetSpacing()`` reversed for an array
    from ``GetArrayFromImage``). Computed by MONAI's ``compute_surface_dice`` (Nikolov et al. 2021 definition):
    the fraction of both boundaries lying within ``tolerance_mm`` of the other boundary. With
    ``use_subvoxels=False`` (MONAI's default) a boundary is its edge voxels; ``True`` uses DeepMind's surface
    elements (surfel areas). On a sphere shifted against itself the default lies closer to the analytic value
    (see tests/test_evaluate.py), so it is ours too.

    Both masks empty -> NaN; exactly one empty -> 0.0 (see the module docstring).
    """
    reference = np.asarray(reference, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    if reference.shape != prediction.shape:
        raise ValueError(f"surface_dice: shapes differ, reference {reference.shape} vs prediction {prediction.shape}")
    if len(spacing) != reference.ndim:
        raise ValueError(f"surface_dice: spacing {tuple(spacing)} has {len(spacing)} values for a "
                         f"{reference.ndim}-D mask")
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"surface_dice: tolerance must be a finite number >= 0 mm, got {tolerance_mm}")
    has_ref, has_pred = bool(reference.any()), bool(prediction.any())
    if not has_ref and not has_pred:
        return float("nan")
    if not has_ref or not has_pred:
        return 0.0     # decided here so MONAI's "empty class" warnings never reach the user
    import torch
    from monai.metrics import compute_surface_dice

    box = _union_bbox(reference, prediction)

    def one_hot(mask: np.ndarray) -> "torch.Tensor":
        m = mask[box]
        return torch.from_numpy(np.stack([~m, m])[None].astype(np.float32))     # [1, 2, *spatial]

    with warnings.catch_warnings():
        # MONAI 1.6 passes a deprecated argument to itself (get_mask_edges(always_return_as_numpy=...))
        warnings.simplefilter("ignore", FutureWarning)
        value = compute_surface_dice(one_hot(prediction), one_hot(reference), class_thresholds=[float(tolerance_mm)],
                                     include_background=False, distance_metric="euclidean",
                                     spacing=[float(s) for s in spacing], use_subvoxels=use_subvoxels)
    return float(value[0, 0])


def nanmean(values: Iterable[Optional[float]]) -> Optional[float]:
    """Mean over the finite values; None when there is none (JSON has no NaN)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else None
