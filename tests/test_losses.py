"""Targets, matcher, slot assigner, MP-NCE and criterion on synthetic tensors shaped per the contract (CPU)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnunetv2_malenia.losses import (HungarianMatcher, MaleniaCriterion, SlotAssigner, instances_from_segmentation,
                                     mp_nce_loss, slot_weights_for, text_candidates, token_positives)
from nnunetv2_malenia.losses.mp_nce import column_aspects
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS

# Fake bank: rows 0-7 the eight aspects of label 2, rows 8-14 seven aspects of label 3 (no specific_features),
# row 15 organ (label 1), rows 16/17 paragraphs of labels 2/3, row 18 a per-case enhancement text for case "c1".
ROW_ASPECT = torch.tensor(list(range(8)) + list(range(7)) + [8, 9, 9, 0])            # [R=19]
R = len(ROW_ASPECT)
assert BANK_ASPECTS[8] == "organ" and BANK_ASPECTS[9] == "paragraph"


class FakeLookup:
    lesion_label_values = [2, 3]

    def positive_rows(self, case_id, value):
        rows = {1: [15], 2: list(range(8)), 3: list(range(8, 15))}[value]
        if case_id == "c1" and value == 2:
            rows = [18] + rows[1:]
        return rows

    def paragraph_row(self, case_id, value):
        return {1: None, 2: 16, 3: 17}[value]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def _seg_two_blobs():
    seg = torch.zeros(2, 1, 8, 8, 8, dtype=torch.int16)                               # [B, 1, Z, Y, X]
    seg[0, 0, 0:2, 0:2, 0:2] = 2          # blob A of label 2 (8 voxels)
    seg[0, 0, 5:8, 5:8, 5:8] = 2          # blob B of label 2 (27 voxels), not touching A
    seg[0, 0, 0:2, 6:8, 0:2] = 1          # organ piece 1
    seg[0, 0, 6:8, 0:2, 6:8] = 1          # organ piece 2 (disconnected): still one organ instance
    seg[0, 0, 4, 0, 0] = -1               # ignore-like value: background
    seg[1, 0, 3:5, 3:5, 3:5] = 3
    return seg


def test_connected_components_and_per_case_positives():
    seg = _seg_two_blobs()
    t = instances_from_segmentation(seg, ["c1", None], FakeLookup(), max_instances=15, num_rows=R)
    assert len(t) == 2
    assert t[0]["labels"].tolist() == [1, 2, 2]                        # organ first, then two lesion components
    assert t[0]["masks"].shape == (3, 8, 8, 8) and t[0]["masks"].dtype == torch.bool
    assert t[0]["masks"].sum((1, 2, 3)).tolist() == [16, 8, 27]
    assert not (t[0]["masks"].sum(0) > 1).any()                        # instances are disjoint
    assert t[0]["positives"].shape == (3, R)
    assert t[0]["positives"][1].nonzero().flatten().tolist() == [1, 2, 3, 4, 5, 6, 7, 18]   # per-case override
    assert t[0]["positives"][0].nonzero().flatten().tolist() == [15]
    assert t[0]["paragraph"].tolist() == [-1, 16, 16]
    assert t[1]["labels"].tolist() == [3]
    assert t[1]["positives"][0].nonzero().flatten().tolist() == list(range(8, 15))
    # 2D patches: 8-connectivity joins diagonal neighbours
    seg2d = torch.zeros(1, 1, 6, 6, dtype=torch.long)
    seg2d[0, 0, 0, 0] = seg2d[0, 0, 1, 1] = 2
    seg2d[0, 0, 4:6, 4:6] = 2
    t2 = instances_from_segmentation(seg2d, None, FakeLookup(), max_instances=15, num_rows=R)
    assert t2[0]["masks"].shape == (2, 6, 6) and t2[0]["masks"].sum((1, 2)).tolist() == [2, 4]


def test_more_instances_than_tokens_keeps_largest_and_empty_patch():
    seg = torch.zeros(1, 1, 16, 16, 16, dtype=torch.uint8)
    # five separate cubes of label 2 (one-voxel gaps), sizes 1, 27, 8, 8, 27
    for i, (z, edge) in enumerate([(0, 1), (2, 3), (6, 2), (0, 2), (9, 3)]):
        x = 6 if i == 3 else 0
        seg[0, 0, z:z + edge, 0:edge, x:x + edge] = 2
    t = instances_from_segmentation(seg, None, FakeLookup(), max_instances=3, num_rows=R)
    # the three largest (which 8-voxel cube wins the tie depends on the component scan order)
    assert sorted(t[0]["masks"].sum((1, 2, 3)).tolist()) == [8, 27, 27]
    assert not t[0]["masks"][:, 0, 0, 0].any()                          # the single voxel is dropped
    empty = instances_from_segmentation(torch.zeros(2, 1, 4, 4, 4), ["a", "b"], FakeLookup(), 15, num_rows=R)
    assert [e["masks"].shape for e in empty] == [(0, 4, 4, 4)] * 2
    assert empty[0]["positives"].shape == (0, R) and empty[0]["labels"].numel() == 0


def test_slot_weights_rows_sum_to_one():
    t = instances_from_segmentation(_seg_two_blobs(), ["c1", None], FakeLookup(), 15, num_rows=R)
    w0 = slot_weights_for(t[0]["positives"], ROW_ASPECT)                # [3, A, R+1]
    w1 = slot_weights_for(t[1]["positives"], ROW_ASPECT)
    for w in (w0, w1):
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:2]))
    assert (w0[0, :, 16] == 1).all()                                    # organ: every slot = its organ row (15+1)
    assert w0[1, 0, 19] == 1 and w0[1, 3, 4] == 1                       # per-case enhancement row 18, density row 3
    assert w1[0, 7, 0] == 1 and w1[0, 6, 15] == 1                       # label 3 lacks specific_features -> t0
    assert slot_weights_for(torch.zeros(0, R, dtype=torch.bool), ROW_ASPECT).shape == (0, 8, R + 1)


def test_mp_nce_matches_hand_computation():
    text = torch.eye(4)                                                  # [R+1=4, C=4]: s_jk = scale * emb_jk
    emb = torch.tensor([[[0.1, 0.5, 0.2, -0.3], [0.4, -0.2, 0.0, 0.3]]])   # [B=1, Q=2, C=4]
    scale = torch.tensor(2.0)
    pos = torch.tensor([[[False, True, True, False], [True, False, False, False]]])
    cand = torch.ones(4, dtype=torch.bool)
    s0 = [0.2, 1.0, 0.4, -0.6]
    s1 = [0.8, -0.4, 0.0, 0.6]
    neg0 = math.exp(s0[0]) + math.exp(s0[3])
    l0 = -0.5 * sum(math.log(math.exp(s0[k]) / (math.exp(s0[k]) + neg0)) for k in (1, 2))
    neg1 = math.exp(s1[1]) + math.exp(s1[2]) + math.exp(s1[3])
    l1 = -math.log(math.exp(s1[0]) / (math.exp(s1[0]) + neg1))
    got = mp_nce_loss(emb, text, scale, pos, cand)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    # column 3 not a candidate: it leaves both denominators
    cand3 = torch.tensor([True, True, True, False])
    l0 = -0.5 * sum(math.log(math.exp(s0[k]) / (math.exp(s0[k]) + math.exp(s0[0]))) for k in (1, 2))
    l1 = -math.log(math.exp(s1[0]) / (math.exp(s1[0]) + math.exp(s1[1]) + math.exp(s1[2])))
    assert mp_nce_loss(emb, text, scale, pos, cand3).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_aspect_negatives_keep_a_positive_against_its_own_aspect_and_t0():
    """Columns: t0, two rows of aspect 0, two of aspect 1. Token 0's positives are one row of each aspect; token 1
    is a "no lesion" token. Hand computation of both denominators."""
    text = torch.eye(5)                                                  # [R+1=5, C=5]: s_jk = scale * emb_jk
    emb = torch.tensor([[[0.1, 0.5, 0.2, -0.3, 0.4], [0.4, -0.2, 0.0, 0.3, 0.1]]])   # [B=1, Q=2, C=5]
    scale = torch.tensor(2.0)
    pos = torch.tensor([[[False, True, False, True, False], [True, False, False, False, False]]])
    cand = torch.ones(5, dtype=torch.bool)
    column_aspect = column_aspects(torch.tensor([0, 0, 1, 1]))
    assert column_aspect.tolist() == [-1, 0, 0, 1, 1]
    s0 = [0.2, 1.0, 0.4, -0.6, 0.8]
    s1 = [0.8, -0.4, 0.0, 0.6, 0.2]
    e = math.exp
    # token 0: row 1 (aspect 0) against row 2 and t0; row 3 (aspect 1) against row 4 and t0
    l0 = -0.5 * (math.log(e(s0[1]) / (e(s0[1]) + e(s0[2]) + e(s0[0])))
                 + math.log(e(s0[3]) / (e(s0[3]) + e(s0[4]) + e(s0[0]))))
    # token 1: t0 against every row
    l1 = -math.log(e(s1[0]) / (e(s1[0]) + sum(e(v) for v in s1[1:])))
    got = mp_nce_loss(emb, text, scale, pos, cand, column_aspect=column_aspect)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    # differs from Eq. 2, where every row is every positive's negative
    plain = mp_nce_loss(emb, text, scale, pos, cand)
    assert not math.isclose(got.item(), plain.item(), rel_tol=1e-4)
    # a non-candidate column leaves its aspect's denominator
    cand2 = torch.tensor([True, True, False, True, True])
    l0 = -0.5 * (math.log(e(s0[1]) / (e(s0[1]) + e(s0[0])))
                 + math.log(e(s0[3]) / (e(s0[3]) + e(s0[4]) + e(s0[0]))))
    l1 = -math.log(e(s1[0]) / (e(s1[0]) + e(s1[1]) + e(s1[3]) + e(s1[4])))
    got = mp_nce_loss(emb, text, scale, pos, cand2, column_aspect=column_aspect)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_non_token_columns_are_never_negatives_of_a_no_lesion_token():
    """Columns: t0, two rows of aspect 0, two scan-level rows. Token 0 is a lesion token with one positive of each;
    token 1 a "no lesion" token: the scan rows leave its denominator, not token 0's."""
    text = torch.eye(5)                                                  # [R+1=5, C=5]: s_jk = scale * emb_jk
    emb = torch.tensor([[[0.1, 0.5, 0.2, -0.3, 0.4], [0.4, -0.2, 0.0, 0.3, 0.1]]])   # [B=1, Q=2, C=5]
    scale = torch.tensor(2.0)
    pos = torch.tensor([[[False, True, False, True, False], [True, False, False, False, False]]])
    cand = torch.ones(5, dtype=torch.bool)
    scan = torch.tensor([False, False, False, True, True])
    s0 = [0.2, 1.0, 0.4, -0.6, 0.8]
    s1 = [0.8, -0.4, 0.0, 0.6, 0.2]
    e = math.exp
    neg0 = e(s0[0]) + e(s0[2]) + e(s0[4])                                 # every other candidate, scan row 4 too
    l0 = -0.5 * sum(math.log(e(s0[k]) / (e(s0[k]) + neg0)) for k in (1, 3))
    l1 = -math.log(e(s1[0]) / (e(s1[0]) + e(s1[1]) + e(s1[2])))          # rows 3 and 4 left out
    got = mp_nce_loss(emb, text, scale, pos, cand, non_token_columns=scan)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    assert mp_nce_loss(emb, text, scale, pos, cand).item() != pytest.approx(got.item(), rel=1e-4)


