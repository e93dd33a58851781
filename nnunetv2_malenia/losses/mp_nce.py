"""Multi-Positive NCE (paper Eq. 2, after Lee et al. 2022) and the positive/candidate sets it is applied to.

Text-space columns: 0 = t0 ("no lesion"), 1..R = bank rows (row r at column r+1).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from nnunetv2_malenia.attributes.schema import ASPECTS, ORGAN_ASPECT
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS, PARAGRAPH_ASPECT

# Finite stand-in for -inf: logsumexp over an all-masked row stays finite, so backward never sees inf - inf.
MASKED_LOGIT = -1e9


def text_candidates(row_aspect: torch.Tensor, multi_positive: bool = True) -> torch.Tensor:
    """row_aspect [R] long -> [R+1] bool: the columns a token is contrasted against.

    Multi-positive: t0 + the eight aspects' rows + organ rows. Single-positive (ablation): t0 + paragraph rows +
    organ rows. Mixing the modes would let a paragraph compete with its own aspect rows. Rows with aspect -1 are
    never candidates (the trainer marks so the rows no training label uses, issue #12 B).
    """
    organ = BANK_ASPECTS.index(ORGAN_ASPECT)
    if multi_positive:
        keep = ((row_aspect >= 0) & (row_aspect < len(ASPECTS))) | (row_aspect == organ)   # [R]
    else:
        keep = (row_aspect == BANK_ASPECTS.index(PARAGRAPH_ASPECT)) | (row_aspect == organ)
    return torch.cat([torch.ones(1, dtype=torch.bool, device=row_aspect.device), keep])  # [R+1]


def instance_positives(target: Dict[str, torch.Tensor], multi_positive: bool = True) -> torch.Tensor:
    """One sample's targets -> [S_n, R+1] bool positives in text space (column 0 never set).

    Single-positive: the lesion's paragraph row; instances without one (organs) keep their own rows (organ rows).
    """
    pos = target["positives"]                                                        # [S_n, R]
    if not multi_positive:
        para = target["paragraph"]                                                   # [S_n]
        has = para >= 0
        single = torch.zeros_like(pos)
        single[has.nonzero(as_tuple=True)[0], para[has]] = True
        pos = torch.where(has.unsqueeze(1), single, pos)                             # [S_n, R]
    return torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)                     # [S_n, R+1]


def token_positives(targets: Sequence[Dict[str, torch.Tensor]], indices: Sequence[Tuple[torch.Tensor, torch.Tensor]],
                    num_tokens: int, num_columns: int, multi_positive: bool = True) -> torch.Tensor:
    """-> [B, Q, R+1] bool: matched tokens get their instance's positives, unmatched tokens {t0}."""
    B = len(targets)
    device = targets[0]["positives"].device if B else torch.device("cpu")
    out = torch.zeros(B, num_tokens, num_columns, dtype=torch.bool, device=device)  # [B, Q, R+1]
    out[..., 0] = True
    for b, (pred_idx, tgt_idx) in enumerate(indices):
        if len(pred_idx):
            out[b, pred_idx.to(device)] = instance_positives(targets[b], multi_positive)[tgt_idx.to(device)]
    return out


def column_aspects(row_aspect: torch.Tensor) -> torch.Tensor:
    """row_aspect [R] long -> [R+1] long: each text-space column's aspect index, -1 for t0 (column 0)."""
    return torch.cat([torch.full((1,), -1, dtype=row_aspect.dtype, device=row_aspect.device), row_aspect])


def negative_logsumexp(sim: torch.Tensor, negatives: torch.Tensor, column_aspect: Optional[torch.Tensor] = None
                       ) -> torch.Tensor:
    """Per column k, the logsumexp of the negatives a positive k competes with: sim [B, Q, R+1], negatives
    [B, Q, R+1] bool, column_aspect [R+1] long (``column_aspects``) or None -> [B, Q, R+1].

    None: every negative (Eq. 2 as printed). Given: a positive of aspect a competes with the negatives of aspect a
    and with t0; a positive t0 (aspect -1) with every negative."""
    masked = torch.where(negatives, sim, torch.full_like(sim, MASKED_LOGIT))          # [B, Q, R+1]
    every = masked.logsumexp(-1, keepdim=True)                                        # [B, Q, 1]
    if column_aspect is None:
        return every.expand_as(sim)
    column_aspect = column_aspect.to(sim.device)
    groups = torch.unique(column_aspect[column_aspect >= 0])                          # [G]
    member = column_aspect.view(1, -1) == groups.view(-1, 1)                          # [G, R+1]
    member[:, 0] = True                                                               # t0 competes in every aspect
    per_group = torch.where(member, masked.unsqueeze(2), torch.full_like(masked.unsqueeze(2), MASKED_LOGIT))
    per_group = per_group.logsumexp(-1)                                               # [B, Q, G]
    group_of = (column_aspect.view(-1, 1) == groups.view(1, -1)).long().argmax(-1)   # [R+1] (0 where aspect -1)
    return torch.where(column_aspect >= 0, per_group[..., group_of], every)           # [B, Q, R+1]


def mp_nce_loss(embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor,
                positives: torch.Tensor, candidates: torch.Tensor, no_lesion_weight: float = 1.0,
                column_aspect: Optional[torch.Tensor] = None,
                non_token_columns: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
    """Eq. 2. embeddings [B, Q, C], text_embeddings [R+1, C] (both L2-normalised), positives [B, Q, R+1] bool,
    candidates [R+1] bool -> scalar.

    Token j: L_j = -mean_{k in P_j} log(exp(s_jk) / (exp(s_jk) + sum_{n in N_j} exp(s_jn))), N_j = candidates \\ P_j,
    s = logit_scale * m . t. Each positive competes only with the negatives, not with the other positives, which
    is what lets eight descriptions of one lesion all be "right". Averaged over the tokens that have at least one
    positive (all of them unless a matched instance has no rows at all); computed in fp32.

    no_lesion_weight: weight of the tokens whose only positive is t0 in that average (1.0 = Eq. 2 as printed).
    With 16 tokens and one to three lesions per patch, t0 tokens outnumber lesion tokens ~7:1 and every token ends
    up "no lesion"; DETR/Mask2Former, on which Malenia builds, weight the no-object class 0.1 for this reason.

    column_aspect ([R+1] long, ``column_aspects``; None = Eq. 2): aspect-wise negatives (not in the paper; the
    trainer's ``aspect_negatives``). A positive of aspect a then competes only with aspect a's negatives and t0,
    which is the choice inference makes: a lesion's location is the best of the location rows (per-aspect softmax,
    lesion_description.py), never a contest with density rows. With every negative, the other aspects' ~60 rows,
    far from the token after the first epochs, still fill the denominator while the pair that decides the aspect
    (left vs right kidney) is one term among them; in the default CPU-regime model those two rows ended at text-space
    cosine 0.988, liver lobes at 0.997, lung lobes at 0.998-0.999, so sub-region location was a coin flip.

    non_token_columns ([R+1] bool; None: none): columns that a token meets through an embedding that is not its own
    head: one shared scan embedding (the network's ``scan_phase``) or its mask's position (``position_location``). They
    are never negatives of a token whose only positive is t0: such a term would push the scan's phase away from
    every phase row for each of the ~13 lesion-free tokens, while the lesion tokens pull it towards the right one,
    and whether a token is a lesion says nothing about the phase (nor an empty mask about a position).
    """
    sim = logit_scale.float() * torch.einsum("bqc,rc->bqr", embeddings.float(), text_embeddings.float())  # [B, Q, R+1]
    pos = positives.to(sim.device)
    neg = candidates.to(sim.device).view(1, 1, -1) & ~pos                           # [B, Q, R+1]
    if non_token_columns is not None:
        t0_only = pos[..., :1] & (pos.sum(-1, keepdim=True) == 1)                     # [B, Q, 1]
        neg = neg & ~(t0_only & non_token_columns.to(sim.device).view(1, 1, -1))      # [B, Q, R+1]
    neg_lse = negative_logsumexp(sim, neg, column_aspect)                            # [B, Q, R+1]
    # log(e^s / (e^s + e^neg_lse)) = s - logaddexp(s, neg_lse); no negatives -> neg_lse ~ -1e9 -> term 0
    log_prob = sim - torch.logaddexp(sim, neg_lse)                                   # [B, Q, R+1]
    n_pos = pos.sum(-1)                                                              # [B, Q]
    per_token = -(log_prob * pos).sum(-1) / n_pos.clamp(min=1)                       # [B, Q]
    only_t0 = pos[..., 0] & (n_pos == 1)                                             # [B, Q]
    weight = (n_pos > 0).float() * torch.where(only_t0, no_lesion_weight, 1.0)      # [B, Q]
    return (per_token * weight).sum() / weight.sum().clamp(min=1e-8)
