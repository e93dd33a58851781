"""Sigmoid BCE and dice, shared by the matcher (pairwise costs) and the criterion (matched losses).

By default masks are compared on every voxel (``points`` None: exact). Optionally on a set of voxel indices instead
(Mask2Former's point sampling): uniform random voxels, the same for every token and instance of a sample so that
pairwise costs stay comparable; with fewer voxels than points every voxel is used. See criterion.py for why the
exact losses are the default.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def sample_points(num_voxels: int, num_points: Optional[int], device: torch.device,
                  generator: Optional[torch.Generator] = None, batch: Optional[int] = None) -> Optional[torch.Tensor]:
    """[P] (or [batch, P]) long voxel indices drawn uniformly with replacement, or None meaning "all voxels"."""
    if num_points is None or num_points <= 0 or num_voxels <= num_points:
        return None
    shape = (num_points,) if batch is None else (batch, num_points)
    # randint on CPU with an optional generator keeps tests reproducible; the index tensor is tiny to move.
    return torch.randint(num_voxels, shape, generator=generator).to(device)


def sample_points_near_lesions(targets, num_voxels: int, num_points: Optional[int], device: torch.device,
                               foreground_fraction: float, generator: Optional[torch.Generator] = None
                               ) -> Optional[torch.Tensor]:
    """[B, P] voxel indices: ``foreground_fraction`` of them inside the sample's instances, the rest uniform.

    Uniform points alone starve small lesions (a 100-voxel lesion in a 48^3 patch gets ~11 of 12544 points), so its
    dice and BCE are mostly noise; drawing part of the points inside the instances (Mask2Former's importance
    sampling serves the same purpose) keeps the lesion terms informative. None: every voxel (small patches)."""
    uniform = sample_points(num_voxels, num_points, device, generator, batch=len(targets))
    if uniform is None or foreground_fraction <= 0:
        return uniform
    n_fg = int(round(num_points * foreground_fraction))
    for b, t in enumerate(targets):
        if t["masks"].shape[0] == 0:
            continue
        inside = torch.nonzero(t["masks"].any(0).flatten()).flatten()                         # [V_fg]
        pick = torch.randint(len(inside), (n_fg,), generator=generator).to(inside.device)
        uniform[b, :n_fg] = inside[pick].to(device)
    return uniform


def gather_points(x: torch.Tensor, points: Optional[torch.Tensor]) -> torch.Tensor:
    """x [N, *S] -> [N, P] values at flat voxel indices (all voxels when points is None)."""
    flat = x.flatten(1)                                               # [N, V]
    return flat if points is None else flat[:, points]                # [N, P]


def pairwise_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits [Q, P], targets [S, P] in {0, 1} -> [Q, S] mean BCE-with-logits over the points.

    BCE(x, y) = softplus(x) - x * y, so the pairwise mean splits into a per-token term and one matmul.
    """
    P = logits.shape[1]
    softplus_sum = F.softplus(logits).sum(-1, keepdim=True)          # [Q, 1]
    cross = torch.einsum("qp,sp->qs", logits, targets)               # [Q, S]
    return (softplus_sum - cross) / max(P, 1)


def pairwise_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits [Q, P], targets [S, P] -> [Q, S] soft dice loss 1 - (2|p y| + 1) / (|p| + |y| + 1)."""
    prob = logits.sigmoid()                                           # [Q, P]
    inter = torch.einsum("qp,sp->qs", prob, targets)                 # [Q, S]
    denom = prob.sum(-1)[:, None] + targets.sum(-1)[None, :]          # [Q, S]
    return 1 - (2 * inter + 1) / (denom + 1)


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits, targets [M, P] (matched pairs) -> [M] mean BCE over the points."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits, targets [M, P] (matched pairs) -> [M] soft dice loss (+1 smoothing, as in the pairwise cost)."""
    prob = logits.sigmoid()                                           # [M, P]
    inter = (prob * targets).sum(-1)                                  # [M]
    return 1 - (2 * inter + 1) / (prob.sum(-1) + targets.sum(-1) + 1)
