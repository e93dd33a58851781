"""Training-time slot filling for the CMKI module: which text rows each token's eight slots receive.

At training the paper fuses each token with its ground-truth attribute embeddings, so the network calls this
object mid-forward (after the transformer decoder, before CMKI). It matches EVERY block once and keeps the
indices for the criterion, so the Hungarian algorithm runs once per block per step, not twice.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

from nnunetv2_malenia.losses.matcher import HungarianMatcher, Indices
from nnunetv2_malenia.losses.targets import NUM_ASPECTS, slot_weights_for


class SlotAssigner:
    def __init__(self, matcher: HungarianMatcher, targets: Sequence[Dict[str, torch.Tensor]],
                 row_aspect: torch.Tensor):
        self.matcher = matcher
        self.targets = targets
        self.row_aspect = row_aspect
        self.indices: List[Indices] = []          # [L][B] (pred_idx, tgt_idx), filled by __call__

    def __call__(self, out: Dict[str, object]) -> torch.Tensor:
        """out: the decoder dict ("block_masks", "block_embeddings", "text_embeddings", "logit_scale")
        -> slot weights [B, Q, A, R+1] from the last block's matching; unmatched tokens: all weight on t0."""
        text, scale = out["text_embeddings"], out["logit_scale"]
        self.indices = [self.matcher(m, e, text, scale, self.targets, row_aspect=self.row_aspect)
                        for m, e in zip(out["block_masks"], out["block_embeddings"])]
        B, Q = out["block_embeddings"][-1].shape[:2]
        R1 = text.shape[0]
        weights = torch.zeros(B, Q, NUM_ASPECTS, R1, device=text.device, dtype=text.dtype)  # [B, Q, A, R+1]
        weights[..., 0] = 1
        for b, (pred_idx, tgt_idx) in enumerate(self.indices[-1]):
            if len(pred_idx):
                per_instance = slot_weights_for(self.targets[b]["positives"], self.row_aspect)  # [S_n, A, R+1]
                weights[b, pred_idx.to(text.device)] = per_instance[tgt_idx.to(per_instance.device)].to(
                    device=text.device, dtype=text.dtype)
        return weights