def test_text_candidates_modes():
    multi, single = text_candidates(ROW_ASPECT, True), text_candidates(ROW_ASPECT, False)
    assert multi[0] and single[0]
    assert multi[1:].nonzero().flatten().tolist() == list(range(16)) + [18]
    assert single[1:].nonzero().flatten().tolist() == [15, 16, 17]
    unused = ROW_ASPECT.clone()
    unused[[3, 16]] = -1                              # rows no training label uses (trainer: training_row_aspect)
    assert not text_candidates(unused, True)[4] and not text_candidates(unused, False)[17]
    assert text_candidates(unused, True)[1:].sum() == multi[1:].sum() - 1


def _random_targets(B, S, counts):
    out = []
    for b in range(B):
        n = counts[b]
        masks = torch.rand(n, *S) > 0.7                                # [S_n, *S]
        positives = torch.zeros(n, R, dtype=torch.bool)
        for i in range(n):
            positives[i, torch.randperm(15)[:4]] = True
        out.append({"masks": masks, "labels": torch.full((n,), 2), "positives": positives,
                    "paragraph": torch.full((n,), 16)})
    return out


def test_matcher_finds_permutation_and_brute_force_optimum():
    S = (6, 6, 6)
    targets = _random_targets(2, S, [3, 2])
    Q = 4
    perms = [torch.tensor([2, 0, 3]), torch.tensor([1, 3])]             # token holding instance i
    masks = torch.full((2, Q, *S), -10.0)                               # [B, Q, *S] logits
    for b in range(2):
        masks[b, perms[b]] = torch.where(targets[b]["masks"], 10.0, -10.0)
    emb = F.normalize(torch.randn(2, Q, 8), dim=-1)
    text = F.normalize(torch.randn(R + 1, 8), dim=-1)
    matcher = HungarianMatcher(5, 5, 0, num_points=None)
    for b, (pred_idx, tgt_idx) in enumerate(matcher(masks, emb, text, torch.tensor(10.0), targets)):
        assert dict(zip(tgt_idx.tolist(), pred_idx.tolist())) == dict(enumerate(perms[b].tolist()))
    # random costs (masks + similarity): Hungarian total equals the best of all assignments
    matcher = HungarianMatcher(5, 5, 2, num_points=None, row_aspect=ROW_ASPECT)
    masks = torch.randn(2, Q, *S)
    indices = matcher(masks, emb, text, torch.tensor(10.0), targets)
    cand = text_candidates(ROW_ASPECT)
    for b, (pred_idx, tgt_idx) in enumerate(indices):
        cost = matcher.cost_matrix(masks[b], emb[b], text, torch.tensor(10.0), targets[b], cand)   # [Q, S_n]
        n = cost.shape[1]
        best = min(sum(cost[q, s] for s, q in enumerate(p)) for p in itertools.permutations(range(Q), n))
        assert cost[pred_idx, tgt_idx].sum().item() == pytest.approx(float(best), rel=1e-5)
        assert len(set(pred_idx.tolist())) == n


