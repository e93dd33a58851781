"""Location read from where a token's mask lies (not in the paper).

In a training set where every organ holds one seen disease, a token's location head learns location from the lesion's
look: on the dev phantoms, unseen kidney stones were placed outside the kidneys (location 0-1/7) by the aspect-head
models unless their training lesions were repainted (appearance swap, which cost the seen diseases' look), while the
seen location precision stayed at 0.3-0.6. Yet location is the one aspect the network never has to infer from
appearance: it is where the mask is.

``MaskPositionHead`` maps each token's mask to one text-space embedding of C channels from the mask's first two
moments in the patch's normalised coordinates ([-1, 1] per axis): the centroid, in Fourier features so that an MLP
can carve organ-sized cells out of it, and the spread per axis. The mask probabilities are detached (the location
rows move the head and the text side, never the masks), and a token with an empty mask gets the patch centre (its
block is kept out of the MP-NCE negatives of "no lesion" tokens by the criterion, like the scan phase).

The coordinates are the patch's. With whole-volume patches (the CPU regime's 48^3 phantoms) they are the body's; at a
sliding-window patch smaller than the body they are the window's, and location then has to come from anatomy in
view: this head is a setting for the former.

Measured (README, CPU regime table, two training seeds on the dev phantoms): no gain in naming at 960 iterations.
Applied to each lesion's own mask, one seed's head placed organs right (kidney stones 5/5, liver cysts 10/10) but
not lung lobes or pancreas segments, the other's not even gallstones; through a token's mask, which can cover more
than the lesion, fewer still. Off.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_malenia.network.mask_decoder import weighted_average

# Bank aspects read from the mask's position instead of the token (with ``position_location``).
POSITION_ASPECTS = ("location",)
# Fourier frequencies of the centroid: pi * 2^k, k < 4, so the finest period is a quarter of the patch.
NUM_FREQUENCIES = 4


def normalised_grid(size: Tuple[int, ...], device, dtype) -> torch.Tensor:
    """[D, *S]: each voxel's coordinates, -1 at the first voxel centre and +1 at the last, per axis."""
    axes = [torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) for n in size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))                     # [D, *S]


def mask_moments(mask_logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """[B, Q, *S] mask logits -> centroid [B, Q, D] and spread (standard deviation per axis) [B, Q, D], fp32, in
    normalised patch coordinates, weighted by sigmoid(mask) without gradient (weight sum floored at one voxel, so an
    empty mask gives ~0: the patch centre)."""
    weights = mask_logits.detach().float().sigmoid()                              # [B, Q, *S]
    b = weights.shape[0]
    grid = normalised_grid(tuple(weights.shape[2:]), weights.device, weights.dtype)   # [D, *S]
    coords = torch.cat((grid, grid.square()), dim=0).unsqueeze(0).expand(b, -1, *grid.shape[1:])   # [B, 2D, *S]
    moments = weighted_average(weights, coords)                                   # [B, Q, 2D]
    centroid, second = moments.chunk(2, dim=-1)                                   # [B, Q, D] each
    spread = (second - centroid.square()).clamp_min(0.0).sqrt()                   # [B, Q, D]
    return centroid, spread


class MaskPositionHead(nn.Module):
    """[B, Q, *S] mask logits -> [B, Q, C] L2-normalised position embedding."""

    def __init__(self, token_dim: int, spatial_dims: int = 3):
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(NUM_FREQUENCIES, dtype=torch.float32),
                             persistent=False)
        features = spatial_dims * (2 * NUM_FREQUENCIES + 2)          # sin, cos per frequency, centroid, spread
        self.mlp = nn.Sequential(nn.Linear(features, token_dim), nn.GELU(), nn.Linear(token_dim, token_dim))

    def forward(self, mask_logits: torch.Tensor) -> torch.Tensor:
        centroid, spread = mask_moments(mask_logits)                              # [B, Q, D] each
        phase = centroid.unsqueeze(-1) * self.frequencies                         # [B, Q, D, F]
        features = torch.cat((phase.sin().flatten(-2), phase.cos().flatten(-2), centroid, spread), dim=-1)
        weight = self.mlp[0].weight                                               # [C, D * (2F + 2)] input above
        return F.normalize(self.mlp(features.to(weight.dtype)), dim=-1)           # [B, Q, C]
