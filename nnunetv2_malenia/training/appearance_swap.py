"""Appearance swap: a training lesion repainted with another disease's intensities, its appearance texts swapped too.

Why (issue #12): when every organ holds exactly one seen disease, as in the phantoms' split and in many small real
collections, a lesion's location is predictable from its appearance alone: whatever looks like a kidney cyst is in
the kidney. Tokens learn that shortcut, so an unseen liver cyst, which looks like the seen kidney cysts, is described
in every aspect as a kidney cyst, kidney included, and the knowledge table names it one. No network change can make
the tokens prefer the surrounding tissue while appearance predicts location perfectly; the training pairs must stop
doing so. This augmentation makes counterfactual lesions: a lesion keeps its mask, place, shape and scan phase, takes
the voxel statistics of a lesion of another disease from the same batch, and with them that lesion's density texts.
Location then has to be read from the tissue around the lesion.

The swap matches the donor's per-channel mean and standard deviation inside the recipient's mask (the recipient's
own texture, standardised, is kept), in the network's normalised intensities, so it works on real CT as on phantoms.

Which descriptions follow the voxels:
- density and density_variation: the donor's (they are what was painted);
- specific_features: dropped (neither lesion's): some are intensity (fluid density, calcification), some are not
  (duct dilatation, wall thickening), and the table does not say which;
- everything else stays the recipient's: location, shape, surface, relationship and organ are geometry or context,
  and enhancement status is the scan's phase.
The swapped lesion's joined paragraph no longer describes it (paragraph -1), so single-positive training, which
aligns to that paragraph only, cannot use the swap.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS

SWAPPED_ASPECTS = ("density", "density_variation")
DROPPED_ASPECTS = ("specific_features",)


def _rows_of(row_aspect: torch.Tensor, aspects: Sequence[str]) -> torch.Tensor:
    """[R] bool: the bank rows of the given aspects."""
    wanted = torch.tensor([BANK_ASPECTS.index(a) for a in aspects], device=row_aspect.device)
    return torch.isin(row_aspect, wanted)


@torch.no_grad()
def swap_lesion_appearance(data: torch.Tensor, targets: List[Dict[str, torch.Tensor]], lesion_values: Sequence[int],
                           row_aspect: torch.Tensor, probability: float,
                           generator: Optional[torch.Generator] = None) -> int:
    """Repaints, in place, each lesion instance with ``probability`` as a lesion of another label in the batch.

    data: [B, C, *S] float, the network's input; targets: B dicts of ``instances_from_segmentation`` (``masks``
    [S_n, *S] bool, ``labels`` [S_n], ``positives`` [S_n, R] bool, ``paragraph`` [S_n]), same device as data;
    lesion_values: the label values that are lesions (organ instances are never painted nor donors); row_aspect [R]:
    each bank row's aspect index (BANK_ASPECTS). Donors are read before any painting, so a lesion is never painted
    with a repainted one. Returns the number of lesions repainted.
    """
    assert 0.0 <= probability <= 1.0, f"probability must be in [0, 1], got {probability}"
    assert data.shape[0] == len(targets), f"{data.shape[0]} samples but {len(targets)} target dicts"
    lesion_set = {int(v) for v in lesion_values}
    lesions: List[Tuple[int, int, int]] = [(b, i, v) for b, t in enumerate(targets)
                                           for i, v in enumerate(t["labels"].tolist()) if v in lesion_set]
    if probability == 0 or len({v for _, _, v in lesions}) < 2:
        return 0                                                       # nobody to swap with
    # per lesion: ([C] mean, [C] std, [R] positives) of the unpainted batch
    originals = {}
    for b, i, _ in lesions:
        voxels = data[b][:, targets[b]["masks"][i]].float()            # [C, V]
        originals[(b, i)] = (voxels.mean(1), voxels.std(1, unbiased=False), targets[b]["positives"][i].clone())
    swapped_rows = _rows_of(row_aspect, SWAPPED_ASPECTS)               # [R]
    dropped_rows = _rows_of(row_aspect, DROPPED_ASPECTS)               # [R]

    repainted = 0
    for b, i, label in lesions:
        if float(torch.rand((), generator=generator)) >= probability:
            continue
        donors = [(db, di) for db, di, dv in lesions if dv != label]
        donor = donors[int(torch.randint(len(donors), (), generator=generator))]
        mean_r, std_r, _ = originals[(b, i)]
        mean_d, std_d, positives_d = originals[donor]
        mask = targets[b]["masks"][i]                                  # [*S]
        voxels = data[b][:, mask].float()                              # [C, V]
        standardised = (voxels - mean_r[:, None]) / std_r.clamp_min(1e-3)[:, None]
        data[b][:, mask] = (standardised * std_d[:, None] + mean_d[:, None]).to(data.dtype)
        positives = targets[b]["positives"][i]                         # [R], a view: edited in place
        positives[swapped_rows] = positives_d[swapped_rows]
        positives[dropped_rows] = False
        targets[b]["paragraph"][i] = -1
        repainted += 1
    return repainted