def test_matcher_batched_equals_per_sample_and_empty_targets():
    S = (5, 6, 7)
    targets = _random_targets(3, S, [2, 0, 4])
    masks = torch.randn(3, 6, *S)
    emb = F.normalize(torch.randn(3, 6, 8), dim=-1)
    text = F.normalize(torch.randn(R + 1, 8), dim=-1)
    matcher = HungarianMatcher(num_points=10 ** 6, row_aspect=ROW_ASPECT)   # more points than voxels: exact
    batched = matcher(masks, emb, text, torch.tensor(14.0), targets)
    for b in range(3):
        single = matcher(masks[b:b + 1], emb[b:b + 1], text, torch.tensor(14.0), targets[b:b + 1])[0]
        assert torch.equal(batched[b][0], single[0]) and torch.equal(batched[b][1], single[1])
    assert batched[1][0].numel() == 0 and batched[1][1].numel() == 0
    assert batched[1][0].dtype == torch.long
    # sampled points still give a full one-to-one matching
    sampled = HungarianMatcher(num_points=50)(masks, emb, text, torch.tensor(14.0), targets)
    assert [len(p) for p, _ in sampled] == [2, 0, 4]


def _outputs(B=2, Q=5, S=(8, 8, 8), C=8, L=3, requires_grad=True):
    def leaf(*shape):
        return torch.randn(*shape).requires_grad_(requires_grad)
    out = {"block_masks": [leaf(B, Q, *S) for _ in range(L)],
           "block_embeddings": [leaf(B, Q, C) for _ in range(L)],
           "text_embeddings": leaf(R + 1, C), "logit_scale": torch.tensor(1 / 0.07),
           "pred_masks": leaf(B, Q, *S)}
    return out


