"""Mask-token Transformer decoder (paper Sec. 3.1, Eq. 1; Mask2Former's decoder, its masked attention a setting).

N learnable tokens pass through ``num_blocks`` blocks; block i cross-attends to the U-Net decoder feature of scale
``scale_of_block[i]`` (round robin over the selected coarse scales), then self-attends, then an FFN. After every
block the shared heads give (a) the token's embedding in text space (L2-normalised, for the alignment loss) and
(b) its mask: mask-embedding(token) . per-pixel feature. The per-pixel feature is the finest U-Net decoder output
used as it is: the TOKEN side is projected down to its channel count, so no full-resolution tensor with C
channels is ever built (at 128^3 that would be 2M voxels x 192 channels per sample).

Mask pooling (``mask_pooling=True``; not in the paper): a block's text-space embedding also reads the per-pixel
feature averaged under that block's own mask, so the token names what its mask covers. Without it (and before
masked attention) the embedding saw the image only through cross-attention to coarse features over the whole
volume, and on the CPU regime tokens that segmented a lesion often named it after another one. The pooling weights
are the detached mask probabilities (the naming loss moves the features and the projection, not the masks); a token
whose mask is empty pools ~0, which is itself a "no lesion" signal.

Masked attention (``masked_attention=True``; Mask2Former's, which the paper builds on, though its Eq. 1 does not
write it): block i cross-attends only to the positions where block i-1's mask is on (block 0: the mask of the
learnable queries themselves), so a token reads the features of its own region. Mask2Former credits it with most of
its faster convergence over MaskFormer; without it, every token attends over the whole volume. On the CPU regime
(seeded A/B, fold-0 validation of the demo's seen phantoms) it lifted Dice from 0.52 to 0.74 for about 9 % more time
per epoch.

Context embedding (``context_ring=r > 0``; not in the paper): every block also gives the token a second text-space
embedding, read only from the per-pixel feature averaged over a shell of r voxels around its mask (the tissue that
surrounds the lesion), never from the token itself. MaleniaNet matches location and organ descriptions against it
(malenia_net.py, "text space"). Why: in a training set where each location occurs with one disease only, an
embedding that sees the lesion learns location from the lesion's appearance; a liver cyst, which looks like the
seen kidney cysts, was then placed in the kidney and named kidney cyst. The shell sees the liver around it. Off by
default: on the CPU regime it changed neither location precision nor disease identification (README, "CPU regime").
With ``context_source="feature"`` the shell reads the finest decoder feature, whose receptive field covers the lesion
itself, so the shell can still encode the lesion's look (the diagnosis of that A/B). ``context_source="image"``
reads the input intensities instead, as a learnable soft histogram per voxel (``IntensityBins``): a shell voxel then
sees only its own tissue, and the context embedding can only learn location from the tissue around the lesion.

Aspect heads (``text_blocks=n > 1``; not in the paper): the text head gives a token n embeddings of C channels, each
L2-normalised on its own ([B, Q, n*C]); MaleniaNet puts t0 in block 0 and each bank aspect's rows in a block of
their own (malenia_net.py, "text space"), so a token meets location rows through one head, density rows through
another, and so on. Why: one embedding aligned with all eight descriptions of a lesion at once settles on the
centroid of its disease's descriptions, and every aspect is then read off that centroid. On the CPU regime an unseen
kidney tumour in the right kidney was described as a kidney cyst in all eight aspects, "left kidney" included
(location precision 0.07 on unseen lesions, 0.63 on seen ones). A head per aspect is a classifier of that aspect's
values, and for an aspect whose value varies within a disease (location: left/right kidney, liver lobes, pancreas
head/body/tail) it has to learn the aspect from what the image shows rather than from which disease the lesion
resembles.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_malenia.network.positional_encoding import sine_positional_encoding

CONTEXT_SOURCES = ("feature", "image")    # what the context shell reads (module docstring)


class AttentionLayer(nn.Module):
    """Post-norm residual attention, as in Mask2Former: x = LN(x + Attn(x + pos_q, mem + pos_k, mem))."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: Optional[torch.Tensor] = None, pos_q: Optional[torch.Tensor] = None,
                pos_k: Optional[torch.Tensor] = None, blocked: Optional[torch.Tensor] = None) -> torch.Tensor:
        """blocked: [B * heads, Q, N] bool, True where a query may not attend (masked attention); None: anywhere."""
        memory = x if memory is None else memory                       # self-attention when no memory
        q = x if pos_q is None else x + pos_q                          # [B, Q, C]
        k = memory if pos_k is None else memory + pos_k                # [B, N, C]
        out, _ = self.attn(q, k, memory, attn_mask=blocked, need_weights=False)   # [B, Q, C]
        return self.norm(x + out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, ratio: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * ratio), nn.GELU(), nn.Linear(dim * ratio, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.net(x))


