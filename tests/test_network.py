"""MaleniaNet (nnunetv2_malenia.network): shapes over plans, gradients, checkpoints, eval logits, bank updates,
slot prediction, knowledge-table class logits, CMKI ablations. CPU, seeded, small plans."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nnunetv2_malenia.network import NUM_ASPECTS, MaleniaNet, build_malenia_network, dense_logits
from nnunetv2_malenia.network.example_plans import unet_plans
from nnunetv2_malenia.network.malenia_net import CONTEXT_ASPECTS
from nnunetv2_malenia.network.lesion_intensity import INTENSITY_ASPECTS, LesionIntensityHead, region_statistics
from nnunetv2_malenia.network.mask_position import mask_moments
from nnunetv2_malenia.network.mask_decoder import (AttentionLayer, IntensityBins, attention_blocked, block_max, dilate,
                                                   mask_pooled_features, ring_pooled_features)
from nnunetv2_malenia.network.unet_features import decoder_features, select_attention_scales
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS, PARAGRAPH_ASPECT

R, D, K, Q = 20, 16, 2, 16
SMALL = {"num_bank_rows": R, "text_dim": D, "num_classes": K, "token_dim": 32, "num_heads": 4}
PARAGRAPH = BANK_ASPECTS.index(PARAGRAPH_ASPECT)

PLANS = {   # name: (patch, strides, features, architecture)
    "tiny3d": ([16, 16, 16], [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], [4, 8, 8, 16], "PlainConvUNet"),
    "aniso3d": ([4, 32, 32], [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]], [4, 8, 8, 16, 16],
                "PlainConvUNet"),
    "2d": ([32, 48], [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]], [4, 8, 8, 16, 16], "ResidualEncoderUNet"),
}


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # One thread: these tensors are tiny, and on a shared 2-core host OpenMP barriers dominate otherwise.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def bank(r: int = R, d: int = D):
    """Random normalised bank; aspects cycle through all BANK_ASPECTS (the 8, organ, paragraph)."""
    return F.normalize(torch.randn(r, d), dim=1), torch.arange(r) % len(BANK_ASPECTS)


def build(plan: str = "tiny3d", **overrides) -> MaleniaNet:
    patch, strides, features, arch = PLANS[plan]
    pm, cm = unet_plans(patch, strides, features, architecture=arch)
    settings = {**SMALL, **overrides}
    net = build_malenia_network(pm, cm, 1, settings["num_classes"] + 1, settings)
    net.set_text_bank(*bank(settings["num_bank_rows"], settings["text_dim"]))
    net.set_class_row_mask(torch.rand(settings["num_classes"], settings["num_bank_rows"]) < 0.4)
    return net


def sample(plan: str = "tiny3d", batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 1, *PLANS[plan][0])


class RandomSlots:
    """Stands in for the losses' SlotAssigner: valid weights (one-hot per aspect among t0 and that aspect's
    rows), the first token all t0 like an unmatched token, and records what it was called with."""

    def __init__(self, row_aspect: torch.Tensor, seed: int = 1):
        self.row_aspect, self.seed, self.seen = row_aspect, seed, None

    def __call__(self, out):
        self.seen = out
        b, q = out["block_embeddings"][-1].shape[:2]
        g = torch.Generator().manual_seed(self.seed)
        weights = torch.zeros(b, q, NUM_ASPECTS, len(self.row_aspect) + 1)     # [B, Q, A, R+1]
        for a in range(NUM_ASPECTS):
            cols = [0] + [r + 1 for r in range(len(self.row_aspect)) if int(self.row_aspect[r]) == a]
            pick = torch.tensor(cols)[torch.randint(len(cols), (b, q), generator=g)]   # [B, Q]
            weights[:, :, a] = F.one_hot(pick, len(self.row_aspect) + 1).float()
        weights[:, 0] = 0
        weights[:, 0, :, 0] = 1
        return weights


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_output_shapes(plan):
    net = build(plan)
    x = sample(plan)
    spatial = tuple(x.shape[2:])
    out = net(x)                                                     # training mode -> dict
    assert len(out["block_masks"]) == len(out["block_embeddings"]) == 3
    for masks, emb in zip(out["block_masks"], out["block_embeddings"]):
        assert masks.shape == (2, Q, *spatial) and emb.shape == (2, Q, 32)
        assert torch.allclose(emb.norm(dim=-1), torch.ones(2, Q), atol=1e-5)
    assert out["text_embeddings"].shape == (R + 1, 32)
    assert torch.allclose(out["text_embeddings"].norm(dim=-1), torch.ones(R + 1), atol=1e-5)
    assert out["slot_weights"].shape == (2, Q, NUM_ASPECTS, R + 1)
    for key in ("mask_m", "mask_t", "pred_masks"):
        assert out[key].shape == (2, Q, *spatial), key
    assert out["class_logits"].shape == (2, Q, K + 1)
    assert float(out["logit_scale"]) == pytest.approx(1 / 0.07)
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, K + 1, *spatial)


def test_attention_scales_follow_the_plan():
    net = build("aniso3d")                    # in-plane strides 16/8/4 only: the coarsest three, finest excluded
    assert net.attention_strides == [(4, 16, 16), (4, 8, 8), (2, 4, 4)]
    assert build("tiny3d").attention_strides == [(8, 8, 8), (4, 4, 4), (2, 2, 2)]
    # 6-stage plans have strides 32/16/8: exactly those, also when a 7th stage adds stride 64.
    six = [(32,) * 3, (16,) * 3, (8,) * 3, (4,) * 3, (2,) * 3, (1,) * 3]
    assert select_attention_scales(six) == [0, 1, 2]
    assert select_attention_scales([(64, 64)] + [(s[0], s[0]) for s in six]) == [1, 2, 3]
    # Fewer than three non-finest features: reuse the coarsest.
    assert select_attention_scales([(4, 4), (2, 2), (1, 1)]) == [0, 0, 1]
    assert select_attention_scales([(2, 2), (1, 1)]) == [0, 0, 0]


def test_strided_finest_feature_is_upsampled_to_patch():
    pm, cm = unet_plans([32, 32], [[2, 2], [2, 2], [2, 2]], [8, 16, 16])
    net = build_malenia_network(pm, cm, 1, K + 1, SMALL)
    x = torch.randn(1, 1, 32, 32)
    out = net(x)
    assert out["block_masks"][0].shape == out["pred_masks"].shape == (1, Q, 32, 32)


ABLATIONS = {"default": {}, "mask_only": {"branches": "mask"}, "text_only": {"branches": "text"},
             "no_fusion": {"fusion": False}, "mask_only_no_fusion": {"branches": "mask", "fusion": False},
             "two_cmki_layers_text_only": {"branches": "text", "cmki_layers": 2},
             "mask_pooling": {"mask_pooling": True}, "mask_residual": {"mask_residual": True},
             "pooling_and_residual": {"mask_pooling": True, "mask_residual": True},
             "context_ring": {"context_ring": 2},
             "context_pooling_residual": {"context_ring": 1, "mask_pooling": True, "mask_residual": True},
             "tissue_context": {"context_ring": 2, "context_source": "image", "masked_attention": True,
                                "mask_pooling": True, "mask_residual": True},
             "masked_attention": {"masked_attention": True, "mask_pooling": True, "mask_residual": True},
             "aspect_heads": {"aspect_heads": True, "masked_attention": True, "mask_pooling": True,
                              "mask_residual": True},
             "scan_phase": {"aspect_heads": True, "scan_phase": True, "masked_attention": True,
                            "mask_pooling": True, "mask_residual": True},
             "position_location": {"aspect_heads": True, "scan_phase": True, "position_location": True,
                                   "masked_attention": True, "mask_pooling": True, "mask_residual": True},
             "lesion_intensity": {"aspect_heads": True, "scan_phase": True, "lesion_intensity": True,
                                  "masked_attention": True, "mask_pooling": True, "mask_residual": True}}


@pytest.mark.parametrize("setting", sorted(ABLATIONS))
def test_gradient_reaches_every_parameter(setting):
    # Also for the ablations: a parameter without gradient would break DDP (no find_unused_parameters).
    net = build(**ABLATIONS[setting])
    assigner = RandomSlots(net.row_aspect)
    out = net(sample(), slot_assigner=assigner)
    assert set(assigner.seen) == {"block_masks", "block_embeddings", "text_embeddings", "logit_scale"}
    # What the criterion uses: per-block masks and embeddings, text embeddings, final masks (not mask_m/mask_t).
    tensors = [*out["block_masks"], *out["block_embeddings"], out["text_embeddings"], out["pred_masks"]]
    sum(t.float().square().mean() for t in tensors).backward()
    no_grad = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    assert not any("seg_layers" in n for n, _ in net.named_parameters())


def test_slot_assigner_weights_drive_cmki_and_are_returned():
    net = build()
    x = sample()
    a = net(x, slot_assigner=RandomSlots(net.row_aspect, seed=1))
    b = net(x, slot_assigner=RandomSlots(net.row_aspect, seed=2))
    assert torch.equal(a["slot_weights"], RandomSlots(net.row_aspect, seed=1)(a))
    assert torch.equal(a["block_masks"][2], b["block_masks"][2])
    assert not torch.allclose(a["pred_masks"], b["pred_masks"])
    with pytest.raises(AssertionError, match=r"\[B, Q, A, R\+1\]"):
        net(x, slot_assigner=lambda out: torch.zeros(2, Q, NUM_ASPECTS, R))


def test_state_dict_round_trip_gives_identical_eval_output():
    net = build().eval()
    x = sample()
    with torch.no_grad():
        expected = net(x)
    torch.manual_seed(123)                                          # different init, empty bank of another size
    patch, strides, features, arch = PLANS["tiny3d"]
    pm, cm = unet_plans(patch, strides, features, architecture=arch)
    rebuilt = build_malenia_network(pm, cm, 1, K + 1, {**SMALL, "num_bank_rows": 3}).eval()
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), expected)
    assert rebuilt.num_bank_rows == R and torch.equal(rebuilt.class_row_mask, net.class_row_mask)


def test_eval_output_is_valid_logits_for_softmax():
    net = build().eval()
    with torch.no_grad():
        logits = net(sample())
    assert logits.shape == (2, K + 1, 16, 16, 16) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    probs = logits.softmax(1)
    assert torch.allclose(probs.sum(1), torch.ones_like(probs[:, 0]), atol=1e-5)


def test_dense_logits_formula():
    class_logits = torch.tensor([[[2.0, 0.0, -1.0], [-3.0, 1.0, 0.5]]])   # [1, 2, 3]: B=1, Q=2, K=2
    masks = torch.tensor([[[0.0, 4.0], [3.0, -5.0]]])                   # [1, 2, 2]: two voxels
    p = class_logits.softmax(-1)[0]                                      # [Q, K+1]
    m = masks.sigmoid()[0]                                               # [Q, N]
    fg = p[:, 1:].T @ m                                                  # [K, N]
    bg = (1 - fg.sum(0, keepdim=True)).clamp_min(0)
    assert torch.allclose(dense_logits(class_logits, masks, "joint")[0], torch.log(torch.cat((bg, fg)) + 1e-6))
    # lesion first: L = sum_q (1 - p0_q) m_q, all of it to the best disease of the voxel
    lesion = ((1 - p[:, :1]).T @ m).clamp_max(1)                          # [1, N]
    winner = torch.nn.functional.one_hot(fg.argmax(0), 2).T.float()        # [K, N]
    expected = torch.log(torch.cat((1 - lesion, winner * lesion)) + 1e-6)
    assert torch.allclose(dense_logits(class_logits, masks)[0], expected, atol=1e-6)


def test_lesion_first_keeps_a_confident_lesion_that_two_diseases_share():
    """A token sure of 'lesion' (p0 = 0.02) with mask probability 0.6, split evenly between two diseases of one
    organ: the joint rule gives background (bg 1 - 0.98 * 0.6 = 0.41 > fg 0.49 * 0.6 = 0.29), lesion-first labels
    it (L = 0.59 > 0.5)."""
    class_logits = torch.log(torch.tensor([[[0.02, 0.49, 0.49]]]))        # [1, 1, 3]
    masks = torch.full((1, 1, 1), float(torch.logit(torch.tensor(0.6))))  # m = 0.6
    joint = dense_logits(class_logits, masks, "joint")[0, :, 0].argmax()
    first = dense_logits(class_logits, masks)[0, :, 0].argmax()
    assert int(joint) == 0 and int(first) in (1, 2)


def test_set_text_bank_and_class_rows_with_new_sizes():
    net = build()
    r2, k2 = 35, 4
    net.set_text_bank(*bank(r2))
    assert net.class_row_mask.shape == (K, r2) and not net.class_row_mask.any()   # reset: rows changed
    net.set_class_row_mask(torch.rand(k2, r2) < 0.3)
    out = net(sample())
    assert out["text_embeddings"].shape == (r2 + 1, 32) and out["slot_weights"].shape[-1] == r2 + 1
    assert out["class_logits"].shape == (2, Q, k2 + 1)
    net.eval()
    with torch.no_grad():
        assert net(sample()).shape == (2, k2 + 1, 16, 16, 16)
    with pytest.raises(AssertionError, match="embeddings must be"):
        net.set_text_bank(torch.zeros(5, D + 1), torch.zeros(5, dtype=torch.long))
    with pytest.raises(AssertionError, match="class_row_mask must be"):
        net.set_class_row_mask(torch.zeros(k2, r2 + 1, dtype=torch.bool))


def test_predict_slots_takes_per_aspect_argmax():
    net = build()
    emb = F.normalize(torch.randn(2, Q, 32), dim=-1)
    text = F.normalize(torch.randn(R + 1, 32), dim=-1)
    text[0] = emb[0, 0]                                   # token (0, 0) is closest to t0 in every aspect
    slots = net.predict_slots(emb, text)
    assert slots.shape == (2, Q, NUM_ASPECTS, R + 1) and torch.equal(slots.sum(-1), torch.ones(2, Q, NUM_ASPECTS))
    sim = emb @ text.T
    for b in range(2):
        for q in range(Q):
            for a in range(NUM_ASPECTS):
                cols = [0] + [r + 1 for r in range(R) if int(net.row_aspect[r]) == a]
                best = max(cols, key=lambda c: float(sim[b, q, c]))
                assert int(slots[b, q, a].argmax()) == best
    assert torch.equal(slots[0, 0].argmax(-1), torch.zeros(NUM_ASPECTS, dtype=torch.long))
    organ_or_paragraph = [r + 1 for r in range(R) if int(net.row_aspect[r]) >= NUM_ASPECTS]
    assert not slots[..., organ_or_paragraph].any()


def test_class_logits_follow_knowledge_table():
    net = build(num_bank_rows=5, num_classes=3)
    # rows: 0,1 shape (aspect 2); 2 density (aspect 3); 3 organ; 4 paragraph
    net.set_text_bank(F.normalize(torch.randn(5, D), dim=1), torch.tensor([2, 2, 3, 8, PARAGRAPH]))
    net.set_class_row_mask(torch.tensor([[1, 1, 1, 0, 1],     # class 1: shape rows 0,1 + density row 2 (+ paragraph)
                                         [0, 0, 0, 1, 0],     # class 2: organ row only
                                         [0, 0, 0, 0, 1]],    # class 3: paragraph only -> no evidence
                                        dtype=torch.bool))
    emb = F.normalize(torch.randn(1, 2, 32), dim=-1)
    text = F.normalize(torch.randn(6, 32), dim=-1)
    s = (emb @ text.T)[0] / 0.07                                                   # [Q, R+1]
    expected = torch.stack((s[:, 0], (torch.maximum(s[:, 1], s[:, 2]) + s[:, 3]) / 2, s[:, 4],
                            torch.full_like(s[:, 0], -1.0e4)), dim=-1)
    assert torch.allclose(net.class_logits(emb, text)[0], expected, atol=1e-4)


def test_single_positive_models_name_by_paragraph_and_organ_rows_only():
    """A model trained with one positive per lesion (match_paragraphs) is named by the rows it was aligned with."""
    net = build(num_bank_rows=5, num_classes=3, match_paragraphs=True)
    net.set_text_bank(F.normalize(torch.randn(5, D), dim=1), torch.tensor([2, 2, 3, 8, PARAGRAPH]))
    net.set_class_row_mask(torch.tensor([[1, 1, 1, 0, 1],     # class 1: descriptions and its paragraph
                                         [0, 0, 0, 1, 0],     # class 2: organ row only (organ labels: no paragraph)
                                         [1, 1, 1, 0, 0]],    # class 3: descriptions only -> no evidence here
                                        dtype=torch.bool))
    emb = F.normalize(torch.randn(1, 2, 32), dim=-1)
    text = F.normalize(torch.randn(6, 32), dim=-1)
    s = (emb @ text.T)[0] / 0.07                                                   # [Q, R+1]
    expected = torch.stack((s[:, 0], s[:, 5], s[:, 4], torch.full_like(s[:, 0], -1.0e4)), dim=-1)
    assert torch.allclose(net.class_logits(emb, text)[0], expected, atol=1e-4)
    assert not build().match_paragraphs


def test_cmki_ensemble_is_mlp_of_weighted_branches():
    net = build()
    out = net(sample(batch=1), slot_assigner=RandomSlots(net.row_aspect))
    x = 0.5 * out["mask_m"] + 0.5 * out["mask_t"]                                  # [1, Q, *S]
    flat = x.reshape(1, Q, -1).transpose(1, 2)                                     # [1, N, Q]
    ens = net.cmki.ensemble
    expected = flat + ens.fc2(ens.act(ens.fc1(flat)))                              # [1, N, Q]
    assert torch.allclose(out["pred_masks"].reshape(1, Q, -1).transpose(1, 2), expected, atol=1e-4)


def test_ablation_switches_change_the_path():
    x = sample(batch=1)
    full = build()
    outs = {}
    for name, kw in {"both": {}, "mask": {"branches": "mask"}, "text": {"branches": "text"},
                     "nofusion": {"fusion": False}, "mask_nofusion": {"branches": "mask", "fusion": False}}.items():
        net = build(**kw)
        missing, unexpected = net.load_state_dict(full.state_dict(), strict=False)   # share all common weights
        assert not missing, missing
        runs = [net(x, slot_assigner=RandomSlots(net.row_aspect, seed=s)) for s in (1, 2)]
        outs[name] = runs
        assert torch.isfinite(runs[0]["pred_masks"]).all()
    assert outs["mask"][0]["mask_t"] is None and outs["text"][0]["mask_m"] is None
    assert not any("fusion" in n for n, _ in build(fusion=False).named_parameters())
    preds = {name: runs[0]["pred_masks"] for name, runs in outs.items()}
    for a, b in [("both", "mask"), ("both", "text"), ("mask", "text"), ("both", "nofusion")]:
        assert not torch.allclose(preds[a], preds[b]), (a, b)
    # Mask-token branch without fusion never sees the text slots; with fusion (or the text branch) it does.
    assert torch.equal(outs["mask_nofusion"][0]["pred_masks"], outs["mask_nofusion"][1]["pred_masks"])
    for name in ("mask", "text", "both"):
        assert not torch.allclose(outs[name][0]["pred_masks"], outs[name][1]["pred_masks"]), name


def test_describe_reports_token_probabilities():
    net = build().eval()
    info = net.describe(sample(batch=1))
    assert info["mask_probs"].shape == (1, Q, 16, 16, 16) and 0 <= float(info["mask_probs"].min())
    assert torch.allclose(info["class_probs"].sum(-1), torch.ones(1, Q))
    assert info["slot_rows"].shape == (1, Q, NUM_ASPECTS) and info["logits"].shape == (1, K + 1, 16, 16, 16)
    assert not info["pred_masks"].requires_grad


def test_build_checks_output_channels_and_settings():
    pm, cm = unet_plans(*PLANS["tiny3d"][:3])
    with pytest.raises(AssertionError, match="num_output_channels == num_classes \\+ 1"):
        build_malenia_network(pm, cm, 1, K, SMALL)
    with pytest.raises(AssertionError, match="unknown \\['num_querys'\\]"):
        build_malenia_network(pm, cm, 1, K + 1, {**SMALL, "num_querys": 8})


# --- issue #12 C: naming rules ------------------------------------------------------------------------------------

def _embedding_with_similarities(similarities, dim: int = 32):
    """One token e_0 and text columns with exactly the given cosine similarities to it: column c =
    s_c e_0 + sqrt(1 - s_c^2) e_{c+1} (orthonormal e). -> emb [1, 1, dim], text [len(similarities), dim]."""
    s = torch.tensor(similarities)                                        # [R+1]
    basis = torch.eye(dim)
    text = s[:, None] * basis[0] + (1 - s[:, None] ** 2).sqrt() * basis[1:len(s) + 1]   # [R+1, dim]
    return basis[0].reshape(1, 1, dim), text


def _tumour_and_cyst_net():
    """Rows: density hypo/iso/hyper (0-2), shape round/lobulated (3-4), surface smooth/irregular (5-6), paragraph (7).
    Class 1 'tumour' accepts every density and shape value and an irregular surface; class 2 'cyst' hypodense,
    round, smooth; class 3 only a paragraph row (no evidence)."""
    shape, density, surface = (ASPECT_INDEX[a] for a in ("shape", "density", "surface"))
    net = build(num_bank_rows=8, num_classes=3)
    net.set_text_bank(F.normalize(torch.randn(8, D), dim=1),
                      torch.tensor([density] * 3 + [shape] * 2 + [surface] * 2 + [PARAGRAPH]))
    net.set_class_row_mask(torch.tensor([[1, 1, 1, 1, 1, 0, 1, 1],
                                         [1, 0, 0, 1, 0, 1, 0, 1],
                                         [0, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.bool))
    # t0 0.5 beats every density row (best: iso 0.45, tumour's) but no shape or surface row; round 0.6 (both); smooth
    # 0.52 (cyst) vs irregular 0.45 (tumour); the paragraph row 0.9 never counts.
    emb, text = _embedding_with_similarities([0.5, 0.3, 0.45, 0.4, 0.6, 0.3, 0.52, 0.45, 0.9])
    return net, emb, text


ASPECT_INDEX = {a: i for i, a in enumerate(BANK_ASPECTS)}


def test_aspect_vote_names_the_specific_disease_best_match_the_many_valued_one():
    """best_match: tumour (0.45 + 0.6 + 0.45) / 3 = 0.5 > cyst (0.3 + 0.6 + 0.52) / 3 = 0.47, because tumour's
    density score is its best of three values although the token chose t0 for density. aspect_vote: density votes
    for nobody, shape for both, surface for cyst: tumour 1/3, cyst 2/3."""
    net, emb, text = _tumour_and_cyst_net()
    votes, aspects = net.aspect_votes(emb, text)
    assert votes[0, 0].tolist() == [1.0, 2.0, 0.0] and aspects.tolist() == [3.0, 3.0, 0.0]
    best = net.class_logits(emb, text, rule="best_match")[0, 0]               # [K+1]
    vote = net.class_logits(emb, text, rule="aspect_vote")[0, 0]              # [K+1]
    assert torch.allclose(best[1:3] * 0.07, torch.tensor([0.5, 1.42 / 3]), atol=1e-5)
    assert int(best[1:].argmax()) == 0 and int(vote[1:].argmax()) == 1        # tumour vs cyst
    assert float(best[3]) == float(vote[3]) == -1.0e4                         # paragraph-only class: no rows
    # the disease split is the vote share (tie weight aside): q = (1/3, 2/3)
    q = vote[1:3].softmax(-1)
    assert torch.allclose(q, torch.tensor([1 / 3, 2 / 3]), atol=2e-3)


def test_likelihood_weighs_each_aspect_by_the_mean_probability_of_the_accepted_values():
    """Per aspect, softmax over the aspect's rows at scale 1/0.07 (t0 left out): density p = softmax(14.29 x (0.3,
    0.45, 0.4)), shape softmax(14.29 x (0.6, 0.3)), surface softmax(14.29 x (0.52, 0.45)). Tumour: log(mean of the
    three densities = 1/3) + log p(round) + log p(lobulated) ... it accepts both shapes: log(1/2); irregular surface.
    Cyst: hypodense, round, smooth. The class with only a paragraph row has no rows, so no share."""
    net, emb, text = _tumour_and_cyst_net()
    scale = 1 / 0.07
    log_p = lambda sims: torch.log_softmax(torch.tensor(sims) * scale, dim=0)
    density, shape, surface = log_p([0.3, 0.45, 0.4]), log_p([0.6, 0.3]), log_p([0.52, 0.45])
    tumour = math.log(1 / 3) + math.log(1 / 2) + float(surface[1])
    cyst = float(density[0]) + float(shape[0]) + float(surface[0])
    ll, has_rows = net.attribute_log_likelihood(emb, text)                    # [1, 1, K], [K]
    assert has_rows.tolist() == [True, True, False]
    assert torch.allclose(ll[0, 0, :2], torch.tensor([tumour, cyst]), atol=1e-4)
    logits = net.class_logits(emb, text, rule="likelihood")[0, 0]             # [K+1]
    assert float(logits[3]) == -1.0e4
    split = logits[1:3].softmax(-1)                                           # the diseases' split of the lesion mass
    expected = torch.tensor([tumour, cyst]).softmax(-1)
    assert torch.allclose(split, expected, atol=1e-4) and int(split.argmax()) == 1     # cyst, as aspect_vote


def test_naming_rules_share_the_lesion_probability_and_differ_only_in_naming():
    net = build(num_bank_rows=40, num_classes=6)
    emb = F.normalize(torch.randn(2, 5, 32), dim=-1)                          # [B, Q, C]
    text = net.text_embeddings().detach()
    best = net.class_logits(emb, text, rule="best_match")
    masks = torch.randn(2, 5, 4, 4, 4)
    for rule in ("aspect_vote", "likelihood"):
        other = net.class_logits(emb, text, rule=rule)
        assert best.shape == other.shape == (2, 5, 7) and other.dtype == torch.float32, rule
        assert torch.isfinite(other).all(), rule
        assert torch.equal(other[..., 0], best[..., 0]), rule                     # t0 column untouched
        assert torch.allclose(other.softmax(-1)[..., 0], best.softmax(-1)[..., 0], atol=1e-6), rule   # p0
        background = [dense_logits(logits, masks)[:, 0].exp() for logits in (other, best)]   # P(bg) = 1 - L + eps
        assert torch.allclose(*background, atol=1e-6), rule
        assert not torch.allclose(other[..., 1:].softmax(-1), best[..., 1:].softmax(-1), atol=1e-3), rule


def test_seen_penalty_moves_only_the_naming_and_only_between_seen_and_unseen_classes():
    # calibrated stacking: lesion probability (so the segmentation) unchanged; the seen/unseen odds of every token
    # fall by exp(penalty) (rise, for a negative one); within the seen (and within the unseen) classes the odds stay;
    # 0 is the identity
    net = build(num_bank_rows=40, num_classes=6)
    emb = F.normalize(torch.randn(2, 5, 32), dim=-1)                          # [B, Q, C]
    text = net.text_embeddings().detach()
    plain = net.class_logits(emb, text)                                       # [B, Q, K+1]
    seen = torch.tensor([True, True, False, False, True, False])              # [K]
    net.set_seen_penalty(1.5, seen)
    calibrated = net.class_logits(emb, text)
    p, c = plain.softmax(-1), calibrated.softmax(-1)
    assert torch.allclose(p[..., 0], c[..., 0], atol=1e-6)
    odds = lambda probs: (probs[..., 1:][..., seen].sum(-1) / probs[..., 1:][..., ~seen].sum(-1))   # [B, Q]
    assert torch.allclose(odds(c), odds(p) * torch.exp(torch.tensor(-1.5)), rtol=1e-4)
    assert torch.allclose(c[..., 1], c[..., 2] * p[..., 1] / p[..., 2], rtol=1e-4)   # within seen: unchanged
    masks = torch.randn(2, 5, 4, 4, 4)
    background = [dense_logits(logits, masks)[:, 0].exp() for logits in (plain, calibrated)]   # 1 - L + eps
    assert torch.allclose(*background, atol=1e-6)
    net.set_seen_penalty(-0.5, seen)                                          # a bonus: odds rise by exp(0.5)
    assert torch.allclose(odds(net.class_logits(emb, text).softmax(-1)), odds(p) * torch.exp(torch.tensor(0.5)),
                          rtol=1e-4)
    net.set_seen_penalty(0.0)
    assert torch.equal(net.class_logits(emb, text), plain)
    with pytest.raises(AssertionError, match="seen_classes must be"):
        net.set_seen_penalty(-1.0, seen[:3])
    with pytest.raises(AssertionError, match="finite"):
        net.set_seen_penalty(float("nan"), seen)


def test_aspect_vote_ranks_by_vote_fraction_and_breaks_ties_by_best_match():
    net = build(num_bank_rows=40, num_classes=6)
    emb = F.normalize(torch.randn(3, 8, 32), dim=-1)
    text = net.text_embeddings().detach()
    votes, aspects = net.aspect_votes(emb, text)
    fraction = votes / aspects.clamp_min(1)                                   # [B, Q, K]
    best = net.class_logits(emb, text, rule="best_match")[..., 1:]
    vote = net.class_logits(emb, text, rule="aspect_vote")[..., 1:]
    has = aspects > 0
    for f, b, v in zip(fraction.reshape(-1, 6), best.reshape(-1, 6), vote.reshape(-1, 6)):
        for i in range(6):
            for j in range(6):
                if has[i] and has[j] and (f[i] > f[j] or (f[i] == f[j] and b[i] > b[j])):
                    assert v[i] > v[j], (f, b, v)


def test_naming_rule_is_a_setting_and_switchable_without_retraining():
    x = sample(batch=1)
    trained = build(naming_rule="aspect_vote")
    assert trained.naming_rule == "aspect_vote" and build().naming_rule == "best_match"
    with pytest.raises(AssertionError, match="unknown naming rule"):
        build(naming_rule="vote")
    trained.eval()
    with torch.no_grad():
        out = trained(x, return_dict=True)
        emb, text = out["block_embeddings"][-1], out["text_embeddings"]
        assert torch.equal(out["class_logits"], trained.aspect_vote_logits(emb, text))
        trained.naming_rule = "best_match"                                    # what --naming-rule does
        assert torch.equal(trained(x, return_dict=True)["class_logits"], trained.best_match_logits(emb, text))


@pytest.mark.parametrize("heads, channels", [("lesion", 1), ("classes", K + 1)])
def test_lesion_heads_give_one_map_per_decoder_stage_and_old_models_load_without_them(heads, channels):
    net = build(lesion_heads=heads)
    out = net(sample(), slot_assigner=RandomSlots(net.row_aspect))
    maps = out["lesion_logits"]                                          # coarsest first, [B, 1 or K+1, *S_i]
    assert tuple(maps[-1].shape[2:]) == tuple(PLANS["tiny3d"][0]) and all(m.shape[1] == channels for m in maps)
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None and p.grad.any() for p in net.lesion_heads.parameters())
    # heads are training-only: a model built without the setting (the plans of every model trained before it)
    # has none and its state dict has no such keys, so old checkpoints load strictly
    without = build()
    assert "lesion_logits" not in without(sample(), slot_assigner=RandomSlots(without.row_aspect))
    assert not any(k.startswith("lesion_heads") for k in without.state_dict())
    with pytest.raises(AssertionError, match="lesion_heads"):
        build(lesion_heads="yes")


def test_mask_pooled_features_average_the_pixel_feature_under_each_mask():
    pixel = torch.arange(8.0).reshape(1, 1, 2, 2, 2).repeat(1, 2, 1, 1, 1)    # [B=1, Cm=2, 2, 2, 2], values 0..7
    pixel[:, 1] *= -1
    logits = torch.full((1, 3, 2, 2, 2), -30.0)                              # [B, Q=3, *S]: all but empty
    logits[0, 0, 0] = 30.0                                                   # token 0: first half, voxels 0..3
    logits[0, 1] = 30.0                                                      # token 1: everything
    pooled = mask_pooled_features(logits, pixel)                             # [B, Q, Cm]
    assert torch.allclose(pooled[0, 0], torch.tensor([1.5, -1.5]), atol=1e-5)
    assert torch.allclose(pooled[0, 1], torch.tensor([3.5, -3.5]), atol=1e-5)
    assert pooled[0, 2].abs().max() < 1e-5                                   # empty mask: ~0, not an average


def test_mask_pooling_eval_path_names_as_the_dict_path_and_old_models_load_without_it():
    net = build(mask_pooling=True).eval()
    with torch.no_grad():
        torch.nn.init.normal_(net.mask_decoder.pool_proj.weight)           # zero at init; trained it is not
        x = sample()
        out = net(x, return_dict=True)
        # dense eval computes only the last block's mask for the pooling: same embedding, same logits
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)
        # the embedding reads the image under the token's mask: change only the pixel feature's input, it moves
        plain = build(mask_pooling=False).eval()
        plain.load_state_dict({k: v for k, v in net.state_dict().items() if "pool_proj" not in k}, strict=True)
        assert not torch.allclose(plain(x, return_dict=True)["block_embeddings"][-1], out["block_embeddings"][-1])
    assert not any("pool_proj" in k for k in build().state_dict())         # models trained before it load


@pytest.mark.parametrize("pooling", [False, True])
def test_mask_residual_adds_the_last_block_mask_in_training_and_eval(pooling):
    net = build(mask_residual=True, mask_pooling=pooling).eval()
    plain = build(mask_pooling=pooling).eval()
    plain.load_state_dict(net.state_dict(), strict=True)              # the residual adds no parameters
    x = sample()
    with torch.no_grad():
        out, ref = net(x, return_dict=True), plain(x, return_dict=True)
        assert torch.allclose(out["pred_masks"], ref["pred_masks"] + ref["block_masks"][-1], atol=1e-5)
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)


def test_ring_pooled_features_average_the_shell_around_each_mask_not_inside_it():
    pixel = torch.zeros(1, 1, 7, 7, 7)                                        # [B=1, Cm=1, 7^3]
    pixel[0, 0, 3, 3, 3] = 100.0                                             # the lesion voxel
    pixel[0, 0, 2:5, 2:5, 2:5] += 1.0                                        # its one-voxel shell (and itself)
    logits = torch.full((1, 2, 7, 7, 7), -30.0)                              # [B, Q=2, *S]
    logits[0, 0, 3, 3, 3] = 30.0                                             # token 0: one voxel in the middle
    pooled = ring_pooled_features(logits, pixel, radius=1)                   # [B, Q, Cm]
    assert torch.allclose(pooled[0, 0], torch.tensor([1.0]), atol=1e-4)    # 26 shell voxels of 1, centre left out
    assert pooled[0, 1].abs().max() < 1e-5                                   # empty mask: empty shell, ~0
    wide = ring_pooled_features(logits, pixel, radius=2)                     # 124 shell voxels, 26 of them 1
    assert torch.allclose(wide[0, 0], torch.tensor([26 / 124]), atol=1e-4)


def test_context_block_compares_location_rows_with_the_surroundings_and_the_rest_with_the_token():
    net = build(context_ring=2).eval()
    c = net.token_dim
    text = net.text_embeddings()                                             # [R+1, 2C]
    assert text.shape == (R + 1, 2 * c)
    in_context = torch.isin(net.row_aspect, torch.tensor(CONTEXT_ASPECTS))   # [R]
    assert in_context.any() and (~in_context).any()
    assert text[1:][in_context, :c].abs().max() == 0 and text[1:][~in_context, c:].abs().max() == 0
    assert text[0, c:].abs().max() == 0                                      # t0 is an appearance column
    # fold_text gives back each column's own embedding (what CMKI's slots read)
    plain = build().eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if "context_proj" not in k}, strict=True)
    assert torch.allclose(net.fold_text(text), plain.text_embeddings(), atol=1e-6)
    x = sample()
    with torch.no_grad():
        out = net(x, return_dict=True)
        emb = out["block_embeddings"][-1]                                    # [B, Q, 2C]
        assert emb.shape[-1] == 2 * c
        assert torch.allclose(emb[..., :c].norm(dim=-1), torch.ones(emb.shape[:2]), atol=1e-5)
        assert torch.allclose(emb[..., c:].norm(dim=-1), torch.ones(emb.shape[:2]), atol=1e-5)
        # the appearance block is the network without context: every non-location similarity is unchanged
        ref = plain(x, return_dict=True)["block_embeddings"][-1]             # [B, Q, C]
        assert torch.allclose(emb[..., :c], ref, atol=1e-5)
        # dense eval computes the last block's mask for the ring: same logits as the dict path
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)
    assert not any("context_proj" in k for k in build().state_dict())       # models trained before it load
    with pytest.raises(AssertionError, match="context_ring"):
        build(context_ring=-1)



def test_aspect_heads_compare_each_aspect_through_its_own_head():
    net = build(aspect_heads=True, mask_pooling=True).eval()
    c, n = net.token_dim, 1 + len(BANK_ASPECTS)
    assert net.text_blocks == n
    text = net.text_embeddings()                                             # [R+1, n*C]
    assert text.shape == (R + 1, n * c)
    per_block = text.unflatten(-1, (n, c)).norm(dim=-1)                      # [R+1, n]
    expected = F.one_hot(torch.cat((torch.zeros(1, dtype=torch.long), net.row_aspect + 1)), n).float()
    assert torch.allclose(per_block, expected, atol=1e-6)                    # t0 in block 0, aspect a in block a+1
    plain = build(mask_pooling=True).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items()
                           if not k.startswith(("mask_decoder.text_head", "mask_decoder.pool_proj"))}, strict=False)
    assert torch.allclose(net.fold_text(text), plain.text_embeddings(), atol=1e-6)   # CMKI reads each row's own
    x = sample()
    with torch.no_grad():
        out = net(x, return_dict=True)
        emb = out["block_embeddings"][-1]                                    # [B, Q, n*C]
        blocks = emb.unflatten(-1, (n, c))                                   # [B, Q, n, C]
        assert torch.allclose(blocks.norm(dim=-1), torch.ones(blocks.shape[:3]), atol=1e-5)
        # a row's similarity is the cosine of its own head's block with the row: the heads differ
        sim = torch.einsum("bqe,re->bqr", emb, text)                         # [B, Q, R+1]
        r = 3
        own = blocks[..., int(net.row_aspect[r]) + 1, :] @ net.fold_text(text)[r + 1]   # [B, Q]
        assert torch.allclose(sim[..., r + 1], own, atol=1e-5)
        assert not torch.allclose(blocks[..., 1, :], blocks[..., 2, :])
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)
    # rows without an aspect live in no block: zero columns, never a match
    net.set_text_bank(F.normalize(torch.randn(R, D), dim=1), torch.full((R,), -1))
    assert net.text_embeddings()[1:].abs().max() == 0
    assert tuple(build().mask_decoder.text_head.weight.shape) == (32, 32)    # models trained before it load
    with pytest.raises(AssertionError, match="text_blocks"):
        build(aspect_heads=True, context_ring=1)


def test_scan_phase_puts_one_scan_embedding_in_every_token_of_the_scan():
    net = build(aspect_heads=True, scan_phase=True, mask_pooling=True, masked_attention=True).eval()
    c, n = net.token_dim, net.text_blocks
    phase = BANK_ASPECTS.index("enhancement_status")
    assert net.scan_blocks() == (phase + 1,)
    columns = net.non_token_columns()                                             # [R+1]
    assert columns.tolist() == [False] + (net.row_aspect == phase).tolist()
    x = sample()
    x[1] = x[1] * 3.0 + 1.0                                                  # another intensity distribution
    with torch.no_grad():
        out = net(x, return_dict=True)
        assert torch.equal(out["non_token_columns"], columns)
        for emb in out["block_embeddings"]:                                  # [B, Q, n*C]
            blocks = emb.unflatten(-1, (n, c))                               # [B, Q, n, C]
            shared = blocks[:, :, phase + 1]                                 # [B, Q, C]
            assert torch.allclose(shared, shared[:, :1].expand_as(shared))   # the same for every token of a scan
            assert not torch.allclose(shared[0, 0], shared[1, 0])            # but a scan's own
            assert not torch.allclose(blocks[:, :, phase], blocks[:, :1, phase].expand_as(blocks[:, :, phase]))
        # every phase row is compared with the scan embedding: the same similarity for each token of a scan
        sim = torch.einsum("bqe,re->bqr", out["block_embeddings"][-1], out["text_embeddings"])[..., columns]
        assert torch.allclose(sim, sim[:, :1].expand_as(sim), atol=1e-6)
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)
    assert "non_token_columns" not in build(aspect_heads=True)(x, return_dict=True)
    assert not any(k.startswith("scan_phase") for k in build(aspect_heads=True).state_dict())   # old models load
    with pytest.raises(AssertionError, match="scan_phase needs aspect_heads"):
        build(scan_phase=True)


def test_mask_moments_are_the_centroid_and_spread_in_patch_coordinates():
    logits = torch.full((1, 2, 5, 5, 9), -30.0)                              # [B, Q, *S]: nearly empty masks
    logits[0, 0, 4, 0:2, 8] = 30.0                                           # two voxels: last, first-two, last
    centroid, spread = mask_moments(logits)                                  # [B, Q, 3] each
    assert torch.allclose(centroid[0, 0], torch.tensor([1.0, -0.75, 1.0]), atol=1e-4)
    assert torch.allclose(spread[0, 0], torch.tensor([0.0, 0.25, 0.0]), atol=1e-3)   # half a step of 0.5
    assert centroid[0, 1].abs().max() < 1e-3                                 # empty mask: the patch centre


@pytest.mark.parametrize("residual", [True, False])
def test_position_location_reads_the_location_block_from_each_tokens_mask(residual):
    net = build(aspect_heads=True, scan_phase=True, position_location=True, mask_pooling=True,
                masked_attention=True, mask_residual=residual).eval()
    c, n = net.token_dim, net.text_blocks
    location = BANK_ASPECTS.index("location") + 1
    assert net.position_blocks() == (location,)
    assert net.non_token_columns().tolist() == [False] + [a in (location - 1, BANK_ASPECTS.index("enhancement_status"))
                                                      for a in net.row_aspect.tolist()]
    x = sample()
    with torch.no_grad():
        out = net(x, return_dict=True)
        for emb, masks in zip(out["block_embeddings"], out["block_masks"]):  # [B, Q, n*C], [B, Q, *S]
            assert torch.allclose(emb.unflatten(-1, (n, c))[:, :, location], net.mask_position(masks), atol=1e-6)
        # dense eval computes the last block's mask for it, with or without the mask residual
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)
    assert not any(k.startswith("mask_position") for k in build(aspect_heads=True).state_dict())   # old models load
    with pytest.raises(AssertionError, match="position_location needs aspect_heads"):
        build(position_location=True)


@pytest.mark.parametrize("residual", [True, False])
def test_lesion_intensity_reads_the_appearance_blocks_from_each_tokens_voxels(residual):
    net = build(aspect_heads=True, scan_phase=True, lesion_intensity=True, mask_pooling=True,
                masked_attention=True, mask_residual=residual).eval()
    c, n = net.token_dim, net.text_blocks
    blocks = net.intensity_blocks()
    assert blocks == tuple(BANK_ASPECTS.index(a) + 1 for a in INTENSITY_ASPECTS)
    phase = BANK_ASPECTS.index("enhancement_status")
    assert net.non_token_columns().tolist() == [False] + [a + 1 in blocks or a == phase for a in net.row_aspect.tolist()]
    x = sample()
    with torch.no_grad():
        out = net(x, return_dict=True)
        for emb, masks in zip(out["block_embeddings"], out["block_masks"]):  # [B, Q, n*C], [B, Q, *S]
            expected = net.lesion_intensity(masks, x)                        # [B, Q, V, C]
            assert torch.allclose(emb.unflatten(-1, (n, c))[:, :, list(blocks)], expected, atol=1e-6)
        # dense eval computes the last block's mask for it, with or without the mask residual
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)
    assert not any(k.startswith("lesion_intensity") for k in build(aspect_heads=True).state_dict())   # old models load
    with pytest.raises(AssertionError, match="lesion_intensity needs aspect_heads"):
        build(lesion_intensity=True)


def test_lesion_intensity_sees_only_the_voxels_in_and_around_the_mask():
    head = LesionIntensityHead(token_dim=8, num_aspects=2).eval()
    logits = torch.full((1, 2, 8, 8, 8), -30.0)                              # [B, Q, *S]
    logits[0, :, 2:4, 2:4, 2:4] = 30.0                                       # both tokens: the same 2^3 cube
    image = torch.zeros(1, 1, 8, 8, 8)
    with torch.no_grad():
        before = head(logits, image)                                         # [B, Q, V, C]
        assert before.shape == (1, 2, 2, 8) and torch.allclose(before.norm(dim=-1), torch.ones(1, 2, 2))
        far = image.clone()
        far[..., 7, 7, 7] = 2.0                                              # beyond the two-voxel shell
        assert torch.allclose(head(logits, far), before, atol=1e-6)
        inside = image.clone()
        inside[..., 2, 2, 2] = 2.0                                           # a bright voxel in the lesion
        assert not torch.allclose(head(logits, inside), before, atol=1e-4)
        around = image.clone()
        around[..., 4, 3, 3] = 2.0                                           # just outside it: the shell
        assert not torch.allclose(head(logits, around), before, atol=1e-4)
        # a heterogeneous lesion differs from a homogeneous one of the same mean intensity
        noisy = image.clone()
        noisy[..., 2:4, 2:4, 2:4] = torch.tensor([1.0, -1.0]).repeat(4).view(2, 2, 2)
        stats = region_statistics(torch.sigmoid(logits), head.per_voxel(noisy, (8, 8, 8)), head.bins.num_bins)
        assert torch.allclose(stats[0, 0, -2:], torch.tensor([0.0, 1.0]), atol=1e-3)   # mean 0, standard deviation 1


def test_intensity_bins_are_a_soft_histogram_of_each_voxel():
    bins = IntensityBins(num_bins=5, low=-2.0, high=2.0)
    x = torch.tensor([-2.0, 0.0, 2.0]).view(1, 1, 3)                         # [B, Cin, S]
    h = bins(x)                                                              # [B, H, S]
    assert h.shape == (1, 5, 3) and torch.allclose(h.sum(1), torch.ones(1, 3))
    assert h.argmax(1).tolist() == [[0, 2, 4]]                               # each intensity in its own bin
    y = x.clone()
    y[..., 1] = 1.0
    changed = (bins(y) - h).abs().amax(1)                                    # [B, S]
    assert changed[0, 1] > 0 and changed[0, 0] == 0 and changed[0, 2] == 0  # per voxel: no neighbourhood


def test_tissue_context_reads_the_image_and_leaves_the_appearance_alone():
    # context_source="image": with the decoder features fixed (so the same masks and shells), the image alone moves
    # the context half of every block's embedding and never the appearance half. What the shell averages is per
    # voxel (IntensityBins' test), so the shell sees its own tissue and not the lesion through a receptive field.
    torch.manual_seed(0)
    net = build(context_ring=1, context_source="image", masked_attention=True, mask_pooling=True).eval()
    c = net.token_dim
    x = sample()[:1]                                                         # [1, 1, *S]
    with torch.no_grad():
        features = decoder_features(net.unet, x)
        a = net.mask_decoder(features, features[-1], masks="all", image=x)
        b = net.mask_decoder(features, features[-1], masks="all", image=x + 1.0)
    for ea, eb in zip(a["embeddings"], b["embeddings"]):                     # L x [1, Q, 2C]
        assert torch.equal(ea[..., :c], eb[..., :c])
        assert not torch.allclose(ea[..., c:], eb[..., c:], atol=1e-4)
    with pytest.raises(AssertionError, match="image"):
        net.mask_decoder(features, features[-1], masks="all")
    with pytest.raises(AssertionError, match="context_source"):
        build(context_ring=1, context_source="pixels")


def test_attention_blocked_opens_every_coarse_cell_that_any_mask_voxel_touches():
    logits = torch.full((1, 3, 8, 8, 8), -5.0)                               # [B, Q, *S]
    logits[0, 0, 0, 0, 0] = 2.0                                              # token 0: one voxel, in cell (0, 0, 0)
    logits[0, 1, 4:, 4:, 4:] = 2.0                                           # token 1: the last octant
    blocked = attention_blocked(logits, (2, 2, 2), num_heads=4)              # [B * H, Q, 8]
    assert blocked.shape == (4, 3, 8) and blocked.dtype == torch.bool
    assert (~blocked[:, 0]).nonzero()[:, 1].unique().tolist() == [0]        # only the cell of its one voxel
    assert (~blocked[:, 1]).nonzero()[:, 1].unique().tolist() == [7]
    assert not blocked[:, 2].any()                                           # empty mask: attends everywhere


@pytest.mark.parametrize("shape, size", [((2, 3, 12, 8, 6), (3, 2, 6)), ((1, 2, 8, 8), (2, 4)), ((1, 2, 9), (3,)),
                                          ((1, 2, 7, 8, 8), (3, 2, 2))])    # the last: 7 does not divide, fallback
def test_block_max_is_adaptive_max_pooling(shape, size):
    x = torch.randn(*shape)
    pool = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[len(size)]
    assert torch.equal(block_max(x, size), pool(x, size))


def test_blocked_positions_do_not_reach_the_token():
    torch.manual_seed(0)
    layer = AttentionLayer(8, 2).eval()
    tokens, memory = torch.randn(1, 2, 8), torch.randn(1, 6, 8)             # [B, Q, C], [B, N, C]
    blocked = torch.zeros(2, 2, 6, dtype=torch.bool)                         # [B * H, Q, N]
    blocked[:, 0, 3:] = True                                                 # token 0 sees positions 0..2 only
    changed = memory.clone()
    changed[:, 3:] += 10.0
    with torch.no_grad():
        a, b = layer(tokens, memory, blocked=blocked), layer(tokens, changed, blocked=blocked)
    assert torch.allclose(a[:, 0], b[:, 0], atol=1e-6)                       # what it may not see does not move it
    assert not torch.allclose(a[:, 1], b[:, 1])


def test_masked_attention_in_training_and_dense_eval_and_old_models_load_without_it():
    net = build(masked_attention=True, mask_pooling=True, mask_residual=True).eval()
    torch.nn.init.normal_(net.mask_decoder.pool_proj.weight)                 # zero at init; trained it is not
    plain = build(mask_pooling=True, mask_residual=True).eval()
    plain.load_state_dict(net.state_dict(), strict=True)                    # no parameters of its own
    x = sample()
    with torch.no_grad():
        out = net(x, return_dict=True)
        # the dense eval path runs the same masked blocks as the dict path
        assert torch.allclose(net(x), dense_logits(out["class_logits"], out["pred_masks"]), atol=1e-5)
        assert not torch.allclose(out["block_embeddings"][-1], plain(x, return_dict=True)["block_embeddings"][-1])