def _normalised(out):
    # the network returns L2-normalised embeddings; normalising views keeps the leaves for gradient checks
    o = dict(out)
    o["block_embeddings"] = [F.normalize(e, dim=-1) for e in out["block_embeddings"]]
    o["text_embeddings"] = F.normalize(out["text_embeddings"], dim=-1)
    return o


def test_assigner_and_criterion_losses_and_gradients():
    targets = instances_from_segmentation(_seg_two_blobs(), ["c1", None], FakeLookup(), 4, num_rows=R)
    leaves = _outputs()
    out = _normalised(leaves)
    assigner = SlotAssigner(HungarianMatcher(num_points=200), targets, ROW_ASPECT)
    weights = assigner(out)                                             # [B, Q, A, R+1]
    assert weights.shape == (2, 5, 8, R + 1)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5, 8))
    assert len(assigner.indices) == 3 and all(len(ix) == 2 for ix in assigner.indices)
    pred_idx, tgt_idx = assigner.indices[-1][1]
    unmatched = sorted(set(range(5)) - set(pred_idx.tolist()))
    assert (weights[1, unmatched, :, 0] == 1).all()
    assert (weights[1, pred_idx[0], 7, 0] == 1)                         # label 3 lacks specific_features
    crit = MaleniaCriterion(ROW_ASPECT, num_points=300)
    losses = crit(out, targets, assigner.indices)
    assert sorted(losses) == sorted([f"loss_deep_{i}" for i in range(3)] + [f"loss_sim_{i}" for i in range(3)]
                                    + ["loss_bce", "loss_dice", "loss_others"])
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    total = crit.weighted_total(losses)
    expected = (sum(losses[f"loss_deep_{i}"] for i in range(3)) / 3 + sum(losses[f"loss_sim_{i}"] for i in range(3)) / 3
                + 2 * losses["loss_bce"] + 2 * losses["loss_dice"] + 2 * losses["loss_others"])
    torch.testing.assert_close(total, expected)
    total.backward()
    for name in ("block_masks", "block_embeddings"):
        assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in leaves[name])
    for name in ("text_embeddings", "pred_masks"):
        assert leaves[name].grad is not None and leaves[name].grad.abs().sum() > 0


