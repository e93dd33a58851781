"""Hungarian matching of mask tokens to ground-truth instances (one-to-one, per sample), as in Mask2Former.

cost[q, s] = cost_bce * BCE(mask_q, gt_s) + cost_dice * dice(mask_q, gt_s) + cost_sim * sim(q, s)
- BCE and dice on every voxel (default), or on the same uniformly sampled voxels for all pairs (num_points).
- sim(q, s) = -mean over the instance's positives k of log softmax_k(logit_scale * m_q . t) over the candidate
  columns: a token already close to a lesion's descriptions is preferred for that lesion, which keeps the
  assignment stable across iterations. An instance without positives gets sim 0.
Everything runs under no_grad in fp32, autocast switched off (the network calls the matcher mid-forward, inside
CUDA's fp16 or CPU's bf16 autocast; fp16 would saturate the BCE of confident logits, bf16 keeps 3 digits).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from scipy.optimize import linear_sum_assignment

from nnunetv2_malenia.losses.dice_bce import gather_points, pairwise_bce, pairwise_dice, sample_points
from nnunetv2_malenia.losses.mp_nce import MASKED_LOGIT, instance_positives, text_candidates

Indices = List[Tuple[torch.Tensor, torch.Tensor]]


class HungarianMatcher:
    def __init__(self, cost_bce: float = 5.0, cost_dice: float = 5.0, cost_sim: float = 2.0,
                 num_points: Optional[int] = None, *, row_aspect: Optional[torch.Tensor] = None,
                 multi_positive: bool = True, generator: Optional[torch.Generator] = None):
        """row_aspect [R] (optional): restricts the sim softmax to text_candidates(row_aspect, multi_positive);
        without it every column is a candidate (SlotAssigner passes its row_aspect per call).
        generator: optional CPU generator for the point sampling (reproducible tests)."""
        assert cost_bce != 0 or cost_dice != 0 or cost_sim != 0, "all matcher costs are 0"
        self.cost_bce, self.cost_dice, self.cost_sim = float(cost_bce), float(cost_dice), float(cost_sim)
        self.num_points = num_points
        self.row_aspect = row_aspect
        self.multi_positive = multi_positive
        self.generator = generator

    @torch.no_grad()
    def cost_matrix(self, masks: torch.Tensor, embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                    logit_scale: torch.Tensor, target: Dict[str, torch.Tensor],
                    candidates: Optional[torch.Tensor]) -> torch.Tensor:
        """One sample: masks [Q, *S] logits, embeddings [Q, C] -> cost [Q, S_n] fp32."""
        tgt_masks = target["masks"]                                                    # [S_n, *S]
        assert tgt_masks.shape[1:] == masks.shape[1:], \
            f"target masks {tuple(tgt_masks.shape[1:])} vs predicted masks {tuple(masks.shape[1:])}"
        points = sample_points(masks[0].numel(), self.num_points, masks.device, self.generator)
        pred = gather_points(masks, points).float()                                    # [Q, P]
        gt = gather_points(tgt_masks.to(masks.device), points).float()                # [S_n, P]
        cost = self.cost_bce * pairwise_bce(pred, gt) + self.cost_dice * pairwise_dice(pred, gt)  # [Q, S_n]
        if self.cost_sim:
            sim = logit_scale.float() * embeddings.float() @ text_embeddings.float().T  # [Q, R+1]
            if candidates is not None:
                sim = sim.masked_fill(~candidates.to(sim.device).view(1, -1), MASKED_LOGIT)
            log_p = sim.log_softmax(-1)                                               # [Q, R+1]
            pos = instance_positives(target, self.multi_positive).to(sim.device).float()  # [S_n, R+1]
            # mean log-probability of each instance's positives: [Q, R+1] x [S_n, R+1] -> [Q, S_n]
            mean_log_p = torch.einsum("qr,sr->qs", log_p, pos) / pos.sum(-1).clamp(min=1)[None, :]
            cost = cost - self.cost_sim * mean_log_p
        return torch.nan_to_num(cost, nan=1e6, posinf=1e6, neginf=-1e6)

    @torch.no_grad()
    def __call__(self, block_masks: torch.Tensor, block_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                 logit_scale: torch.Tensor, targets: Sequence[Dict[str, torch.Tensor]], *,
                 row_aspect: Optional[torch.Tensor] = None) -> Indices:
        """block_masks [B, Q, *S], block_embeddings [B, Q, C], text_embeddings [R+1, C] -> B pairs
        (pred_idx, tgt_idx) of long CPU tensors, pred_idx sorted; empty targets give two empty tensors."""
        B = block_masks.shape[0]
        assert len(targets) == B, f"{len(targets)} targets for a batch of {B}"
        row_aspect = self.row_aspect if self.row_aspect is not None else row_aspect
        candidates = None if row_aspect is None else text_candidates(row_aspect, self.multi_positive)
        out: Indices = []
        for b in range(B):
            if target_count(targets[b]) == 0:
                out.append((torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)))
                continue
            with torch.autocast(device_type=block_masks.device.type, enabled=False):
                cost = self.cost_matrix(block_masks[b], block_embeddings[b], text_embeddings, logit_scale,
                                        targets[b], candidates)                       # [Q, S_n]
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            out.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
        return out


def target_count(target: Dict[str, torch.Tensor]) -> int:
    return int(target["masks"].shape[0])
