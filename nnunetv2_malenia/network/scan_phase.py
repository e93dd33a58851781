"""Scan-level embedding for the aspects that describe the scan, not the lesion (not in the paper).

Enhancement status in the attribute tables is the scan's phase: "non-contrast CT scan" or "contrast-enhanced CT
scan", the same for every lesion of a scan. Read per token, it is learnt from whatever the training lesions of each
phase look like. In the phantoms' seen split (and in any collection where some diseases are only scanned without
contrast) only lung tumours and gallstones ever occur in non-contrast scans, so a token learns "looks like a lung
tumour or a gallstone -> non-contrast": on the dev phantoms the aspect-heads model described all seven unseen kidney
stones (non-contrast scans) as contrast-enhanced. The phase itself is visible everywhere in the scan (kidneys,
vessels and liver are bright after contrast), in every training scan, whatever its lesions.

``ScanPhaseHead`` maps a whole scan to one text-space embedding of C channels from two global summaries:
- the intensity histogram of the input (``IntensityBins`` averaged over the volume, as log fractions): the share of
  voxels at enhanced-parenchyma and vessel intensities is the phase, whatever the plan's normalisation;
- the bottleneck feature averaged over the volume: what the U-Net encodes about the scan as a whole.
MaleniaNet puts it in the token embeddings' block of each scan-level aspect (aspect heads), so every token of a scan
reads the same phase, and losses, matcher, naming and reports stay plain dot products.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_malenia.network.mask_decoder import IntensityBins

# Bank aspects read from the scan-level embedding instead of the token (with ``scan_phase``).
SCAN_ASPECTS = ("enhancement_status",)
# Floor of the histogram fractions before the log: one voxel of a 48^3 patch is 1e-5; rarer bins say "none".
MIN_FRACTION = 1.0e-5


class ScanPhaseHead(nn.Module):
    """[B, Cin, *S] image, [B, Cb, *S'] bottleneck feature -> [B, C] L2-normalised scan embedding."""

    def __init__(self, bottleneck_channels: int, token_dim: int, num_bins: int = 11):
        super().__init__()
        self.bins = IntensityBins(num_bins)
        self.mlp = nn.Sequential(nn.Linear(bottleneck_channels + num_bins, token_dim), nn.GELU(),
                                 nn.Linear(token_dim, token_dim))

    def forward(self, image: torch.Tensor, bottleneck: torch.Tensor) -> torch.Tensor:
        histogram = self.bins(image).flatten(2).mean(-1)                           # [B, H], rows sum to 1
        summary = torch.cat((histogram.clamp_min(MIN_FRACTION).log(),              # [B, H + Cb]
                             bottleneck.float().flatten(2).mean(-1)), dim=1)
        return F.normalize(self.mlp(summary.to(self.mlp[0].weight.dtype)), dim=-1)   # [B, C]