def test_full_voxel_losses_equal_direct_computation():
    targets = _random_targets(1, (4, 4, 4), [2])
    out = _outputs(B=1, Q=3, S=(4, 4, 4), requires_grad=False)
    indices = [[(torch.tensor([0, 2]), torch.tensor([1, 0]))]] * 3
    losses = MaleniaCriterion(ROW_ASPECT, num_points=None)(_normalised(out), targets, indices)
    pm, gt = out["pred_masks"][0, [0, 2]].flatten(1), targets[0]["masks"][[1, 0]].flatten(1).float()
    bce = F.binary_cross_entropy_with_logits(pm, gt, reduction="none").mean(1).sum() / 2
    p = pm.sigmoid()
    dice = (1 - (2 * (p * gt).sum(1) + 1) / (p.sum(1) + gt.sum(1) + 1)).sum() / 2
    torch.testing.assert_close(losses["loss_bce"], bce)
    torch.testing.assert_close(losses["loss_dice"], dice)
    # loss_others: token 0 (instance 1) on instance 0's voxels, token 2 (instance 0) on instance 1's voxels
    masks = targets[0]["masks"].flatten(1)
    others = [masks[0] & ~masks[1], masks[1] & ~masks[0]]
    expected = sum(F.softplus(pm[i][o]).mean() for i, o in enumerate(others)) / 2
    torch.testing.assert_close(losses["loss_others"], expected)


