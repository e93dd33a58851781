"""Auxiliary deep supervision of the U-Net decoder (not in the paper; ``weight_lesion``, 0 switches it off).

Malenia's masks are dot products of token embeddings with the finest decoder feature, and the only dense gradient
the U-Net receives comes through the few tokens matched to lesions. On the CPU regime's phantoms that was too weak:
after 1,000 iterations the tokens matched to kidney cysts, liver, pancreas, colon and even lung tumours had empty
masks on their own TRAINING cases (the token's mask probability inside the lesion 0.00-0.02), while plain nnU-Net,
whose deep supervision puts a dense loss on every decoder stage, learns the lung tumours on the same budget.

So every decoder stage gets a 1x1 head and this loss, nnU-Net-style deep supervision (stage weights 1, 1/2, 1/4, ...
from the finest, the coarsest stage 0, normalised to sum 1), in one of two forms (``MaleniaNet(lesion_heads=...)``):

* ``"lesion"``: one channel, BCE + batch soft dice on the union of the sample's lesion instances. It names no
  disease, so it favours no seen one; but on the CPU regime its pixel features became one "lesion" direction: the
  masks found liver, pancreas and colon tumours and one token named them all colon tumour.
* ``"classes"``: K+1 channels, CE + batch soft dice on the training label map, what plain nnU-Net's own loss is;
  the pixel features then tell the training classes apart, as the tokens must.

The heads are unused at inference.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F


def deep_supervision_weights(num_stages: int) -> List[float]:
    """nnU-Net's: 1 / 2^i for stage i counted from the finest, the coarsest 0 (when more than one), sum 1.
    Returned coarsest first, the order of the decoder features."""
    weights = [1.0 / 2 ** i for i in range(num_stages)]             # finest first
    if num_stages > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights][::-1]


def _lesion_map(targets: Sequence[Dict[str, torch.Tensor]], device) -> torch.Tensor:
    """[B, 1, *S] float: the union of each sample's instance masks ([S_n, *S]; no instance: all 0)."""
    return torch.stack([t["masks"].any(0) for t in targets]).to(device=device, dtype=torch.float32).unsqueeze(1)


def _label_map(targets: Sequence[Dict[str, torch.Tensor]], device) -> torch.Tensor:
    """[B, 1, *S] float: each sample's label map rebuilt from its instances (mask [S_n, *S], label [S_n])."""
    maps = []
    for t in targets:
        label_map = torch.zeros(t["masks"].shape[1:], dtype=torch.long, device=t["masks"].device)   # [*S]
        for mask, label in zip(t["masks"], t["labels"]):
            label_map[mask.bool()] = int(label)
        maps.append(label_map)
    return torch.stack(maps).to(device).unsqueeze(1).float()                                # [B, 1, *S]


def _resampled(full: torch.Tensor, spatial: Sequence[int], mode: str) -> torch.Tensor:
    """[B, 1, *S] -> [B, 1, *spatial] (unchanged when the sizes agree)."""
    if tuple(full.shape[2:]) == tuple(spatial):
        return full
    return F.interpolate(full, size=tuple(spatial), mode=mode)


def lesion_target(targets: Sequence[Dict[str, torch.Tensor]], spatial: Sequence[int], device) -> torch.Tensor:
    """[B, 1, *spatial] float in [0, 1]: the union of each sample's instance masks, area-averaged to ``spatial``
    (a stage coarser than the patch sees the lesion fraction of each of its voxels, so small lesions survive)."""
    return _resampled(_lesion_map(targets, device), spatial, "area")


def class_target(targets: Sequence[Dict[str, torch.Tensor]], spatial: Sequence[int], device) -> torch.Tensor:
    """[B, *spatial] long: the label map, nearest-neighbour resampled to ``spatial`` as nnU-Net downsamples its
    deep-supervision targets."""
    return _resampled(_label_map(targets, device), spatial, "nearest-exact")[:, 0].long()


def _lesion_terms(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    """logits, target [B, 1, *S] (target in [0, 1]): BCE + 1 - batch soft dice of lesion vs background."""
    prob = logits.sigmoid()
    dice = (2 * (prob * target).sum() + smooth) / (prob.sum() + target.sum() + smooth)    # over the batch
    return F.binary_cross_entropy_with_logits(logits, target) + 1.0 - dice


def _class_terms(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    """logits [B, K+1, *S], target [B, *S] long: CE + 1 - mean over the K lesion classes of the batch soft dice
    (nnU-Net's DC_and_CE with batch_dice and without the background class)."""
    prob = logits.softmax(1)[:, 1:]                                                         # [B, K, *S]
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].float()              # [B, K, *S]
    axes = [0] + list(range(2, prob.ndim))
    dice = (2 * (prob * onehot).sum(axes) + smooth) / (prob.sum(axes) + onehot.sum(axes) + smooth)   # [K]
    return F.cross_entropy(logits, target) + 1.0 - dice.mean()


def lesion_aux_loss(lesion_logits: Sequence[torch.Tensor], targets: Sequence[Dict[str, torch.Tensor]],
                    smooth: float = 1e-5) -> torch.Tensor:
    """lesion_logits: per decoder stage [B, 1, *S_i] (lesion vs background) or [B, K+1, *S_i] (the training label
    map), coarsest first -> the deep-supervision weighted sum of the stage losses. The full-resolution target is
    built once per call and only resampled per stage."""
    device = lesion_logits[-1].device
    classes = lesion_logits[-1].shape[1] > 1
    full = _label_map(targets, device) if classes else _lesion_map(targets, device)       # [B, 1, *S]
    total = lesion_logits[-1].sum() * 0.0
    for logits, weight in zip(lesion_logits, deep_supervision_weights(len(lesion_logits))):
        if weight == 0.0:
            continue
        if classes:
            stage = _class_terms(logits.float(), _resampled(full, logits.shape[2:], "nearest-exact")[:, 0].long(),
                                 smooth)
        else:
            stage = _lesion_terms(logits.float(), _resampled(full, logits.shape[2:], "area"), smooth)
        total = total + weight * stage
    return total
