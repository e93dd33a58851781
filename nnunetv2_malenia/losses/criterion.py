"""Malenia's training losses (paper Eq. 2 and 6), Mask2Former-style: unweighted named losses + one weighting.

Named losses for L decoder blocks:
- ``loss_deep_{i}``: dice of block i's masks of the tokens matched in block i (deep supervision, L_deep).
- ``loss_sim_{i}``: MP-NCE of block i's token embeddings (Eq. 2); every block when multi_scale, else only the last.
- ``loss_bce``, ``loss_dice``: final ``pred_masks`` (after CMKI) of the tokens matched in the LAST block, which is
  the matching whose text filled the CMKI slots (L_seg).
- ``loss_others`` (not in the paper; ``weight_others``, 0 switches it off): BCE of the same final masks on the
  voxels of the OTHER lesions of the sample, averaged over those voxels. The other lesions are certain negatives
  for a matched token and the ones it is likeliest to confuse; in the per-voxel BCE of L_seg they weigh as little
  as any background voxel (85 voxels of a neighbouring cyst are 0.08 % of a 48^3 patch) and in the dice the
  sigmoid is saturated, so a token could keep covering a neighbouring lesion with confidence. On a fixed batch of
  two demo cases the liver tumour's token held mask logits of +13 on a kidney cyst 10 voxels away after 300 steps
  (lesion Dice 0.997, the cyst named liver tumour) without it.
- ``loss_lesion`` (not in the paper; ``weight_lesion``, 0 switches it off): deep supervision of the U-Net decoder
  stages, lesion vs background or the training label map (lesion_aux.py), for networks built with ``lesion_heads``.
Mask losses are on every voxel of the patch by default (``num_points=None``), summed over matched instances and
divided by the number of instances (all-reduced across DDP processes,
divided by the world size like Mask2Former, clamped >= 1). Zero instances: mask losses are exactly 0 but attached
to the graph, and MP-NCE pushes every token to t0.

Point sampling (``num_points``: that many voxels per sample, ``foreground_fraction`` of them inside the instances,
the same points for every block and the final masks) is kept for patches whose per-voxel loss terms do not fit;
it saves less than it seems, since the [B, Q, *S] masks and their gradient exist either way. It is not the default
because it biases the masks: with half of the points inside lesions that fill 0.5 % of a 48^3 phantom patch, every
token's mask grew to cover 30-50 % of the patch after 300 iterations (Dice ~0.6 on the points, 0.01-0.08 on the
volume), while the exact losses keep the masks empty early on, as nnU-Net's own training does at that stage.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from nnunetv2_malenia.losses.dice_bce import bce_loss, dice_loss, sample_points_near_lesions
from nnunetv2_malenia.losses.lesion_aux import lesion_aux_loss
from nnunetv2_malenia.losses.matcher import HungarianMatcher, Indices
from nnunetv2_malenia.losses.mp_nce import column_aspects, mp_nce_loss, text_candidates, token_positives


def num_instances_global(targets: Sequence[Dict[str, torch.Tensor]], device: torch.device) -> float:
    n = torch.tensor([float(sum(int(t["masks"].shape[0]) for t in targets))], device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return float(n.clamp(min=1).item())


class MaleniaCriterion:
    def __init__(self, row_aspect: Optional[torch.Tensor] = None, *, weight_deep: float = 1.0,
                 weight_sim: float = 1.0, weight_seg: float = 1.0, weight_bce: float = 2.0, weight_dice: float = 2.0,
                 weight_others: float = 2.0, weight_lesion: float = 0.0, num_points: Optional[int] = None,
                 foreground_fraction: float = 0.5,
                 no_lesion_weight: float = 0.1,
                 multi_scale: bool = True,
                 multi_positive: bool = True,
                 aspect_negatives: bool = False,
                 matcher: Optional[HungarianMatcher] = None, generator: Optional[torch.Generator] = None):
        """Eq. 6 weights: weight_deep/sim/seg = l1/l2/l3 (paper 1, 1, 1); weight_bce/dice = L_seg's alpha1/alpha2
        (paper 2, 2); weight_others: loss_others' weight inside L_seg (0: the paper's L_seg); weight_lesion: the
        auxiliary loss_lesion's weight, added to Eq. 6 (0: the paper's total; > 0 needs "lesion_logits"). Ablations:
        multi_scale=False -> loss_sim on the last block only; multi_positive=False -> the
        joined paragraph row is the single positive (give the matcher the same flag). aspect_negatives=True: a
        positive description competes with the negatives of its own aspect and t0 only (``mp_nce_loss``).

        row_aspect [R] long (TextBank.aspect_index(), the network's buffer) defines the MP-NCE candidates
        (text_candidates). It may be set later (``criterion.row_aspect = ...``); if it is still None at the first
        call, every column is a candidate - paragraph rows then act as negatives too - and a warning says so.
        matcher: only used when __call__ gets indices=None. num_points None (default): every voxel, else that many
        sampled points per sample; foreground_fraction: share of those points drawn inside the instances (0: uniform
        only); no_lesion_weight: MP-NCE weight of the tokens matched to no lesion (Mask2Former's no-object weight
        0.1; 1.0 is Eq. 2's plain average)."""
        self.row_aspect = row_aspect
        self.weight_deep, self.weight_sim, self.weight_seg = float(weight_deep), float(weight_sim), float(weight_seg)
        self.weight_bce, self.weight_dice = float(weight_bce), float(weight_dice)
        self.weight_others = float(weight_others)
        self.weight_lesion = float(weight_lesion)
        self.num_points = num_points
        self.foreground_fraction = foreground_fraction
        self.no_lesion_weight = no_lesion_weight
        self.multi_scale, self.multi_positive = multi_scale, multi_positive
        self.aspect_negatives = aspect_negatives
        self.matcher = matcher
        self.generator = generator

    def candidates(self, num_columns: int, device: torch.device) -> torch.Tensor:
        """[R+1] bool MP-NCE candidate columns for the current mode."""
        if self.row_aspect is None:
            warnings.warn("MaleniaCriterion has no row_aspect: every text column is an MP-NCE candidate; set "
                          "criterion.row_aspect = bank.aspect_index()", stacklevel=3)
            return torch.ones(num_columns, dtype=torch.bool, device=device)
        assert self.row_aspect.numel() + 1 == num_columns, \
            f"row_aspect has {self.row_aspect.numel()} rows but text_embeddings {num_columns} columns (R+1)"
        return text_candidates(self.row_aspect.to(device), self.multi_positive)

    def __call__(self, outputs: Dict[str, object], targets: Sequence[Dict[str, torch.Tensor]],
                 indices: Optional[List[Indices]] = None) -> Dict[str, torch.Tensor]:
        """outputs: the network's training dict; targets: instances_from_segmentation's list; indices: per block
        a per-sample list of (pred_idx, tgt_idx) (SlotAssigner.indices). Returns unweighted named losses."""
        block_masks, block_emb = outputs["block_masks"], outputs["block_embeddings"]
        text, scale, pred_masks = outputs["text_embeddings"], outputs["logit_scale"], outputs["pred_masks"]
        L = len(block_masks)
        if indices is None:
            assert self.matcher is not None, "pass indices (SlotAssigner.indices) or give the criterion a matcher"
            indices = [self.matcher(m, e, text, scale, targets, row_aspect=self.row_aspect)
                       for m, e in zip(block_masks, block_emb)]
        assert len(indices) == L, f"indices for {len(indices)} blocks, network has {L}"
        B, Q = pred_masks.shape[:2]
        num = num_instances_global(targets, pred_masks.device)
        # one point set per sample, shared by every block and the final masks: [B, P] (None: all voxels)
        points = sample_points_near_lesions(targets, pred_masks[0, 0].numel(), self.num_points, pred_masks.device,
                                            self.foreground_fraction, self.generator)
        losses: Dict[str, torch.Tensor] = {}
        candidates = self.candidates(text.shape[0], text.device)                                   # [R+1]
        column_aspect = None
        if self.aspect_negatives:
            assert self.row_aspect is not None, "aspect_negatives needs row_aspect (each row's aspect)"
            column_aspect = column_aspects(self.row_aspect.to(text.device))                        # [R+1]
        for i in range(L):
            losses[f"loss_deep_{i}"] = self._mask_losses(block_masks[i], targets, indices[i], points, num)[1]
            if self.multi_scale or i == L - 1:
                pos = token_positives(targets, indices[i], Q, text.shape[0], self.multi_positive)  # [B, Q, R+1]
                losses[f"loss_sim_{i}"] = mp_nce_loss(block_emb[i], text, scale, pos.to(text.device), candidates,
                                                      self.no_lesion_weight, column_aspect,
                                                      outputs.get("non_token_columns"))
        losses["loss_bce"], losses["loss_dice"] = self._mask_losses(pred_masks, targets, indices[-1], points, num)
        if self.weight_others:
            losses["loss_others"] = self._other_lesion_loss(pred_masks, targets, indices[-1], points, num)
        if self.weight_lesion:
            assert "lesion_logits" in outputs, ("weight_lesion > 0 needs a network built with lesion_heads "
                                                "(its output has no 'lesion_logits')")
            losses["loss_lesion"] = lesion_aux_loss(outputs["lesion_logits"], targets)
        return losses

    @staticmethod
    def _mask_losses(masks: torch.Tensor, targets, indices: Indices, points: Optional[torch.Tensor], num: float):
        """masks [B, Q, *S], points [B, P] or None (all voxels) -> (BCE, dice) summed over matched pairs / num;
        exact zeros that stay in the graph when nothing is matched."""
        batch_idx = torch.cat([torch.full_like(p, b) for b, (p, _) in enumerate(indices)])            # [M]
        pred_idx = torch.cat([p for p, _ in indices])                                                   # [M]
        if pred_idx.numel() == 0:
            zero = masks.sum() * 0.0          # keeps backward working (DDP needs every output in the graph)
            return zero, zero
        flat = masks.flatten(2)                                                                         # [B, Q, V]
        if points is not None:
            # one gather for the whole batch: its backward is a single scatter into a [B, Q, V] gradient
            flat = torch.gather(flat, 2, points.unsqueeze(1).expand(-1, flat.shape[1], -1))          # [B, Q, P]
        src = flat[batch_idx.to(masks.device), pred_idx.to(masks.device)].float()                      # [M, P]
        tgt = []
        for b, (_, tgt_idx) in enumerate(indices):
            tm = targets[b]["masks"].flatten(1)                                                        # [S_n, V]
            if points is not None:
                tm = tm[:, points[b].to(tm.device)]                                                     # [S_n, P]
            tgt.append(tm[tgt_idx.to(tm.device)].to(masks.device))                                     # [M_b, P]
        tgt_all = torch.cat(tgt).float()                                                                # [M, P]
        return bce_loss(src, tgt_all).sum() / num, dice_loss(src, tgt_all).sum() / num

    @staticmethod
    def _other_lesion_loss(masks: torch.Tensor, targets, indices: Indices, points: Optional[torch.Tensor],
                           num: float) -> torch.Tensor:
        """masks [B, Q, *S] -> sum over matched pairs (q, s) of the mean BCE(mask_q, 0) on the voxels of the sample's
        instances other than s (outside s itself), / num; pairs in samples with one instance add nothing."""
        total = masks.sum() * 0.0                  # in the graph even when no sample has two instances
        for b, (pred_idx, tgt_idx) in enumerate(indices):
            tm = targets[b]["masks"].flatten(1).to(masks.device)                                      # [S_n, V]
            if tm.shape[0] < 2 or pred_idx.numel() == 0:
                continue
            flat = masks[b].flatten(1)                                                                 # [Q, V]
            if points is not None:
                tm, flat = tm[:, points[b]], flat[:, points[b]]                                       # [S_n, P], [Q, P]
            counts = tm.float().sum(0)                                                                 # [V] instances per voxel
            src = flat[pred_idx.to(masks.device)].float()                                              # [M_b, V]
            own = tm[tgt_idx.to(masks.device)].float()                                                 # [M_b, V]
            others = (((counts.unsqueeze(0) - own) > 0) & (own == 0)).float()     # [M_b, V] certain negatives
            bce = (F.softplus(src) * others).sum(-1) / others.sum(-1).clamp_min(1.0)                  # [M_b]
            total = total + bce.sum()
        return total / num

    def weighted_total(self, losses: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 6: l1 mean_i deep_i + l2 mean_i sim_i + l3 (alpha1 bce + alpha2 dice + weight_others others), plus
        weight_lesion lesion; absent groups are skipped.
        (l1, l2, l3, alpha1, alpha2) = (weight_deep, weight_sim, weight_seg, weight_bce, weight_dice)."""
        def mean_of(prefix: str):
            vals = [v for k, v in losses.items() if k.startswith(prefix)]
            return sum(vals) / len(vals) if vals else None

        total = []
        deep, sim = mean_of("loss_deep_"), mean_of("loss_sim_")
        if deep is not None:
            total.append(self.weight_deep * deep)
        if sim is not None:
            total.append(self.weight_sim * sim)
        if "loss_bce" in losses or "loss_dice" in losses:
            seg = 0.0
            if "loss_bce" in losses:
                seg = seg + self.weight_bce * losses["loss_bce"]
            if "loss_dice" in losses:
                seg = seg + self.weight_dice * losses["loss_dice"]
            if "loss_others" in losses:
                seg = seg + self.weight_others * losses["loss_others"]
            total.append(self.weight_seg * seg)
        if "loss_lesion" in losses:
            total.append(self.weight_lesion * losses["loss_lesion"])
        assert total, f"no known losses in {sorted(losses)}"
        return sum(total)