def test_other_lesion_loss_penalises_a_token_that_covers_a_neighbouring_lesion():
    seg = torch.zeros(1, 1, 8, 8, 8)
    seg[0, 0, 1:3, 1:3, 1:3] = 2
    seg[0, 0, 5:7, 5:7, 5:7] = 3
    targets = instances_from_segmentation(seg, ["c1"], FakeLookup(), 4, num_rows=R)
    order = targets[0]["labels"].tolist()
    own = targets[0]["masks"][order.index(2)]                           # [*S] the lesion token 0 is matched to
    both = targets[0]["masks"].any(0)
    out = _outputs(B=1, Q=2, S=(8, 8, 8), requires_grad=False)
    indices = [[(torch.tensor([0]), torch.tensor([order.index(2)]))]] * 3
    crit = MaleniaCriterion(ROW_ASPECT, num_points=None)
    out["pred_masks"][0, 0] = torch.where(own, 10.0, -10.0)
    clean = crit(_normalised(out), targets, indices)["loss_others"]
    out["pred_masks"][0, 0] = torch.where(both, 10.0, -10.0)           # also covers the other lesion
    covering = crit(_normalised(out), targets, indices)["loss_others"]
    # softplus(10) on every voxel of the other lesion, divided by the number of instances (2)
    torch.testing.assert_close(covering, F.softplus(torch.tensor(10.0)) / 2)
    assert clean.item() < 1e-3
    single = instances_from_segmentation((seg == 2).float() * 2, ["c1"], FakeLookup(), 4, num_rows=R)
    alone = crit(_normalised(out), single, [[(torch.tensor([0]), torch.tensor([0]))]] * 3)["loss_others"]
    assert alone.item() == 0.0
    assert "loss_others" not in MaleniaCriterion(ROW_ASPECT, num_points=None, weight_others=0.0)(
        _normalised(out), targets, indices)


def test_empty_targets_push_tokens_to_t0():
    targets = instances_from_segmentation(torch.zeros(2, 1, 8, 8, 8), None, FakeLookup(), 4, num_rows=R)
    leaves = _outputs()
    out = _normalised(leaves)
    assigner = SlotAssigner(HungarianMatcher(), targets, ROW_ASPECT)
    weights = assigner(out)
    assert (weights[..., 0] == 1).all()
    crit = MaleniaCriterion(ROW_ASPECT)
    losses = crit(out, targets, assigner.indices)
    for k in ("loss_bce", "loss_dice", "loss_deep_0", "loss_deep_2"):
        assert losses[k].item() == 0.0 and losses[k].requires_grad
    pos = torch.zeros(2, 5, R + 1, dtype=torch.bool)
    pos[..., 0] = True
    torch.testing.assert_close(losses["loss_sim_1"], mp_nce_loss(out["block_embeddings"][1], out["text_embeddings"],
                                                                 out["logit_scale"], pos, text_candidates(ROW_ASPECT)))
    crit.weighted_total(losses).backward()
    assert leaves["pred_masks"].grad is not None and leaves["block_embeddings"][0].grad.abs().sum() > 0


def test_ablation_flags():
    targets = instances_from_segmentation(_seg_two_blobs(), ["c1", None], FakeLookup(), 4, num_rows=R)
    out = _normalised(_outputs(requires_grad=False))
    matcher = HungarianMatcher(num_points=None)
    full = MaleniaCriterion(ROW_ASPECT, num_points=None, matcher=matcher)(out, targets)
    single_scale = MaleniaCriterion(ROW_ASPECT, num_points=None, matcher=matcher, multi_scale=False)(out, targets)
    assert [k for k in single_scale if k.startswith("loss_sim")] == ["loss_sim_2"]
    torch.testing.assert_close(single_scale["loss_sim_2"], full["loss_sim_2"])
    single_pos = MaleniaCriterion(ROW_ASPECT, num_points=None, matcher=HungarianMatcher(num_points=None,
                                  multi_positive=False), multi_positive=False)(out, targets)
    assert sorted(single_pos) == sorted(full)
    assert not torch.allclose(single_pos["loss_sim_2"], full["loss_sim_2"])
    # aspect-wise negatives change only the alignment terms, each downwards (fewer negatives per positive)
    aspect = MaleniaCriterion(ROW_ASPECT, num_points=None, matcher=matcher, aspect_negatives=True)(out, targets)
    assert sorted(aspect) == sorted(full)
    for name in full:
        if name.startswith("loss_sim"):
            assert aspect[name] < full[name], name
        else:
            torch.testing.assert_close(aspect[name], full[name])
    # a network's non-token columns (scan_phase) leave the no-lesion tokens' denominators: alignment terms only, down
    phase_rows = ROW_ASPECT == BANK_ASPECTS.index("enhancement_status")                # [R]
    phase_columns = torch.cat((torch.zeros(1, dtype=torch.bool), phase_rows))          # [R+1]
    scan = MaleniaCriterion(ROW_ASPECT, num_points=None, matcher=matcher)({**out, "non_token_columns": phase_columns},
                                                                          targets)
    for name in full:
        if name.startswith("loss_sim"):
            assert scan[name] < full[name], name
        else:
            torch.testing.assert_close(scan[name], full[name])
    weights = MaleniaCriterion(ROW_ASPECT, weight_deep=0.0, weight_sim=0.0, weight_seg=1.0, weight_bce=1.0,
                               weight_dice=0.0, weight_others=0.0)
    torch.testing.assert_close(weights.weighted_total(full), full["loss_bce"])