class DecoderBlock(nn.Module):
    """Eq. 1: cross-attention to one scale's image features, then self-attention among tokens, then FFN."""

    def __init__(self, dim: int, num_heads: int, ffn_ratio: int):
        super().__init__()
        self.cross = AttentionLayer(dim, num_heads)
        self.self_attn = AttentionLayer(dim, num_heads)
        self.ffn = FeedForward(dim, ffn_ratio)

    def forward(self, tokens, memory, query_pos, memory_pos, blocked=None):
        tokens = self.cross(tokens, memory, pos_q=query_pos, pos_k=memory_pos, blocked=blocked)   # [B, Q, C]
        tokens = self.self_attn(tokens, pos_q=query_pos, pos_k=query_pos)        # [B, Q, C]
        return self.ffn(tokens)                                                  # [B, Q, C]


def mlp(dims: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLU in between (none after the last)."""
    layers: List[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def mask_pooled_features(mask_logits: torch.Tensor, pixel_feature: torch.Tensor) -> torch.Tensor:
    """Per token, the per-pixel feature averaged under its mask probability: [B, Q, *S'], [B, Cm, *S'] -> [B, Q, Cm].

    Weights are sigmoid(mask) without gradient; the sum is floored at one voxel, so a token with an empty mask gets
    ~0 instead of a noisy average of a few faint voxels."""
    return weighted_average(mask_logits.detach().sigmoid(), pixel_feature)


def weighted_average(weights: torch.Tensor, pixel_feature: torch.Tensor) -> torch.Tensor:
    """Per token, the per-pixel feature averaged with its voxel weights: [B, Q, *S'], [B, Cm, *S'] -> [B, Q, Cm]
    (fp32); the weight sum is floored at one voxel.

    The weighted sum runs in the pixel feature's dtype: under CPU bf16 autocast, casting the full-resolution feature
    and weights up to fp32 here only had autocast's bmm cast them back down (four full-resolution copies per block,
    forward and backward). Only the [B, Q, Cm] result and the weight sums are fp32."""
    flat_weights = weights.flatten(2).to(pixel_feature.dtype)                  # [B, Q, N]
    flat = pixel_feature.flatten(2).transpose(1, 2)                            # [B, N, Cm] (a view)
    total = flat_weights.sum(-1, keepdim=True, dtype=torch.float32)            # [B, Q, 1]
    return torch.bmm(flat_weights, flat).float() / total.clamp_min(1.0)       # [B, Q, Cm]


def dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey-value dilation of [B, Q, *S] by a (2r+1)-voxel cube, as one max-pool per axis (separable: 3 (2r+1)
    comparisons per voxel instead of (2r+1)^3)."""
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[masks.ndim - 2]
    for axis in range(masks.ndim - 2):
        kernel = [1] * (masks.ndim - 2)
        kernel[axis] = 2 * radius + 1
        padding = [k // 2 for k in kernel]
        masks = pool(masks, kernel_size=kernel, stride=1, padding=padding)
    return masks


def ring_pooled_features(mask_logits: torch.Tensor, pixel_feature: torch.Tensor, radius: int) -> torch.Tensor:
    """Per token, the per-pixel feature averaged over the shell of ``radius`` voxels around its mask:
    [B, Q, *S'], [B, Cm, *S'] -> [B, Q, Cm].

    Shell weights = dilate(m, r) - m with m = sigmoid(mask) without gradient (a soft ring: 1 just outside a sharp
    mask, 0 inside it and beyond r); the sum is floored at one voxel, as in ``mask_pooled_features``. The max-pools
    of the dilation are its cost on a CPU (a few tenths of a second per block for 16 tokens at 48^3 on one core;
    CPU-regime epochs 17.1 -> 23.8 s)."""
    m = mask_logits.detach().float().sigmoid()                                  # [B, Q, *S']
    return weighted_average((dilate(m, radius) - m).clamp_min(0.0), pixel_feature)   # shell weights [B, Q, *S']


def image_on_grid(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """[B, Cin, *S] -> [B, Cin, *size]: the network input area-averaged to the grid of a strided finest feature
    (unchanged where the grids agree, the usual case)."""
    if tuple(image.shape[2:]) == tuple(size):
        return image
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[image.ndim - 2]
    return pool(image.float(), tuple(size))                                        # [B, Cin, *size]


class IntensityBins(nn.Module):
    """Per voxel, a soft histogram of the input intensity: [B, Cin, *S] -> [B, H, *S] (fp32), each voxel's H
    values summing to 1 (softmax over bins of -((x - c_h) / w)^2 / 2, x the channel mean).

    The centres c_h and the width w are learned; they start evenly over [-2.5, 2.5] normalised units (the CPU
    regime's soft-tissue window maps -160..240 HU to -2..2), so lung, fat, fluid, parenchyma, enhancing tissue and
    calcium start in different bins whatever the plan's normalisation. A voxel's bins say which tissue it is and
    nothing about its neighbours, which is the point (module docstring, context embedding)."""

    def __init__(self, num_bins: int = 11, low: float = -2.5, high: float = 2.5):
        super().__init__()
        assert num_bins >= 2 and high > low, f"bad bins: num_bins={num_bins}, range [{low}, {high}]"
        self.centres = nn.Parameter(torch.linspace(low, high, num_bins))
        self.log_width = nn.Parameter(torch.tensor(float(high - low) / (num_bins - 1)).log())

    @property
    def num_bins(self) -> int:
        return int(self.centres.numel())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float().mean(1, keepdim=True)                                   # [B, 1, *S]
        shape = (1, -1) + (1,) * (image.ndim - 2)
        z = (x - self.centres.view(shape)) / self.log_width.exp()                  # [B, H, *S]
        return torch.softmax(-0.5 * z * z, dim=1)                                  # [B, H, *S]


def block_max(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Max over the cells of a coarse grid: [B, Q, *S] -> [B, Q, *size], as adaptive max-pooling computes it.

    Where every axis divides evenly (the U-Net's strides), one axis at a time, innermost first, on a view of
    [B, Q, s0, k0, s1, k1, ...]: each reduction reads a contiguous run, and the first one already shrinks the tensor
    k-fold. On one core at the 3d_cpu plan (16 token masks of 48^3, batch 2) the three coarse scales took 44 ms per
    training step with adaptive max-pooling and 20 ms this way; one amax over all kernel axes at once was slower
    than either. Other sizes fall back to adaptive max-pooling."""
    spatial = tuple(x.shape[2:])
    if any(s % c for s, c in zip(spatial, size)):
        pool = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[x.ndim - 2]
        return pool(x, tuple(size))
    cells = [v for c, s in zip(size, spatial) for v in (c, s // c)]            # [s0, k0, s1, k1, ...]
    x = x.reshape(*x.shape[:2], *cells)                                        # [B, Q, s0, k0, s1, k1, ...]
    for axis in range(x.ndim - 1, 2, -2):                                      # the kernel axes, innermost first
        x = x.amax(axis)
    return x                                                                   # [B, Q, *size]


def attention_blocked(mask_logits: torch.Tensor, size: Sequence[int], num_heads: int) -> torch.Tensor:
    """Mask2Former's masked attention at a coarser scale: [B, Q, *S'] mask logits -> [B * heads, Q, N] bool (N =
    prod(size)), True where the token may not attend.

    A coarse position is open when any voxel of the mask under it is on (logit > 0): max-pooled rather than
    interpolated as in Mask2Former, so a lesion of a few voxels still opens its cell at stride 8. A token whose mask
    is empty everywhere attends everywhere (as in Mask2Former)."""
    coarse = block_max(mask_logits.detach(), tuple(int(v) for v in size))     # [B, Q, *size] (max: exact in bf16)
    blocked = coarse.flatten(2) <= 0                                           # [B, Q, N]
    blocked = blocked & ~blocked.all(-1, keepdim=True)                         # empty mask: attend everywhere
    return blocked.repeat_interleave(num_heads, dim=0)                         # [B * heads, Q, N]


def token_masks(mask_embed: torch.Tensor, pixel_feature: torch.Tensor, bias: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
    """[B, Q, Cm] . [B, Cm, *S] (+ bias [B, Q]) -> [B, Q, *S] mask logits, as one batched matmul (a 1x1 conv
    over full-resolution 3D maps is several times slower on CPU)."""
    b, cm = pixel_feature.shape[:2]
    spatial = pixel_feature.shape[2:]
    flat = pixel_feature.reshape(b, cm, -1).to(mask_embed.dtype)      # [B, Cm, N]
    if bias is None:
        masks = torch.bmm(mask_embed, flat)                            # [B, Q, N]
    else:
        masks = torch.baddbmm(bias.unsqueeze(-1).to(mask_embed.dtype), mask_embed, flat)   # [B, Q, N]
    return masks.reshape(b, mask_embed.shape[1], *spatial)             # [B, Q, *S]


class MaskTokenDecoder(nn.Module):
    """Tokens -> per-block (normalised token, text-space embedding, mask embedding) over coarse U-Net features.

    in_channels: channels of each attended feature, keyed by its index in the coarsest-first feature list.
    scale_of_block: feature index that block i cross-attends to (len = num_blocks).
    mask_dim: channels of the per-pixel feature (the finest decoder output).
    mask_pooling: add the pixel feature pooled under each block's mask to its embedding (module docstring).
    context_ring: width in voxels of the shell around each mask whose pooled pixel feature gives the token's context
    embedding (0 = none; module docstring). With it, every embedding is [appearance C | context C], 2C wide.
    masked_attention: block i cross-attends only where the mask of block i-1 (block 0: of the learnable queries) is
    on (module docstring).
    context_source: what the context shell reads: "feature" (the per-pixel feature) or "image" (the input
    intensities through ``IntensityBins``; ``forward`` then needs ``image``).
    text_blocks: text-space embeddings per token (1: one shared; n > 1: aspect heads, module docstring); not together
    with a context embedding.
    """

    def __init__(self, in_channels: Dict[int, int], scale_of_block: Sequence[int], conv_op, *, num_tokens: int,
                 token_dim: int, num_heads: int, ffn_ratio: int, mask_dim: int, mask_pooling: bool = False,
                 context_ring: int = 0, masked_attention: bool = False, context_source: str = "feature",
                 text_blocks: int = 1):
        super().__init__()
        assert text_blocks >= 1 and not (text_blocks > 1 and context_ring), (
            f"text_blocks must be >= 1, and 1 with a context embedding; got {text_blocks} "
            f"(context_ring {context_ring})")
        self.text_blocks = int(text_blocks)
        self.masked_attention = bool(masked_attention)
        self.num_heads = num_heads
        self.scale_of_block = [int(i) for i in scale_of_block]
        assert all(i in in_channels for i in self.scale_of_block), (
            f"scale_of_block {self.scale_of_block} names features without channels; known: {sorted(in_channels)}")
        self.token_dim = token_dim
        self.query_feat = nn.Embedding(num_tokens, token_dim)          # the tokens' content
        self.query_pos = nn.Embedding(num_tokens, token_dim)           # their learned positional embedding
        # 1x1 projections to token_dim, at the coarse scales only (cheap: stride >= 8 in the paper's setting).
        self.input_proj = nn.ModuleDict({str(i): conv_op(in_channels[i], token_dim, 1) for i in sorted(set(
            self.scale_of_block))})
        # Mask2Former's level embedding: tells a block which scale it looks at (sine encodings are scale-free).
        self.level_embed = nn.Embedding(len(self.input_proj), token_dim)
        self._level_of = {int(k): n for n, k in enumerate(self.input_proj.keys())}
        self.blocks = nn.ModuleList(DecoderBlock(token_dim, num_heads, ffn_ratio) for _ in self.scale_of_block)
        # Heads shared by all blocks, so every block's tokens live in the same text space / mask space.
        self.decoder_norm = nn.LayerNorm(token_dim)
        self.text_head = nn.Linear(token_dim, token_dim * self.text_blocks)
        self.mask_embed = mlp((token_dim, token_dim, mask_dim))
        # Zero-initialised: training starts from the paper's embedding and learns how much the pooled feature adds.
        self.pool_proj = nn.Linear(mask_dim, token_dim * self.text_blocks) if mask_pooling else None
        if self.pool_proj is not None:
            nn.init.zeros_(self.pool_proj.weight)
            nn.init.zeros_(self.pool_proj.bias)
        assert context_ring >= 0, f"context_ring must be >= 0 voxels; got {context_ring}"
        self.context_ring = int(context_ring)
        assert context_source in CONTEXT_SOURCES, f"context_source {context_source!r} not in {CONTEXT_SOURCES}"
        self.context_source = context_source
        # read by the shell: the per-pixel feature (mask_dim channels) or the image's intensity bins
        self.context_bins = IntensityBins() if self.context_ring and context_source == "image" else None
        context_dim = mask_dim if self.context_bins is None else self.context_bins.num_bins
        self.context_proj = mlp((context_dim, token_dim, token_dim)) if self.context_ring else None
        self._pos_cache: Dict[tuple, torch.Tensor] = {}

    @property
    def embedding_dim(self) -> int:
        """Width of the text-space embeddings: C, 2C with a context embedding, n*C with n aspect heads."""
        return self.token_dim * (2 if self.context_proj is not None else self.text_blocks)

    def _memory(self, feature: torch.Tensor, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        proj = self.input_proj[str(index)](feature)                    # [B, C, *s]
        b, c = proj.shape[:2]
        memory = proj.reshape(b, c, -1).transpose(1, 2)                # [B, N, C]
        memory = memory + self.level_embed.weight[self._level_of[index]]
        key = (tuple(proj.shape[2:]), c, proj.device, memory.dtype)
        pos = self._pos_cache.get(key)
        if pos is None:     # fixed for a given patch size: compute once (sliding-window reuses the same shape)
            pos = sine_positional_encoding(key[0], c, device=proj.device, dtype=memory.dtype).unsqueeze(0)
            if len(self._pos_cache) >= 16:                               # bounded: a few shapes per run
                self._pos_cache.clear()
            self._pos_cache[key] = pos
        return memory, pos                                              # [B, N, C], [1, N, C]

    def _context_feature(self, pixel_feature: torch.Tensor, image: Optional[torch.Tensor]) -> torch.Tensor:
        """What the context shell averages: the pixel feature [B, Cm, *S'], or the image's intensity bins
        [B, H, *S'] (the image resampled to the mask size by area averaging when the finest feature is strided)."""
        if self.context_bins is None:
            return pixel_feature
        assert image is not None, "context_source='image' needs the input image (forward(..., image=x))"
        return self.context_bins(image_on_grid(image, tuple(pixel_feature.shape[2:])))   # [B, H, *S']

    def forward(self, features: List[torch.Tensor], pixel_feature: Optional[torch.Tensor] = None,
                masks: str = "all", image: Optional[torch.Tensor] = None) -> Dict[str, List[torch.Tensor]]:
        """features: coarsest-first decoder features; pixel_feature [B, Cm, *S'] (None: no masks, no pooling);
        image [B, Cin, *S] the network input (read only with context_source="image").
        masks: "all" (training: every block's), "last" (dense eval with mask pooling or the mask residual: only the
        last block's is computed, and earlier blocks' embeddings lack the pooling; eval reads only the last) or
        "none" (dense eval of the paper's network; with mask pooling or a context embedding the last mask is still
        computed, not returned).

        Returns {"tokens": L x [B, Q, C] (normalised by decoder_norm), "embeddings": L x [B, Q, E] (text space,
        E = ``embedding_dim``: C L2-normalised, [appearance | context] or n aspect heads, each C-wide block
        L2-normalised; a block without a mask ("last") has a zero context half), "masks": L x [B, Q, *S'] for
        "all", [last block's] for "last", [] for "none"}.
        """
        assert masks in ("all", "last", "none"), f"masks must be 'all', 'last' or 'none'; got {masks!r}"
        b = features[0].shape[0]
        tokens = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)     # [B, Q, C]
        query_pos = self.query_pos.weight.unsqueeze(0).expand(b, -1, -1)   # [B, Q, C]
        memories = {i: self._memory(features[i], i) for i in sorted(set(self.scale_of_block))}
        out: Dict[str, List[torch.Tensor]] = {"tokens": [], "embeddings": [], "masks": []}
        masked = self.masked_attention and pixel_feature is not None
        normed = self.decoder_norm(tokens)                                   # [B, Q, C] the queries before block 0
        for block, index in zip(self.blocks, self.scale_of_block):
            memory, memory_pos = memories[index]
            blocked = None
            if masked:      # where the previous block's (or the queries') mask is on; no gradient, as in Mask2Former
                with torch.no_grad():
                    previous = token_masks(self.mask_embed(normed), pixel_feature)            # [B, Q, *S']
                blocked = attention_blocked(previous, features[index].shape[2:], self.num_heads)   # [B*H, Q, N]
            tokens = block(tokens, memory, query_pos, memory_pos, blocked)   # [B, Q, C]
            normed = self.decoder_norm(tokens)                               # [B, Q, C]
            out["tokens"].append(normed)
        text = [self.text_head(t) for t in out["tokens"]]                    # L x [B, Q, n*C], before normalising
        context: List[Optional[torch.Tensor]] = [None] * len(text)           # L x [B, Q, C] where a mask exists
        reads_masks = self.pool_proj is not None or self.context_proj is not None
        if pixel_feature is not None and (masks != "none" or reads_masks):
            # All blocks in one pass over the full-resolution feature (forward and backward).
            tokens_with_masks = out["tokens"] if masks == "all" else out["tokens"][-1:]
            embeds = self.mask_embed(torch.cat(tokens_with_masks, dim=1))   # [B, L*Q, Cm] (L = 1: last block)
            all_masks = token_masks(embeds, pixel_feature)                     # [B, L*Q, *S']
            block_masks = list(all_masks.split(tokens.shape[1], dim=1))         # L x [B, Q, *S']
            # one pass over the full-resolution feature for every block's pooling (forward and backward)
            pooled = (mask_pooled_features(all_masks, pixel_feature).split(tokens.shape[1], dim=1)
                      if self.pool_proj is not None else None)                  # L x [B, Q, Cm]
            first = len(text) - len(block_masks)
            shell_source = (self._context_feature(pixel_feature, image) if self.context_proj is not None
                            else None)                                          # [B, Cm or H, *S']
            for i, m in zip(range(first, len(text)), block_masks):
                if pooled is not None:
                    text[i] = text[i] + self.pool_proj(pooled[i - first].to(text[i].dtype))   # [B, Q, n*C]
                if self.context_proj is not None:
                    ring = ring_pooled_features(m, shell_source, self.context_ring)    # [B, Q, Cm or H]
                    context[i] = self.context_proj(ring.to(text[i].dtype))             # [B, Q, C]
            if masks != "none":
                out["masks"] = block_masks
        # each head's block on its own: [B, Q, n*C] -> [B, Q, n, C] -> unit length per block -> [B, Q, n*C]
        embeddings = [F.normalize(t.unflatten(-1, (self.text_blocks, self.token_dim)), dim=-1).flatten(-2)
                      for t in text]                                            # L x [B, Q, n*C], text space
        if self.context_proj is not None:
            embeddings = [torch.cat((e, torch.zeros_like(e) if c is None else F.normalize(c, dim=-1)), dim=-1)
                          for e, c in zip(embeddings, context)]                 # L x [B, Q, 2C]
        out["embeddings"] = embeddings
        return out
