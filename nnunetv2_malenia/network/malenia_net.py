"""MaleniaNet: nnU-Net's planned U-Net + mask-token decoder + text alignment + CMKI (paper Sec. 3, Fig. 1).

Interface: docs/network_losses_interface.md ("Network"). Text space: column 0 = t0 ("no lesion"), 1..R = bank rows.
With ``context_ring`` > 0 the text space is two blocks of C channels, [appearance | context]: location and organ
rows live in the context block, every other column (t0 included) in the appearance block, and a token's embedding
is [appearance embedding | context embedding] (mask_decoder.py). A dot product then compares location rows with
the tissue around the token's mask and everything else with the token, and every consumer of similarities (losses,
matcher, naming, reports) stays a plain dot product. With ``aspect_heads`` the text space is 1 + |BANK_ASPECTS|
blocks of C channels the same way: t0 in block 0, the rows of bank aspect a in block a + 1, and the token's embedding
one head per block (mask_decoder.py, "Aspect heads"). With ``scan_phase`` (aspect heads only) the blocks of the
scan-level aspects (enhancement status: the scan's phase) hold one scan embedding shared by every token of the scan
(scan_phase.py) instead of the token's own head. With ``position_location`` (aspect heads only) the location block
of each token is read from where its mask lies (mask_position.py). With ``lesion_intensity`` (aspect heads only)
the blocks of the appearance aspects (density, density variation, surface, specific features) are read from the
input intensities inside and around each token's mask (lesion_intensity.py).

Data flow of ``forward(x)``:
  U-Net encoder/decoder -> coarsest-first features (bottleneck included)
  -> MaskTokenDecoder: per block tokens, text-space embeddings [B,Q,C], masks [B,Q,*S]
  -> slot weights [B,Q,A,R+1] (from the training slot assigner, else ``predict_slots``)
  -> CMKI -> pred_masks [B,Q,*S]; class_logits [B,Q,K+1] from the last block's embeddings and the knowledge table
     (``naming_rule``: "best_match" or the paper's "aspect_vote").
Eval (not training, no dict requested): dense logits [B, K+1, *S] for nnU-Net's predictor; no text encoder needed,
only the stored bank buffers.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_malenia.attributes.schema import ASPECTS, ORGAN_ASPECT
from nnunetv2_malenia.network.cmki import CrossModalKnowledgeInjection
from nnunetv2_malenia.network.lesion_intensity import INTENSITY_ASPECTS, LesionIntensityHead
from nnunetv2_malenia.network.mask_decoder import MaskTokenDecoder
from nnunetv2_malenia.network.mask_position import POSITION_ASPECTS, MaskPositionHead
from nnunetv2_malenia.network.scan_phase import SCAN_ASPECTS, ScanPhaseHead
from nnunetv2_malenia.network.unet_features import (check_unet, decoder_features, drop_seg_layers, feature_channels,
                                                    feature_strides, select_attention_scales)
from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS, PARAGRAPH_ASPECT

NUM_ASPECTS = len(ASPECTS)                        # A = 8 CMKI slots, BANK_ASPECTS[:8]
PARAGRAPH_INDEX = BANK_ASPECTS.index(PARAGRAPH_ASPECT)
# Logit of a class without any bank row: finite (fp16-safe) so softmax/CE never see -inf - -inf.
NO_ROWS_LOGIT = -1.0e4
# Aspects that vote under the aspect_vote naming rule: the eight and organ (organ labels have rows nowhere else).
VOTE_ASPECTS = tuple(i for i in range(len(BANK_ASPECTS)) if i != PARAGRAPH_INDEX)
# Aspects whose rows name a class under best_match for a model trained with one positive per lesion
# (``match_paragraphs``): the lesion's joined paragraph, and organ rows for organ labels, which have no paragraph.
PARAGRAPH_MATCH_ASPECTS = (PARAGRAPH_INDEX, BANK_ASPECTS.index(ORGAN_ASPECT))
# Weight of the best_match split in aspect_vote's disease split. Two different vote fractions differ by at least
# 1 / |VOTE_ASPECTS|^2 = 1/81; a tie-break weight w with w / (1 - w) below that never overturns the vote.
VOTE_TIE_WEIGHT = 1.0e-3
DEFAULT_TOKEN_DIM = 192                           # the widest token space token_dim_for gives
# Bank aspects matched against the context embedding when the network has one (context_ring > 0).
CONTEXT_ASPECTS = (BANK_ASPECTS.index("location"), BANK_ASPECTS.index(ORGAN_ASPECT))


def token_dim_for(bottleneck_channels: int, num_heads: int) -> int:
    """Token (and text-space) width that grows with the plan: a quarter of the U-Net's bottleneck channels, between
    32 and 192, a multiple of ``num_heads``. The heads' parameters grow with its square (48 C^2 in the decoder
    blocks alone), so a fixed width would dominate a narrow CPU plan: 192 on the 16..128 plan of ``3d_cpu`` tripled
    the network; a quarter of the bottleneck keeps MaleniaNet near +10 % of the plain U-Net from the 16..128 plan
    to the 32..320 one (benchmarks/bench_network.py)."""
    width = min(DEFAULT_TOKEN_DIM, max(32, int(bottleneck_channels) // 4))
    return max(num_heads, width - width % num_heads)


INFERENCE_RULES = ("lesion_first", "joint")
# How a token's embedding names a disease (class_logits); "best_match" is the default, "aspect_vote" the paper's,
# "likelihood" its soft form (per aspect a softmax over the aspect's rows, then the knowledge table's accepted values).
NAMING_RULES = ("best_match", "aspect_vote", "likelihood")
LESION_HEADS = ("none", "lesion", "classes")    # training-only decoder heads of losses/lesion_aux.py


def dense_logits(class_logits: torch.Tensor, pred_masks: torch.Tensor, rule: str = "lesion_first",
                 eps: float = 1e-6) -> torch.Tensor:
    """Semantic logits from token classes and masks: [B,Q,K+1], [B,Q,*S] -> [B,K+1,*S] (fp32); nnU-Net's softmax
    of them returns the probabilities below, its argmax the label.

    Per voxel, with p(k|q) the token's class softmax (k = 0: no lesion) and m_q = sigmoid(mask_q):
    fg_k = sum_q p(k|q) m_q (disease evidence), L = min(1, sum_q (1 - p(0|q)) m_q) (lesion probability).

    * ``lesion_first`` (default; the paper segments, then names): P(bg) = 1 - L, the best disease k* = argmax_k fg_k
      gets P = L, the others ~0. A voxel is lesion when L > 0.5, whatever the spread over diseases.
    * ``joint``: P(k) = fg_k, P(bg) = 1 - sum_k fg_k. A found lesion needs max_k p(k|q) > (1 - m) / m to beat the
      background (0.43 at m = 0.7): diseases of one organ share most descriptions, so an ambiguous lesion, exactly
      the unseen one, fell back to background (issue #12 A). Kept for the ablation.
    """
    assert rule in INFERENCE_RULES, f"unknown inference rule {rule!r}; choose one of {INFERENCE_RULES}"
    b, q = pred_masks.shape[:2]
    spatial = pred_masks.shape[2:]
    probs = class_logits.float().softmax(-1)                             # [B, Q, K+1]
    masks = pred_masks.float().sigmoid().reshape(b, q, -1)               # [B, Q, N]
    fg = torch.bmm(probs[..., 1:].transpose(1, 2), masks)                # [B, K, N]
    if rule == "joint":
        bg = (1.0 - fg.sum(1, keepdim=True)).clamp_min(0.0)             # [B, 1, N]
        out = torch.cat((bg, fg), dim=1)                                 # [B, K+1, N]
    else:
        lesion = torch.bmm((1.0 - probs[..., :1]).transpose(1, 2), masks).clamp_max(1.0)   # [B, 1, N]
        winner = torch.zeros_like(fg).scatter_(1, fg.argmax(1, keepdim=True), 1.0)     # [B, K, N] one-hot
        out = torch.cat((1.0 - lesion, winner * lesion), dim=1)          # [B, K+1, N]
    return torch.log(out + eps).reshape(b, -1, *spatial)                 # [B, K+1, *S]


def check_naming_rule(rule: str) -> str:
    assert rule in NAMING_RULES, f"unknown naming rule {rule!r}; choose one of {NAMING_RULES}"
    return rule


def split_logits(best_match: torch.Tensor, log_split: torch.Tensor, has_rows: torch.Tensor) -> torch.Tensor:
    """Class logits whose lesion probability is best_match's and whose disease split is softmax(log_split):
    [B,Q,K+1], [B,Q,K], [K] bool -> [B,Q,K+1] fp32. out_0 = l_0, out_k = logsumexp_j(l_j, j >= 1) +
    log_softmax(log_split)_k (NO_ROWS_LOGIT for a class without rows, which takes no share of the split)."""
    logits = best_match.float()
    split = log_split.float().masked_fill(~has_rows, float("-inf"))                 # [B, Q, K]
    split = torch.log_softmax(split, dim=-1).nan_to_num(nan=NO_ROWS_LOGIT)          # all-rowless: no split at all
    out = torch.logsumexp(logits[..., 1:], dim=-1, keepdim=True) + split             # [B, Q, K]
    out = torch.where(has_rows, out, torch.full_like(out, NO_ROWS_LOGIT))
    return torch.cat((logits[..., :1], out), dim=-1)                                 # [B, Q, K+1]


def vote_logits(best_match: torch.Tensor, fraction: torch.Tensor, has_rows: torch.Tensor,
                tie_weight: float = VOTE_TIE_WEIGHT) -> torch.Tensor:
    """Class logits of the aspect_vote rule from best_match's: [B,Q,K+1], [B,Q,K], [K] bool -> [B,Q,K+1] fp32.

    ``fraction`` [B,Q,K]: per token, the share of class k's vote aspects whose chosen row class k accepts (0..1).
    With l = best_match, p_bm = softmax(l[..., 1:]) [B,Q,K] (best_match's split of the lesion mass), w = tie_weight:

        share_k  = (1 - w) fraction_k + w p_bm_k                       [B,Q,K]
        q_k      = share_k / sum_j share_j, j over classes with rows   [B,Q,K]  (the sum is > 0)
        out_0    = l_0                                                 [B,Q]
        out_k    = logsumexp_j(l_j, j >= 1) + log q_k                  [B,Q,K]  (NO_ROWS_LOGIT if ~has_rows_k)

    so softmax(out) = (p0, (1 - p0) q): p0 = softmax(l)_0, the lesion probability 1 - p0 and dense_logits' lesion
    channel are exactly best_match's; the diseases are ranked by vote fraction, ties (and tokens with no vote at
    all, where q = p_bm) by best_match (w < 1/81 keeps the tie-break from overturning a vote, see VOTE_TIE_WEIGHT).
    """
    fg = best_match.float()[..., 1:]                                             # [B, Q, K]
    share = (1.0 - tie_weight) * fraction.float() + tie_weight * fg.softmax(-1)  # [B, Q, K]
    return split_logits(best_match, torch.log(share.clamp_min(1e-30)), has_rows)   # q = share / sum(share)


def seen_penalty_logits(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Calibrated stacking (Chao et al., ECCV 2016) on the disease split: [B,Q,K+1], [K] bool -> [B,Q,K+1] fp32.

    With l = logits, fg = l[..., 1:]: out_0 = l_0 and out_k = logsumexp(fg) + log_softmax(fg - penalty * seen)_k, so
    softmax(out) = (p0, (1 - p0) q) with q the diseases' split after every seen disease's logit is lowered by
    ``penalty`` (raised, for a negative one). The lesion probability (and with it dense_logits' lesion channel, i.e.
    the segmentation) is unchanged; only which disease a lesion is named moves. Why: tokens trained on seen lesions
    score the seen diseases higher than any unseen one, whatever they look at (generalised zero-shot learning's seen
    bias); a constant chosen on held-out data trades seen naming accuracy for unseen."""
    fg = logits[..., 1:].float()                                                     # [B, Q, K]
    shifted = fg - float(penalty) * seen.to(device=fg.device, dtype=fg.dtype)        # [B, Q, K]
    out = torch.logsumexp(fg, dim=-1, keepdim=True) + torch.log_softmax(shifted, dim=-1)   # [B, Q, K]
    return torch.cat((logits[..., :1].float(), out), dim=-1)                         # [B, Q, K+1]


def aspect_blocks(aspects: Sequence[str]) -> Tuple[int, ...]:
    """With aspect heads: the text-space blocks of the given bank aspects (aspect a lives in block a + 1)."""
    return tuple(BANK_ASPECTS.index(a) + 1 for a in aspects)


class MaleniaNet(nn.Module):
    def __init__(self, unet: nn.Module, num_bank_rows: int, text_dim: int, num_classes: int, *, num_tokens: int = 16,
                 token_dim: Optional[int] = None, num_heads: int = 8, num_blocks: int = 3, ffn_ratio: int = 4,
                 cmki_layers: int = 1, temperature: float = 0.07, fusion: bool = True, branches: str = "both",
                 beta: Tuple[float, float] = (0.5, 0.5), inference_rule: str = "lesion_first",
                 naming_rule: str = "best_match", lesion_heads: str = "none", mask_pooling: bool = False,
                 mask_residual: bool = False, context_ring: int = 0, masked_attention: bool = False,
                 context_source: str = "feature", match_paragraphs: bool = False, aspect_heads: bool = False,
                 scan_phase: bool = False, position_location: bool = False, lesion_intensity: bool = False):
        super().__init__()
        check_unet(unet)
        if token_dim is None:                                            # from the plan (see token_dim_for)
            token_dim = token_dim_for(feature_channels(unet)[0], num_heads)
        assert num_bank_rows >= 0 and text_dim > 0 and num_classes >= 1, (
            f"bad sizes: num_bank_rows={num_bank_rows}, text_dim={text_dim}, num_classes={num_classes}")
        assert token_dim % num_heads == 0, f"token_dim={token_dim} must be divisible by num_heads={num_heads}"
        assert num_blocks >= 1 and num_tokens >= 2 and temperature > 0, (
            f"bad settings: num_blocks={num_blocks}, num_tokens={num_tokens}, temperature={temperature}")
        assert inference_rule in INFERENCE_RULES, f"inference_rule {inference_rule!r} not in {INFERENCE_RULES}"
        assert aspect_heads or not scan_phase, "scan_phase needs aspect_heads (a text-space block per aspect)"
        assert aspect_heads or not position_location, (
            "position_location needs aspect_heads (a text-space block per aspect)")
        assert aspect_heads or not lesion_intensity, (
            "lesion_intensity needs aspect_heads (a text-space block per aspect)")
        drop_seg_layers(unet)
        self.inference_rule = inference_rule
        # Not in the paper: the fused mask is CMKI's correction of the decoder's last-block mask (pred = last block
        # mask + CMKI mask). CMKI's own mask starts near zero behind three stacked projections and a 1/sqrt(Ck)
        # scale, and on the CPU regime it stayed at Dice loss ~0.99 for 25 of 40 epochs while the block masks
        # learnt; with the residual the fused mask starts where the decoder is.
        self.mask_residual = bool(mask_residual)
        # A plain attribute, not a buffer: the predictor may switch it (--naming-rule) without touching weights.
        self.naming_rule = check_naming_rule(naming_rule)
        # Naming must read the rows training aligned the tokens with: the eight descriptions (MP-NCE), or, for the
        # single-positive ablation, the joined paragraph; its aspect rows are never in its softmax, so matching
        # them left every voxel background (finding 0 in the CPU ablation table before this setting).
        self.match_paragraphs = bool(match_paragraphs)
        self.naming_aspects = PARAGRAPH_MATCH_ASPECTS if self.match_paragraphs else VOTE_ASPECTS
        # Prediction-time calibration (``set_seen_penalty``; 0 = none): plain attributes, never in a checkpoint.
        self.seen_penalty = 0.0
        self.seen_classes: Optional[torch.Tensor] = None     # [K] bool: class k is one the model was trained on
        self.unet = unet
        self.conv_op = unet.encoder.conv_op
        self.num_tokens = num_tokens
        self.token_dim = token_dim
        self.text_dim = text_dim

        strides = feature_strides(unet)                                  # coarsest first, per axis
        channels = feature_channels(unet)
        scales = select_attention_scales(strides)
        self.scale_of_block = [scales[i % len(scales)] for i in range(num_blocks)]   # round robin (paper: 3 blocks)
        self.attention_strides = [strides[i] for i in self.scale_of_block]
        self.pixel_stride = strides[-1]
        pixel_channels = channels[-1]

        self.mask_decoder = MaskTokenDecoder({i: channels[i] for i in set(self.scale_of_block)}, self.scale_of_block,
                                             self.conv_op, num_tokens=num_tokens, token_dim=token_dim,
                                             num_heads=num_heads, ffn_ratio=ffn_ratio, mask_dim=pixel_channels,
                                             mask_pooling=mask_pooling, context_ring=context_ring,
                                             masked_attention=masked_attention, context_source=context_source,
                                             text_blocks=1 + len(BANK_ASPECTS) if aspect_heads else 1)
        # Scan-level aspects (scan_phase.py): one embedding per scan in their blocks; None = read from the tokens.
        self.scan_phase = ScanPhaseHead(channels[0], token_dim) if scan_phase else None
        # Location from where each token's mask lies (mask_position.py); None = read from the tokens.
        self.mask_position = MaskPositionHead(token_dim, len(strides[0])) if position_location else None
        # Appearance aspects from the intensities in and around each token's mask (lesion_intensity.py); None = tokens.
        self.lesion_intensity = LesionIntensityHead(token_dim) if lesion_intensity else None
        # Text side: frozen bank embeddings [R, D] -> MLP -> token space; t0 is learned.
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, token_dim), nn.GELU(), nn.Linear(token_dim, token_dim))
        self.t0 = nn.Parameter(torch.randn(token_dim) * 0.02)
        self.cmki = CrossModalKnowledgeInjection(token_dim, NUM_ASPECTS, pixel_channels, num_tokens,
                                                 num_heads=num_heads, num_layers=cmki_layers, fusion=fusion,
                                                 branches=branches, beta=beta)
        # Training only: a 1x1 head per decoder stage (coarsest first; lesion vs background, or the training label
        # map with K+1 channels, sized by the training classes even when prediction swaps in other classes) for the
        # auxiliary loss of losses/lesion_aux.py, which gives the U-Net a dense gradient at every stage. Off in models
        # trained before it existed (their plans lack the setting), so their checkpoints load unchanged.
        assert lesion_heads in LESION_HEADS, f"lesion_heads {lesion_heads!r} not in {LESION_HEADS}"
        head_channels = {"none": 0, "lesion": 1, "classes": num_classes + 1}[lesion_heads]
        self.lesion_heads = (nn.ModuleList(self.conv_op(c, head_channels, 1) for c in channels[1:])
                             if head_channels else None)
        # Dataset-dependent state as buffers: travels in the checkpoint, shapes known from the arguments above.
        self.register_buffer("bank_embeddings", torch.zeros(num_bank_rows, text_dim))
        # -1 = no aspect yet (set_text_bank fills it); such rows are never slot candidates nor class evidence.
        self.register_buffer("row_aspect", torch.full((num_bank_rows,), -1, dtype=torch.long))
        self.register_buffer("class_row_mask", torch.zeros(num_classes, num_bank_rows, dtype=torch.bool))
        # Fixed temperature from the constructor (not persistent: a rebuilt net takes it from its settings).
        self.register_buffer("logit_scale", torch.tensor(1.0 / temperature), persistent=False)

    # ----------------------------------------------------------------------------------------------- dataset state
    @property
    def num_bank_rows(self) -> int:
        return int(self.bank_embeddings.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.class_row_mask.shape[0])

    @property
    def decoder(self) -> nn.Module:
        """The U-Net decoder, so nnU-Net's default ``set_deep_supervision_enabled`` runs (the flag is unused)."""
        return self.unet.decoder

    def set_text_bank(self, embeddings: torch.Tensor, row_aspect: torch.Tensor) -> None:
        """Replace the bank: embeddings [R', D] (L2-normalised), row_aspect [R'] long (index into BANK_ASPECTS).

        When R' differs from the current R, ``class_row_mask`` is reset to all-False [K, R']: call
        ``set_class_row_mask`` afterwards.
        """
        assert embeddings.ndim == 2 and embeddings.shape[1] == self.text_dim, (
            f"embeddings must be [R, {self.text_dim}]; got {tuple(embeddings.shape)}")
        assert row_aspect.shape == (embeddings.shape[0],), (
            f"row_aspect must be [{embeddings.shape[0]}]; got {tuple(row_aspect.shape)}")
        in_range = row_aspect.numel() == 0 or (int(row_aspect.min()) >= -1
                                               and int(row_aspect.max()) < len(BANK_ASPECTS))
        assert in_range, (f"row_aspect values must index BANK_ASPECTS (0..{len(BANK_ASPECTS) - 1}) or be -1; "
                          f"got {row_aspect.unique().tolist()}")
        device = self.bank_embeddings.device
        self.bank_embeddings = embeddings.detach().to(device=device, dtype=torch.float32).clone()
        self.row_aspect = row_aspect.detach().to(device=device, dtype=torch.long).clone()
        if self.class_row_mask.shape[1] != embeddings.shape[0]:
            self.class_row_mask = torch.zeros(self.num_classes, embeddings.shape[0], dtype=torch.bool, device=device)

    def set_class_row_mask(self, mask: torch.Tensor) -> None:
        """Replace the knowledge table [K', R] bool (row r describes class k); K' sets the eval output channels."""
        assert mask.ndim == 2 and mask.shape[1] == self.num_bank_rows, (
            f"class_row_mask must be [K, {self.num_bank_rows}] (R = current bank rows); got {tuple(mask.shape)}")
        self.class_row_mask = mask.detach().to(device=self.bank_embeddings.device, dtype=torch.bool).clone()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A checkpoint may carry a bank / knowledge table of another size than the plans-built network (extended
        # at zero-shot time): adopt the checkpoint's shapes instead of failing the strict load.
        for name in ("bank_embeddings", "row_aspect", "class_row_mask"):
            key = prefix + name
            current = self._buffers[name]
            if key in state_dict and state_dict[key].shape != current.shape:
                self._buffers[name] = torch.empty(state_dict[key].shape, dtype=current.dtype, device=current.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ------------------------------------------------------------------------------------------------- text space
    @property
    def has_context(self) -> bool:
        return self.mask_decoder.context_proj is not None

    @property
    def text_blocks(self) -> int:
        """C-wide blocks of the text space: 1, 2 with a context embedding, 1 + |BANK_ASPECTS| with aspect heads."""
        return self.mask_decoder.embedding_dim // self.token_dim

    def column_blocks(self) -> Optional[torch.Tensor]:
        """[R+1] long: the block each text column lives in (t0 first; -1: in none, the column is zero), or None for
        a one-block text space. Context: location and organ rows in block 1, the rest in 0. Aspect heads: t0 in 0,
        a row of bank aspect a in a + 1, rows without an aspect (-1) in none."""
        if self.has_context:
            aspects = torch.tensor(CONTEXT_ASPECTS, device=self.row_aspect.device)
            blocks = torch.isin(self.row_aspect, aspects).long()                     # [R]
        elif self.text_blocks > 1:                                                   # aspect heads
            blocks = torch.where(self.row_aspect >= 0, self.row_aspect + 1, -1)      # [R]
        else:
            return None
        return torch.cat((blocks.new_zeros(1), blocks))                              # [R+1]

    def scan_blocks(self) -> Tuple[int, ...]:
        """The text-space blocks that hold the scan embedding (``scan_phase``), else ()."""
        return aspect_blocks(SCAN_ASPECTS) if self.scan_phase is not None else ()

    def position_blocks(self) -> Tuple[int, ...]:
        """The text-space blocks that hold the mask-position embedding (``position_location``), else ()."""
        return aspect_blocks(POSITION_ASPECTS) if self.mask_position is not None else ()

    def intensity_blocks(self) -> Tuple[int, ...]:
        """The text-space blocks read from the lesion's intensities (``lesion_intensity``), else ()."""
        return aspect_blocks(INTENSITY_ASPECTS) if self.lesion_intensity is not None else ()

    def non_token_columns(self) -> Optional[torch.Tensor]:
        """[R+1] bool: the text columns a token meets through an embedding that is not its own head (the scan's
        phase, its mask's position or intensities), or None. Such columns are never a "no lesion" token's negatives
        (mp_nce.py)."""
        blocks = self.scan_blocks() + self.position_blocks() + self.intensity_blocks()
        if not blocks:
            return None
        in_blocks = torch.isin(self.row_aspect + 1, torch.tensor(blocks, device=self.row_aspect.device))   # [R]
        return torch.cat((in_blocks.new_zeros(1), in_blocks))                  # [R+1], t0 never

    def with_block_embedding(self, embeddings: torch.Tensor, replacement: torch.Tensor,
                             blocks: Sequence[int]) -> torch.Tensor:
        """[B, Q, n*C] token embeddings, [B, C] (one per scan) or [B, Q, C] (one per token) -> [B, Q, n*C] with
        ``replacement`` in the given text-space blocks (the token's own heads elsewhere)."""
        b, q = embeddings.shape[:2]
        split = list(embeddings.unflatten(-1, (self.text_blocks, self.token_dim)).unbind(2))   # n x [B, Q, C]
        shared = replacement.to(embeddings.dtype)
        shared = shared.unsqueeze(1).expand(b, q, -1) if shared.ndim == 2 else shared          # [B, Q, C]
        for block in blocks:
            split[block] = shared
        return torch.stack(split, dim=2).flatten(2)                                            # [B, Q, n*C]

    def with_scan_embedding(self, embeddings: torch.Tensor, scan: torch.Tensor) -> torch.Tensor:
        """[B, Q, n*C] token embeddings, [B, C] scan embedding -> [B, Q, n*C] with the scan embedding in every
        token's ``scan_blocks``."""
        return self.with_block_embedding(embeddings, scan, self.scan_blocks())

    def with_position_embeddings(self, embeddings: List[torch.Tensor], masks: List[torch.Tensor]
                                 ) -> List[torch.Tensor]:
        """L x [B, Q, n*C] block embeddings, the last M <= L blocks' mask logits [B, Q, *S'] -> L x [B, Q, n*C]
        with each masked block's ``position_blocks`` read from its own mask (blocks without a mask unchanged: in
        dense eval only the last block's embedding is read)."""
        first = len(embeddings) - len(masks)
        return embeddings[:first] + [self.with_block_embedding(e, self.mask_position(m), self.position_blocks())
                                     for e, m in zip(embeddings[first:], masks)]

    def with_intensity_embeddings(self, embeddings: List[torch.Tensor], masks: List[torch.Tensor],
                                  image: torch.Tensor) -> List[torch.Tensor]:
        """L x [B, Q, n*C] block embeddings, the last M <= L blocks' mask logits [B, Q, *S'], the input image
        [B, Cin, *S] -> L x [B, Q, n*C] with each masked block's ``intensity_blocks`` read from the intensities in
        and around its own mask, one head per aspect (blocks without a mask unchanged, as for the position)."""
        first = len(embeddings) - len(masks)
        out = embeddings[:first]
        for e, m in zip(embeddings[first:], masks):
            per_aspect = self.lesion_intensity(m, image).unbind(2)             # V x [B, Q, C]
            for block, replacement in zip(self.intensity_blocks(), per_aspect):
                e = self.with_block_embedding(e, replacement, (block,))        # [B, Q, n*C]
            out.append(e)
        return out

    def text_embeddings(self) -> torch.Tensor:
        """[R+1, E] L2-normalised: row 0 = t0, rows 1..R = MLP(bank_embeddings). E = C, or text_blocks x C, each
        column non-zero in its own block only (``column_blocks``)."""
        weight = self.text_mlp[0].weight
        bank = self.text_mlp(self.bank_embeddings.to(weight.dtype))            # [R, C]
        text = F.normalize(torch.cat((self.t0.unsqueeze(0), bank), dim=0), dim=-1)   # [R+1, C]
        blocks = self.column_blocks()                                            # [R+1] or None
        if blocks is None:
            return text
        place = F.one_hot(blocks.clamp_min(0), self.text_blocks).to(text.dtype)  # [R+1, n]
        place = place * (blocks >= 0).unsqueeze(1).to(text.dtype)                # rows in no block: all zero
        return (place.unsqueeze(-1) * text.unsqueeze(1)).flatten(1)              # [R+1, n, C] -> [R+1, n*C]

    def fold_text(self, text: torch.Tensor) -> torch.Tensor:
        """[..., E] text-space columns -> [..., C] token-space (each column is non-zero in one block only, so the
        blocks' sum is the column's own embedding); the identity for a one-block text space."""
        if self.text_blocks == 1:
            return text
        return text.unflatten(-1, (self.text_blocks, self.token_dim)).sum(-2)   # [..., n, C] -> [..., C]

    def _similarity(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor]) -> torch.Tensor:
        """Cosine similarity of tokens and text columns, unscaled: [B, Q, E] x [R+1, E] -> [B, Q, R+1]."""
        text = self.text_embeddings() if text_embeddings is None else text_embeddings
        return torch.einsum("bqc,rc->bqr", embeddings.float(), text.float())          # [B, Q, R+1]

    def _aspect_choice(self, sim: torch.Tensor, aspects: Sequence[int]) -> torch.Tensor:
        """Per aspect, the argmax column of ``sim`` [B, Q, R+1] over {t0} U {rows of that aspect} -> [B, Q, V] long
        (V = len(aspects); 0 = t0, which wins where the aspect has no rows)."""
        col_aspect = torch.cat((self.row_aspect.new_full((1,), -2), self.row_aspect))   # [R+1], t0 = -2
        wanted = torch.tensor(list(aspects), device=sim.device, dtype=torch.long)       # [V]
        candidates = col_aspect.unsqueeze(0) == wanted.unsqueeze(1)                      # [V, R+1]
        candidates[:, 0] = True                                                          # t0 always competes
        scores = sim.unsqueeze(2).masked_fill(~candidates, float("-inf"))                 # [B, Q, V, R+1]
        return scores.argmax(-1)                                                         # [B, Q, V]

    def predict_slots(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor] = None
                      ) -> torch.Tensor:
        """Inference slots: per aspect a, one-hot argmax of similarity over {t0} U {rows of aspect a}.

        embeddings [B, Q, E] (text space), text_embeddings [R+1, E] (default: ``self.text_embeddings()``)
        -> [B, Q, A, R+1] float one-hot.
        """
        sim = self._similarity(embeddings, text_embeddings)                              # [B, Q, R+1]
        best = self._aspect_choice(sim, range(NUM_ASPECTS))                              # [B, Q, A]
        return F.one_hot(best, num_classes=sim.shape[-1]).to(embeddings.dtype)          # [B, Q, A, R+1]

    def set_seen_penalty(self, penalty: float, seen_classes: Optional[torch.Tensor] = None) -> None:
        """Lower the seen classes' logits by ``penalty`` in the disease split (``seen_penalty_logits``); a negative
        penalty raises them (a model biased towards the unseen diseases, e.g. single-positive alignment).
        seen_classes [K] bool over the current classes (K = ``num_classes``; call after ``set_class_row_mask``)."""
        assert math.isfinite(penalty), f"seen penalty must be a finite number; got {penalty}"
        if penalty != 0:
            assert seen_classes is not None and tuple(seen_classes.shape) == (self.num_classes,), (
                f"seen_classes must be [{self.num_classes}] bool for a penalty; got "
                f"{None if seen_classes is None else tuple(seen_classes.shape)}")
        self.seen_penalty = float(penalty)
        self.seen_classes = None if seen_classes is None else seen_classes.detach().to(torch.bool).cpu().clone()

    def class_logits(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor] = None,
                     rule: Optional[str] = None) -> torch.Tensor:
        """[B, Q, E] -> [B, Q, K+1] under ``rule`` (default: the network's ``naming_rule``); see
        ``best_match_logits`` and ``aspect_vote_logits``; then the seen penalty, when one is set."""
        rule = check_naming_rule(self.naming_rule if rule is None else rule)
        if rule == "aspect_vote":
            logits = self.aspect_vote_logits(embeddings, text_embeddings)
        elif rule == "likelihood":
            logits = self.likelihood_logits(embeddings, text_embeddings)
        else:
            logits = self.best_match_logits(embeddings, text_embeddings)
        if self.seen_penalty != 0:
            assert self.seen_classes is not None and self.seen_classes.numel() == logits.shape[-1] - 1, (
                "the seen penalty's class mask does not match the classes: set_seen_penalty after the classes")
            logits = seen_penalty_logits(logits, self.seen_classes, self.seen_penalty)
        return logits

    def best_match_logits(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor] = None
                          ) -> torch.Tensor:
        """[B, Q, E] -> [B, Q, K+1] (fp32, scaled by logit_scale): the "best_match" naming rule.

        Column 0: similarity to t0. Column k: mean over the aspects in which class k has rows of the best
        similarity among class k's rows of that aspect (knowledge-table matching). Paragraph rows never count,
        unless the model was trained on them (``match_paragraphs``: then only they and organ rows count); a class
        without rows gets NO_ROWS_LOGIT. A class accepting many values of an aspect scores its best one,
        so it is never behind a class accepting a subset of them (issue #12 C; ``aspect_vote`` avoids that).
        """
        sim = self._similarity(embeddings, text_embeddings) * self.logit_scale          # [B, Q, R+1]
        rows = sim[..., 1:]                                                               # [B, Q, R]
        b, q = rows.shape[:2]
        total = rows.new_zeros(b, q, self.num_classes)                                    # [B, Q, K]
        count = rows.new_zeros(self.num_classes)                                          # [K]
        for aspect in self.naming_aspects:
            sel = self.class_row_mask & (self.row_aspect == aspect).unsqueeze(0)          # [K, R]
            has = sel.any(1)                                                              # [K]
            if not bool(has.any()):
                continue
            best = rows.unsqueeze(2).masked_fill(~sel, float("-inf")).amax(-1)           # [B, Q, K]
            total = total + torch.where(has, best, torch.zeros_like(best))
            count = count + has.to(count.dtype)
        fg = torch.where(count > 0, total / count.clamp_min(1.0), torch.full_like(total, NO_ROWS_LOGIT))
        return torch.cat((sim[..., :1], fg), dim=-1)                                     # [B, Q, K+1]

    def vote_table(self) -> torch.Tensor:
        """[K, V, R] bool: class k accepts row r, and r belongs to vote aspect v (VOTE_ASPECTS: not paragraph)."""
        wanted = torch.tensor(VOTE_ASPECTS, device=self.row_aspect.device, dtype=torch.long)   # [V]
        of_aspect = self.row_aspect.unsqueeze(0) == wanted.unsqueeze(1)                       # [V, R]
        return self.class_row_mask.unsqueeze(1) & of_aspect.unsqueeze(0)                     # [K, V, R]

    def aspect_votes(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The paper's knowledge-table lookup: per vote aspect the token's chosen column (argmax over {t0} U that
        aspect's rows, as ``predict_slots``), then per class the aspects whose chosen row the class accepts.

        [B, Q, E] -> (votes [B, Q, K] float, the number of such aspects; aspects [K] float, the number of vote
        aspects in which class k has rows). An aspect whose chosen column is t0 votes for nobody.
        """
        sim = self._similarity(embeddings, text_embeddings)                              # [B, Q, R+1]
        chosen = self._aspect_choice(sim, VOTE_ASPECTS)                                  # [B, Q, V]
        # t0 (column 0) is dropped: its one-hot row is all zero, so that aspect adds nothing to any class
        picked = F.one_hot(chosen, num_classes=sim.shape[-1])[..., 1:].float()           # [B, Q, V, R]
        table = self.vote_table().float()                                                # [K, V, R]
        votes = torch.einsum("bqvr,kvr->bqk", picked, table)                             # [B, Q, K]
        return votes, table.amax(-1).sum(-1)                                             # [B, Q, K], [K]

    def aspect_vote_logits(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor] = None
                           ) -> torch.Tensor:
        """[B, Q, E] -> [B, Q, K+1] (fp32): the "aspect_vote" naming rule (paper Sec. 3.3, knowledge-table lookup).

        Lesion vs background stays best_match's; only the split of the lesion mass over diseases follows the vote
        (``vote_logits``, votes from ``aspect_votes``), so segmentation is the same under both rules.
        """
        votes, aspects = self.aspect_votes(embeddings, text_embeddings)                 # [B, Q, K], [K]
        best_match = self.best_match_logits(embeddings, text_embeddings)                 # [B, Q, K+1]
        return vote_logits(best_match, votes / aspects.clamp_min(1.0), aspects > 0)

    def attribute_log_likelihood(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor] = None
                                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The knowledge-table lookup with each aspect's reading kept soft: [B, Q, E] -> (log-likelihood [B, Q, K],
        has_rows [K] bool).

        Per naming aspect v (the eight and organ; paragraph and organ for ``match_paragraphs``), p_v(r) = softmax
        over the rows of v of the scaled similarities (what the token reads for that aspect, as the reports'
        per-aspect choice, without t0). Class k accepts the values A_kv; if its lesions took each accepted value
        equally often, the token's reading has likelihood mean_{r in A_kv} p_v(r), so

            LL_k = sum over the aspects v in which k has rows of log(mean_{r in A_kv} p_v(r)).

        The mean, not the best (best_match) nor the sum: a disease accepting three densities earns a third of the
        mass it covers, so it no longer outranks a disease accepting the one value the token read (issue #12 C);
        and unlike aspect_vote's argmax an aspect read with little confidence moves the ranking little. Summing over
        aspects makes LL a log-likelihood, so softmax(LL) is the posterior of equally likely diseases."""
        sim = self._similarity(embeddings, text_embeddings)[..., 1:] * self.logit_scale   # [B, Q, R]
        b, q = sim.shape[:2]
        total = sim.new_zeros(b, q, self.num_classes)                                     # [B, Q, K]
        has_rows = torch.zeros(self.num_classes, dtype=torch.bool, device=sim.device)     # [K]
        for aspect in self.naming_aspects:            # the rows training aligned the tokens with (best_match's)
            of_aspect = self.row_aspect == aspect                                         # [R]
            sel = self.class_row_mask & of_aspect.unsqueeze(0)                            # [K, R]
            has = sel.any(1)                                                              # [K]
            if not bool(has.any()):
                continue
            log_p = sim.masked_fill(~of_aspect, float("-inf"))                            # [B, Q, R]
            log_p = log_p - torch.logsumexp(log_p, dim=-1, keepdim=True)                  # per-aspect log-softmax
            covered = torch.logsumexp(log_p.unsqueeze(2).masked_fill(~sel, float("-inf")), dim=-1)   # [B, Q, K]
            term = covered - sel.sum(1).clamp_min(1).log()                                # log of the mean
            total = total + torch.where(has, term, torch.zeros_like(term))
            has_rows = has_rows | has
        return total, has_rows

    def likelihood_logits(self, embeddings: torch.Tensor, text_embeddings: Optional[torch.Tensor] = None
                          ) -> torch.Tensor:
        """[B, Q, E] -> [B, Q, K+1] (fp32): the "likelihood" naming rule. Lesion vs background stays best_match's
        (so the segmentation is the same under every rule); the diseases split the lesion mass by the posterior
        softmax(``attribute_log_likelihood``)."""
        ll, has_rows = self.attribute_log_likelihood(embeddings, text_embeddings)        # [B, Q, K], [K]
        return split_logits(self.best_match_logits(embeddings, text_embeddings), ll, has_rows)

    # ---------------------------------------------------------------------------------------------------- forward
    def _full_size(self, masks: Optional[torch.Tensor], x: torch.Tensor) -> Optional[torch.Tensor]:
        """Upsample [B, Q, *S'] mask logits to the patch size when the finest feature is strided (rare plans)."""
        if masks is None or tuple(masks.shape[2:]) == tuple(x.shape[2:]):
            return masks
        mode = "trilinear" if masks.ndim == 5 else "bilinear"
        return F.interpolate(masks, size=x.shape[2:], mode=mode, align_corners=False)   # [B, Q, *S]

    def forward(self, x: torch.Tensor, slot_assigner: Optional[Callable[[Dict], torch.Tensor]] = None,
                return_dict: bool = False):
        want_dict = self.training or return_dict or slot_assigner is not None
        features = decoder_features(self.unet, x)                    # coarsest first; [-1] = [B, Ck, *S]
        pixel = features[-1]
        # Dense eval only needs the last block's embedding: no per-block masks (the last one with pooling or residual).
        last_mask = self.mask_residual or self.mask_position is not None or self.lesion_intensity is not None
        dec = self.mask_decoder(features, pixel, masks="all" if want_dict else "last" if last_mask else "none",
                                image=x)
        if self.scan_phase is not None:
            scan = self.scan_phase(x, features[0])                   # [B, C]
            dec["embeddings"] = [self.with_scan_embedding(e, scan) for e in dec["embeddings"]]   # each [B, Q, E]
        if self.mask_position is not None:
            dec["embeddings"] = self.with_position_embeddings(dec["embeddings"], dec["masks"])   # each [B, Q, E]
        if self.lesion_intensity is not None:
            dec["embeddings"] = self.with_intensity_embeddings(dec["embeddings"], dec["masks"], x)   # each [B, Q, E]
        text = self.text_embeddings()                                 # [R+1, E]
        last_embeddings = dec["embeddings"][-1]                       # [B, Q, E]
        decoder_out = {"block_masks": [self._full_size(m, x) for m in dec["masks"]],
                       "block_embeddings": dec["embeddings"], "text_embeddings": text,
                       "logit_scale": self.logit_scale}
        if slot_assigner is not None:
            weights = slot_assigner(decoder_out)
            expected = (x.shape[0], self.num_tokens, NUM_ASPECTS, text.shape[0])
            assert tuple(weights.shape) == expected, (
                f"slot_assigner must return [B, Q, A, R+1] = {expected}; got {tuple(weights.shape)}")
        else:
            weights = self.predict_slots(last_embeddings, text)      # [B, Q, A, R+1]
        slot_text = torch.einsum("bqar,rc->bqac", weights.to(text.dtype), self.fold_text(text))   # [B, Q, A, C]
        cmki = self.cmki(dec["tokens"][-1], slot_text, pixel, with_branches=want_dict)
        class_logits = self.class_logits(last_embeddings, text)      # [B, Q, K+1]
        pred_masks = cmki["pred_masks"] + dec["masks"][-1] if self.mask_residual else cmki["pred_masks"]  # [B,Q,*S']
        pred_masks = self._full_size(pred_masks, x)                  # [B, Q, *S]
        if not want_dict:
            return dense_logits(class_logits, pred_masks, self.inference_rule)   # [B, K+1, *S]
        out = {**decoder_out, "slot_weights": weights, "mask_m": self._full_size(cmki["mask_m"], x),
               "mask_t": self._full_size(cmki["mask_t"], x), "pred_masks": pred_masks, "class_logits": class_logits}
        non_token = self.non_token_columns()                         # [R+1] bool or None, for the criterion
        if non_token is not None:
            out["non_token_columns"] = non_token
        if self.lesion_heads is not None:
            # per decoder stage [B, 1 or K+1, *S_i], coarsest first (the bottleneck has no head, as in nnU-Net)
            out["lesion_logits"] = [head(f) for head, f in zip(self.lesion_heads, features[1:])]
        return out

    @torch.no_grad()
    def describe(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Forward as a dict plus per-token probabilities, for lesion reports.

        Adds "mask_probs" sigmoid(pred_masks) [B,Q,*S], "class_probs" softmax(class_logits) [B,Q,K+1],
        "slot_rows" [B,Q,A] (chosen text-space column per aspect; 0 = t0, r >= 1 = bank row r-1) and
        "logits" the dense eval logits [B,K+1,*S].
        """
        out = self.forward(x, return_dict=True)
        out["mask_probs"] = out["pred_masks"].float().sigmoid()
        out["class_probs"] = out["class_logits"].softmax(-1)
        out["slot_rows"] = out["slot_weights"].argmax(-1)
        out["logits"] = dense_logits(out["class_logits"], out["pred_masks"], self.inference_rule)
        return out
