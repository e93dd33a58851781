"""What the tokens say about one predicted lesion: its eight attributes and its ranked diseases.

Each token contributes in proportion to how much of the lesion its final mask covers times its probability of being
a lesion (1 - p(t0)); per aspect, the tokens' softmax over that aspect's bank rows is averaged with those weights and
the best row is the lesion's description. Disease scores are the same weighted average of the tokens' class
probabilities, so they follow the network's naming rule (best_match or aspect_vote, as the label maps; the lesion
weights 1 - p(t0) are the same under both). Scores from several folds are averaged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from nnunetv2_malenia.attributes.schema import ASPECTS
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS


@dataclass
class RegionScores:
    """Accumulates fold-wise scores for one region: per aspect a distribution over that aspect's rows, and K diseases."""
    aspect_rows: Dict[str, torch.Tensor]                       # aspect -> [n_a] bank row indices
    aspect_scores: Dict[str, torch.Tensor] = field(default_factory=dict)   # aspect -> [n_a]
    disease_scores: torch.Tensor | None = None                 # [K]
    folds: int = 0

    def add(self, aspect_scores: Dict[str, torch.Tensor], disease_scores: torch.Tensor) -> None:
        for aspect, s in aspect_scores.items():
            self.aspect_scores[aspect] = self.aspect_scores.get(aspect, 0) + s
        self.disease_scores = disease_scores if self.disease_scores is None else self.disease_scores + disease_scores
        self.folds += 1

    def best_rows(self) -> Dict[str, Tuple[int, float]]:
        """aspect -> (bank row, mean score over folds)."""
        out = {}
        for aspect, s in self.aspect_scores.items():
            if len(s):
                i = int(torch.argmax(s))
                out[aspect] = (int(self.aspect_rows[aspect][i]), float(s[i]) / self.folds)
        return out

    def ranked_diseases(self, names: Sequence[str]) -> List[Tuple[str, float]]:
        scores = self.disease_scores / max(self.folds, 1)
        order = torch.argsort(scores, descending=True)
        return [(names[int(k)], float(scores[k])) for k in order]


def aspect_rows(row_aspect: torch.Tensor) -> Dict[str, torch.Tensor]:
    """aspect name -> [n_a] indices of the bank rows of that aspect (the eight aspects only)."""
    return {a: torch.nonzero(row_aspect == BANK_ASPECTS.index(a)).flatten().cpu() for a in ASPECTS}


@torch.no_grad()
def region_scores(outputs: dict, region: torch.Tensor, rows: Dict[str, torch.Tensor]
                  ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """outputs: MaleniaNet's dict for ONE patch (batch 1); region [*S] bool, the lesion's voxels in that patch.

    Returns (aspect -> [n_a] scores summing to 1, [K] disease scores summing to 1)."""
    region = region.to(outputs["pred_masks"].device)
    # Weights are coverage * p(lesion), normalised over tokens. They are formed in log space because a barely trained
    # model can give every token a claim far below float32's range (mask logits of -100, p(t0) ~ 1); normalising
    # underflowed products would make the disease scores sum to less than 1 (or to 0/0).
    mask_logits = outputs["pred_masks"][0].float()[:, region]                    # [Q, V] the lesion's V voxels
    if mask_logits.shape[1]:
        log_coverage = torch.logsumexp(F.logsigmoid(mask_logits), dim=1) - math.log(mask_logits.shape[1])  # [Q]
    else:                       # a hollow lesion larger than the patch can miss its own window: no coverage evidence
        log_coverage = torch.zeros(mask_logits.shape[0], device=mask_logits.device)
    log_class = torch.log_softmax(outputs["class_logits"][0].float(), dim=-1)   # [Q, K+1]
    log_lesion = torch.logsumexp(log_class[:, 1:], dim=-1)                       # [Q] log(1 - p(t0))
    weights = torch.softmax(log_coverage + log_lesion, dim=0)                    # [Q], sums to 1

    tokens = outputs["block_embeddings"][-1][0].float()                          # [Q, C]
    texts = outputs["text_embeddings"][1:].float()                               # [R, C] (row 0 is t0)
    sims = tokens @ texts.T * outputs["logit_scale"].float()                     # [Q, R]
    aspect_scores = {}
    for aspect, idx in rows.items():
        idx = idx.to(sims.device)
        if idx.numel() == 0:
            aspect_scores[aspect] = torch.zeros(0)
            continue
        per_token = torch.softmax(sims[:, idx], dim=-1)                          # [Q, n_a]
        aspect_scores[aspect] = (weights[:, None] * per_token).sum(0).cpu()     # [n_a]
    fg = torch.softmax(log_class[:, 1:], dim=-1)                                 # [Q, K] given "is a lesion"
    return aspect_scores, (weights[:, None] * fg).sum(0).cpu()                   # [K]
