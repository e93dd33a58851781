"""Ground truth for the matcher and criterion: instances (masks + positive bank rows) from an nnU-Net patch.

Instance rules
- Lesion labels: one instance per connected component (26-connectivity in 3D, 8 in 2D), so two separate
  tumours of the same label are two targets for two tokens, as in the paper (S tokens for S lesions).
- Non-lesion labels (organs): one instance per label, never split: an organ cut by the patch border into two
  pieces is still one organ, and its positives are its organ rows.
- Negative values (some configurations write -1) are background.
- More than ``max_instances`` (= Q-1) instances: keep the largest by voxel count. Q-1 rather than Q so that at
  least one token is always unmatched and keeps learning t0 ("no lesion"); otherwise a crowded patch would teach
  every token that something is always there. Small components are the ones dropped because they carry the
  fewest voxels of the dice/BCE signal; they are plain background for this patch (no token is asked to find them).
- Empty patch: S_n = 0; the criterion then pushes every token to t0 and the mask losses are zero.

Connected components run on CPU numpy with cc3d (a dependency of nnU-Net's acvl_utils); scipy.ndimage.label is
the fallback. cc3d labels all lesion values in one pass: on a [2, 1, 128^3] patch with 10 lesions + 1 organ per
sample, the components take ~25 ms (scipy ~50 ms) and the whole function ~70 ms per sample on a busy 2-core CPU,
most of it full-volume numpy passes and building the [S_n, *S] bool masks.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from nnunetv2_malenia.attributes.schema import ASPECTS, ORGAN_ASPECT
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS

try:  # cc3d handles every label value in one pass; scipy is the fallback
    import cc3d
except ImportError:  # pragma: no cover - cc3d comes with nnU-Net
    cc3d = None

NUM_ASPECTS = len(ASPECTS)
ORGAN_INDEX = BANK_ASPECTS.index(ORGAN_ASPECT)


def _components(lesion_seg: np.ndarray) -> np.ndarray:
    """Connected components of every label value separately (full connectivity); 0 stays 0."""
    if cc3d is not None and lesion_seg.ndim in (2, 3):
        return cc3d.connected_components(lesion_seg.astype(np.uint32, copy=False),
                                         connectivity=26 if lesion_seg.ndim == 3 else 8)
    from scipy import ndimage
    structure = ndimage.generate_binary_structure(lesion_seg.ndim, lesion_seg.ndim)
    out = np.zeros(lesion_seg.shape, dtype=np.int64)
    offset = 0
    for value in np.unique(lesion_seg):
        if value == 0:
            continue
        comp, n = ndimage.label(lesion_seg == value, structure=structure)
        out[comp > 0] = comp[comp > 0] + offset
        offset += n
    return out


def _is_lesion(lookup, case_id: Optional[str], value: int) -> bool:
    values = getattr(lookup, "lesion_label_values", None)
    if values is not None:
        return value in values
    # Without the property: organ labels are the ones without a paragraph row (BankLookup.paragraph_row's rule).
    return lookup.paragraph_row(case_id, value) is not None


def _num_rows(lookup, num_rows: Optional[int]) -> int:
    if num_rows is not None:
        return int(num_rows)
    bank = getattr(lookup, "bank", None)
    if bank is None:
        raise ValueError("pass num_rows= or give the lookup a .bank (BankLookup has one)")
    return len(bank)


def instances_from_segmentation(seg: torch.Tensor, keys: Optional[Sequence[Optional[str]]], lookup,
                                max_instances: int, *, num_rows: Optional[int] = None) -> List[Dict[str, torch.Tensor]]:
    """seg [B, 1, *S] int (any device); keys: B case ids (None entries or keys=None: label-level descriptions).

    Returns B dicts on seg's device: ``masks`` bool [S_n, *S], ``labels`` long [S_n] (label values),
    ``positives`` bool [S_n, R] (rows from ``lookup.positive_rows``), ``paragraph`` long [S_n] (row or -1).
    Instances are ordered by label value, then by component order; see the module docstring for the rules.
    """
    assert seg.ndim >= 3 and seg.shape[1] == 1, f"seg must be [B, 1, *S], got {tuple(seg.shape)}"
    assert max_instances >= 0, f"max_instances must be >= 0, got {max_instances}"
    R = _num_rows(lookup, num_rows)
    device = seg.device
    seg_np = seg[:, 0].detach().to("cpu", torch.int32).numpy()       # [B, *S]
    seg_np = np.maximum(seg_np, 0)                                    # negative = background
    out = []
    for b in range(seg_np.shape[0]):
        case_id = None if keys is None else keys[b]
        s = seg_np[b]                                                 # [*S]
        present = np.bincount(s.ravel())                              # [max+1] voxels per value (unique is slower)
        values = [int(v) for v in np.flatnonzero(present) if v > 0]
        lesion_values = [v for v in values if _is_lesion(lookup, case_id, v)]
        # One integer map holds every instance: organs get ids 1..n_org (one per value), lesion components the
        # following ids in (label value, component) order. Lookup tables keep this at a few full-volume passes.
        inst_labels = [v for v in values if v not in lesion_values]
        organ_id = np.zeros(len(present), dtype=np.int32)            # [max+1] value -> organ instance id
        organ_id[inst_labels] = np.arange(1, len(inst_labels) + 1)
        inst_map = organ_id[s]                                        # [*S]
        if lesion_values:
            is_lesion = np.zeros(len(present), dtype=bool)
            is_lesion[lesion_values] = True
            lesion_mask = is_lesion[s]                                # [*S]
            comp = _components(np.where(lesion_mask, s, 0))               # [*S], 0 = none
            n_comp = int(comp.max())
            if n_comp:
                comp_label = np.zeros(n_comp + 1, dtype=np.int64)     # component -> label value
                comp_label[comp.ravel()] = s.ravel()                  # components never mix values
                order = sorted(range(1, n_comp + 1), key=lambda c: (comp_label[c], c))
                remap = np.zeros(n_comp + 1, dtype=np.int32)          # component -> instance id
                remap[order] = np.arange(len(inst_labels) + 1, len(inst_labels) + 1 + n_comp)
                inst_labels += [int(comp_label[c]) for c in order]
                inst_map = np.where(lesion_mask, remap[comp], inst_map)   # [*S]
        n = len(inst_labels)
        sizes = np.bincount(inst_map.ravel(), minlength=n + 1)[1:]    # [n] voxels per instance
        keep = np.arange(n)
        if n > max_instances:
            # largest first; stable so ties keep the earlier instance; then back to the natural order
            keep = np.sort(np.argsort(-sizes, kind="stable")[:max_instances])
        labels = [inst_labels[i] for i in keep]
        ids = torch.as_tensor(keep + 1, dtype=torch.int32)            # [S_n] instance ids in inst_map
        inst_t = torch.from_numpy(inst_map).to(device)                # [*S]
        masks = inst_t.unsqueeze(0) == ids.to(device).view(-1, *([1] * s.ndim))   # [S_n, *S]
        positives = torch.zeros(len(labels), R, dtype=torch.bool)     # [S_n, R]
        paragraph = torch.full((len(labels),), -1, dtype=torch.long)  # [S_n]
        for i, v in enumerate(labels):
            rows = list(lookup.positive_rows(case_id, v))
            if rows:
                positives[i, rows] = True
            if v in lesion_values:
                p = lookup.paragraph_row(case_id, v)
                paragraph[i] = -1 if p is None else int(p)
        out.append({"masks": masks, "labels": torch.tensor(labels, dtype=torch.long, device=device),
                    "positives": positives.to(device), "paragraph": paragraph.to(device)})
    return out


def slot_weights_for(positives: torch.Tensor, row_aspect: torch.Tensor) -> torch.Tensor:
    """positives [S_n, R] bool, row_aspect [R] long -> [S_n, A, R+1] weights, each [n, a, :] summing to 1.

    Slot a of an instance averages its positive rows of aspect a (column r+1 for bank row r). Without such a row:
    the instance's organ rows if it has any (non-lesion instances, whose positives are organ rows), else t0
    (column 0) - a lesion with a missing aspect is "unknown" there, which is what t0 stands for at inference.
    """
    S_n, R = positives.shape
    row_aspect = row_aspect.to(positives.device)
    assert row_aspect.shape == (R,), f"row_aspect {tuple(row_aspect.shape)} does not match positives {(S_n, R)}"
    aspect_onehot = row_aspect.unsqueeze(0) == torch.arange(NUM_ASPECTS, device=positives.device).unsqueeze(1)  # [A, R]
    per_aspect = (positives.unsqueeze(1) & aspect_onehot.unsqueeze(0)).float()       # [S_n, A, R]
    organ = (positives & (row_aspect == ORGAN_INDEX).unsqueeze(0)).float()           # [S_n, R]
    has = per_aspect.sum(-1, keepdim=True) > 0                                       # [S_n, A, 1]
    chosen = torch.where(has, per_aspect, organ.unsqueeze(1).expand_as(per_aspect))  # [S_n, A, R]
    count = chosen.sum(-1, keepdim=True)                                             # [S_n, A, 1]
    t0 = (count == 0).float()                                                        # [S_n, A, 1]
    weights = torch.cat([t0, chosen / count.clamp(min=1)], dim=-1)                   # [S_n, A, R+1]
    return weights