def test_scipy_fallback_and_bank_size_from_lookup(monkeypatch):
    import nnunetv2_malenia.losses.targets as targets_module

    class LookupWithBank(FakeLookup):
        bank = [None] * R                                               # only len() is used

    seg = _seg_two_blobs()
    with_cc3d = instances_from_segmentation(seg, ["c1", None], LookupWithBank(), 15)
    monkeypatch.setattr(targets_module, "cc3d", None)
    with_scipy = instances_from_segmentation(seg, ["c1", None], LookupWithBank(), 15)
    for a, b in zip(with_cc3d, with_scipy):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_criterion_without_row_aspect_warns_and_uses_every_column():
    targets = instances_from_segmentation(_seg_two_blobs(), ["c1", None], FakeLookup(), 4, num_rows=R)
    out = _normalised(_outputs(requires_grad=False))
    indices = [HungarianMatcher(num_points=None)(m, e, out["text_embeddings"], out["logit_scale"], targets)
               for m, e in zip(out["block_masks"], out["block_embeddings"])]
    with pytest.warns(UserWarning, match="row_aspect"):
        losses = MaleniaCriterion(num_points=None)(out, targets, indices)
    pos = token_positives(targets, indices[0], 5, R + 1)
    expected = mp_nce_loss(out["block_embeddings"][0], out["text_embeddings"], out["logit_scale"], pos,
                           torch.ones(R + 1, dtype=torch.bool), no_lesion_weight=0.1)
    torch.testing.assert_close(losses["loss_sim_0"], expected)


def test_point_sampling_puts_the_requested_share_inside_small_lesions():
    from nnunetv2_malenia.losses.dice_bce import sample_points_near_lesions

    masks = torch.zeros(1, 32, 32, 32, dtype=torch.bool)
    masks[0, 10:13, 10:13, 10:13] = True                                  # a 27-voxel lesion
    targets = [{"masks": masks}, {"masks": torch.zeros(0, 32, 32, 32, dtype=torch.bool)}]
    g = torch.Generator().manual_seed(0)
    points = sample_points_near_lesions(targets, 32 ** 3, 1000, torch.device("cpu"), 0.5, g)    # [2, 1000]
    inside = masks.flatten(1).any(0)
    assert points.shape == (2, 1000)
    assert inside[points[0]].float().mean() >= 0.5                       # uniform alone would give ~0.001
    assert inside[points[1]].float().mean() < 0.05                       # an empty patch stays uniform
    assert sample_points_near_lesions(targets, 32 ** 3, None, torch.device("cpu"), 0.5) is None


def test_no_lesion_weight_downweights_t0_only_tokens():
    # token 0: lesion with positive row 1; token 1: t0 only. With weight w the loss is (L0 + w L1) / (1 + w).
    emb = torch.nn.functional.normalize(torch.tensor([[[1.0, 0.2], [0.3, 1.0]]]), dim=-1)       # [1, 2, 2]
    text = torch.nn.functional.normalize(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.7, 0.7]]), dim=-1)  # [3, 2]
    pos = torch.tensor([[[False, True, False], [True, False, False]]])
    cand = torch.ones(3, dtype=torch.bool)
    scale = torch.tensor(2.0)
    per_token = [mp_nce_loss(emb[:, j:j + 1], text, scale, pos[:, j:j + 1], cand) for j in range(2)]
    weighted = mp_nce_loss(emb, text, scale, pos, cand, no_lesion_weight=0.1)
    torch.testing.assert_close(weighted, (per_token[0] + 0.1 * per_token[1]) / 1.1)


