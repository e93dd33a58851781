"""Appearance aspects read from the intensities inside and around each token's mask (not in the paper).

Why: with location given by organ maps (``--location-maps``), the quick benchmark's Malenia model still named every
liver cyst a liver tumour and every pancreas cyst a pancreas tumour (dev phantoms: 0/11 and 0/4 at every seen
penalty). Given the organ, its tokens described the cyst as that organ's seen disease in every appearance aspect
(a liver cyst "heterogeneous", no fluid density), although a cyst's voxels look like the seen kidney cysts'. The
token's heads read decoder features whose receptive field covers the whole organ, and in the seen split each organ
holds one disease, so "liver" and "liver tumour look" are one feature to them.

``LesionIntensityHead`` gives each token one text-space embedding per appearance aspect (density, density variation,
surface, specific features) from nothing but the input intensities under its mask and in a thin shell around it:

- inside: the soft intensity histogram (``IntensityBins``) averaged under the mask, as log fractions, and the mean
  and standard deviation of the intensity (fluid vs enhancing tissue vs calcium; homogeneous vs heterogeneous);
- shell: the same over the voxels just outside the mask (density is judged against the surrounding parenchyma, and a
  sharp margin is a step from inside to shell, an ill-defined one a blur).

No decoder feature enters, so the embedding cannot tell the organ apart but by the intensity of the shell: a kidney
cyst and a liver cyst give the same inside histogram. The mask probabilities are detached (these rows move the head
and the text side, never the masks), and a token with an empty mask pools ~0 (its blocks are kept out of the MP-NCE
negatives of "no lesion" tokens by the criterion, like the scan phase and the mask position).

The shell is taken on a grid twice as coarse as the mask's (mask probabilities and per-voxel features averaged over
2^D cells, then a dilation of one coarse voxel): two full-resolution voxels wide, at an eighth of the dilation's
cost at 48^3 (the full-resolution shell of ``context_ring`` added ~40 % to a CPU-regime epoch).

Measured (README, CPU regime table; dev phantoms, location from the organ maps, two training seeds): against the
scan-phase model it is added to, seed 0 named more unseen dev lesions right (22/41 against 20/41: hepatic vessel and
kidney tumours) but fewer seen ones (23/43 against 29/43: seen liver tumours named hepatic vessel tumour, kidney cysts
named kidney tumour), with density precision 0.46 against 0.63; seed 1 named the liver and pancreas cysts right
(12/15 against 3/15) but lost the kidney stones and gallbladder tumours. Harmonic mean of unseen and seen naming
0.57 against 0.59 over the two seeds, and a median CPU-regime epoch of 23.6 s against 16.1 s. Off.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_malenia.network.mask_decoder import IntensityBins, dilate, image_on_grid, weighted_average

# Bank aspects read from the lesion's intensities instead of the token (with ``lesion_intensity``), one head each.
INTENSITY_ASPECTS = ("density", "density_variation", "surface", "specific_features")
# Floor of the histogram fractions before the log: a token whose mask holds a voxel or less says "none".
MIN_FRACTION = 1.0e-4
# Variance floor before the square root: keeps the gradient of the standard deviation finite for a flat region.
MIN_VARIANCE = 1.0e-6


def coarser(x: torch.Tensor) -> torch.Tensor:
    """[B, Ch, *S] -> [B, Ch, *S/2] by averaging 2^D cells where every axis is even; unchanged otherwise."""
    if any(s % 2 or s < 2 for s in x.shape[2:]):
        return x
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[x.ndim - 2]
    return pool(x, kernel_size=2)


def region_statistics(weights: torch.Tensor, per_voxel: torch.Tensor, num_bins: int) -> torch.Tensor:
    """[B, Q, *S] region weights, [B, H + 2, *S] per-voxel (bins, x, x^2) -> [B, Q, H + 2]: the region's log
    histogram fractions, its mean intensity and its standard deviation (fp32)."""
    moments = weighted_average(weights, per_voxel).float()                     # [B, Q, H + 2]
    histogram, mean, square = moments.split((num_bins, 1, 1), dim=-1)          # [B, Q, H], [B, Q, 1] x 2
    std = (square - mean.square()).clamp_min(MIN_VARIANCE).sqrt()             # [B, Q, 1]
    return torch.cat((histogram.clamp_min(MIN_FRACTION).log(), mean, std), dim=-1)


class LesionIntensityHead(nn.Module):
    """[B, Q, *S'] mask logits, [B, Cin, *S] image -> [B, Q, V, C]: per appearance aspect (V =
    ``num_aspects``) an L2-normalised embedding of C = ``token_dim`` channels."""

    def __init__(self, token_dim: int, num_aspects: int = len(INTENSITY_ASPECTS), num_bins: int = 11):
        super().__init__()
        self.num_aspects = int(num_aspects)
        self.token_dim = int(token_dim)
        self.bins = IntensityBins(num_bins)
        features = 2 * (num_bins + 2)                                  # inside and shell: bins, mean, std
        self.mlp = nn.Sequential(nn.Linear(features, token_dim), nn.GELU(),
                                 nn.Linear(token_dim, self.num_aspects * token_dim))

    def per_voxel(self, image: torch.Tensor, size: Tuple[int, ...]) -> torch.Tensor:
        """[B, Cin, *S] image -> [B, H + 2, *size]: soft bins, intensity and its square (channel mean), the image
        area-averaged to the mask grid first when the finest feature is strided."""
        image = image_on_grid(image, size)                                     # [B, Cin, *size]
        x = image.float().mean(1, keepdim=True)                                # [B, 1, *size]
        return torch.cat((self.bins(image), x, x.square()), dim=1)             # [B, H + 2, *size]

    def forward(self, mask_logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        b, q = mask_logits.shape[:2]
        # fp32 even under CPU bf16 autocast: a standard deviation from E[x^2] - E[x]^2 in bf16 (3 significant
        # digits) would be mostly rounding for a homogeneous lesion, the very thing it has to tell apart.
        with torch.autocast(device_type=mask_logits.device.type, enabled=False):
            per_voxel = self.per_voxel(image, tuple(mask_logits.shape[2:]))      # [B, H + 2, *S']
            m = mask_logits.detach().float().sigmoid()                           # [B, Q, *S']
            inside = region_statistics(m, per_voxel, self.bins.num_bins)         # [B, Q, H + 2]
            coarse_m = coarser(m)                                                # [B, Q, *S'/2]
            shell = (dilate(coarse_m, 1) - coarse_m).clamp_min(0.0)              # [B, Q, *S'/2]
            around = region_statistics(shell, coarser(per_voxel), self.bins.num_bins)   # [B, Q, H + 2]
        features = torch.cat((inside, around), dim=-1)                           # [B, Q, 2 (H + 2)]
        weight = self.mlp[0].weight
        out = self.mlp(features.to(weight.dtype)).view(b, q, self.num_aspects, self.token_dim)   # [B, Q, V, C]
        return F.normalize(out, dim=-1)