def test_lesion_aux_weights_follow_nnunet_deep_supervision():
    from nnunetv2_malenia.losses.lesion_aux import deep_supervision_weights

    weights = deep_supervision_weights(4)                               # coarsest first
    assert weights[0] == 0.0 and weights[-1] == max(weights)
    assert sum(weights) == pytest.approx(1.0)
    torch.testing.assert_close(torch.tensor(weights[1:]), torch.tensor([1.0, 2.0, 4.0]) / 7)
    assert deep_supervision_weights(1) == [1.0]


def test_lesion_aux_target_is_the_area_fraction_of_the_instance_union():
    from nnunetv2_malenia.losses.lesion_aux import lesion_target

    targets = _random_targets(2, (8, 8, 8), [2, 0])
    full = lesion_target(targets, (8, 8, 8), "cpu")                     # [B, 1, 8, 8, 8]
    assert torch.equal(full[0, 0].bool(), targets[0]["masks"].any(0)) and not full[1].any()
    coarse = lesion_target(targets, (4, 4, 4), "cpu")                   # [B, 1, 4, 4, 4]
    torch.testing.assert_close(coarse.mean(), full.mean())             # area averaging keeps the lesion volume
    assert 0 < coarse[0].max() <= 1


def test_lesion_aux_loss_rewards_the_right_lesion_map_and_needs_the_heads():
    from nnunetv2_malenia.losses.lesion_aux import lesion_aux_loss, lesion_target

    targets = _random_targets(2, (8, 8, 8), [2, 1])
    sizes = [(1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)]
    right = [torch.logit(lesion_target(targets, s, "cpu"), eps=1e-4) for s in sizes]   # the target's own map
    unsure = [torch.zeros_like(r) for r in right]
    wrong = [-r for r in right]
    assert lesion_aux_loss(right, targets) < lesion_aux_loss(unsure, targets) < lesion_aux_loss(wrong, targets)
    leaves = [torch.zeros(2, 1, *s, requires_grad=True) for s in sizes]
    lesion_aux_loss(leaves, targets).backward()
    assert leaves[0].grad is None and all(v.grad.abs().sum() > 0 for v in leaves[1:])   # coarsest weighs 0
    crit = MaleniaCriterion(ROW_ASPECT, weight_lesion=1.0)
    out = _normalised(_outputs(B=2, Q=5, S=(8, 8, 8)))
    indices = [HungarianMatcher()(m, e, out["text_embeddings"], out["logit_scale"], targets, row_aspect=ROW_ASPECT)
               for m, e in zip(out["block_masks"], out["block_embeddings"])]
    with pytest.raises(AssertionError, match="lesion_heads"):
        crit(out, targets, indices)
    losses = crit({**out, "lesion_logits": right}, targets, indices)
    total_without = MaleniaCriterion(ROW_ASPECT).weighted_total({k: v for k, v in losses.items()
                                                                 if k != "loss_lesion"})
    torch.testing.assert_close(crit.weighted_total(losses), total_without + losses["loss_lesion"])


def test_class_aux_loss_rebuilds_the_label_map_and_rewards_it():
    from nnunetv2_malenia.losses.lesion_aux import class_target, lesion_aux_loss

    targets = _random_targets(2, (8, 8, 8), [2, 1])
    targets[0]["labels"] = torch.tensor([1, 3])
    label_map = class_target(targets, (8, 8, 8), "cpu")                 # [B, 8, 8, 8]
    assert set(label_map[0].unique().tolist()) <= {0, 1, 3} and (label_map[0] == 3).any()
    assert torch.equal(label_map[1] > 0, targets[1]["masks"].any(0))
    assert class_target(targets, (4, 4, 4), "cpu").shape == (2, 4, 4, 4)
    sizes = [(1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)]
    right = [10 * F.one_hot(class_target(targets, s, "cpu"), 4).movedim(-1, 1).float() for s in sizes]
    wrong = [r.roll(1, dims=1) for r in right]
    assert lesion_aux_loss(right, targets) < 0.1 < 1.0 < lesion_aux_loss(wrong, targets)
