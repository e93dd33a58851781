"""Run a dynamic_network_architectures U-Net and keep the decoder feature of every stage.

nnU-Net's decoders return segmentation logits only; Malenia needs the feature maps themselves (coarse ones for the
mask tokens' cross-attention, the finest one as per-pixel embedding). We replay the decoder's own loop
(transposed conv -> concat skip -> conv stage) without its 1x1 ``seg_layers``, which Malenia does not use and
which are therefore removed (otherwise they would be trainable parameters that never get a gradient).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.building_blocks.unet_residual_decoder import UNetResDecoder

_SUPPORTED_DECODERS = (UNetDecoder, UNetResDecoder)


def check_unet(unet: nn.Module) -> None:
    """Assert that ``unet`` is a dynamic_network_architectures U-Net whose decoder loop we can replay."""
    encoder = getattr(unet, "encoder", None)
    decoder = getattr(unet, "decoder", None)
    assert encoder is not None and decoder is not None, (
        f"MaleniaNet needs a U-Net with .encoder and .decoder (PlainConvUNet, ResidualEncoderUNet); "
        f"got {type(unet).__name__}")
    assert isinstance(decoder, _SUPPORTED_DECODERS), (
        f"unsupported decoder {type(decoder).__name__}; supported: {[c.__name__ for c in _SUPPORTED_DECODERS]}")
    for attr in ("output_channels", "strides", "conv_op"):
        assert hasattr(encoder, attr), f"encoder {type(encoder).__name__} lacks .{attr}"
    assert len(encoder.output_channels) >= 2, (
        f"MaleniaNet needs a U-Net with at least 2 stages; got n_stages={len(encoder.output_channels)}")


def drop_seg_layers(unet: nn.Module) -> None:
    """Replace the decoder's segmentation heads by an empty list (``unet(x)`` no longer works afterwards)."""
    unet.decoder.seg_layers = nn.ModuleList()


def feature_strides(unet: nn.Module) -> List[Tuple[int, ...]]:
    """Per-axis stride w.r.t. the input of every decoder feature, coarsest (bottleneck) first."""
    cumulative, current = [], None
    for stride in unet.encoder.strides:                                # one entry per encoder stage
        stride = [int(s) for s in stride]
        current = stride if current is None else [c * s for c, s in zip(current, stride)]
        cumulative.append(tuple(current))
    return cumulative[::-1]


def feature_channels(unet: nn.Module) -> List[int]:
    """Channels of every decoder feature, coarsest (bottleneck) first."""
    return [int(c) for c in unet.encoder.output_channels][::-1]


def decoder_features(unet: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """[bottleneck, decoder stage 1, ..., decoder stage n-1]: n_stages tensors [B, C_i, *S_i], coarsest first.

    The bottleneck counts as the decoder's first feature: it is the stride-32 map of a 6-stage plan, which the
    paper's first Transformer block attends to.
    """
    skips = unet.encoder(x)                                            # n_stages x [B, C_i, *S_i], finest first
    decoder = unet.decoder
    features = [skips[-1]]
    below = skips[-1]
    for s, (up, stage) in enumerate(zip(decoder.transpconvs, decoder.stages)):
        merged = torch.cat((up(below), skips[-(s + 2)]), dim=1)        # [B, 2 C_skip, *S_skip]
        below = stage(merged)                                          # [B, C_skip, *S_skip]
        features.append(below)
    return features


PAPER_STRIDES = (32, 16, 8)


def select_attention_scales(strides: List[Tuple[int, ...]], preferred: Tuple[int, ...] = PAPER_STRIDES) -> List[int]:
    """Indices (into the coarsest-first feature list) of the maps the Transformer blocks attend to, coarsest first.

    A feature's scalar stride is its largest per-axis stride (anisotropic plans: the in-plane axes).
    - The plan has maps at strides 32, 16 and 8 (6+ stages, the paper's setting): use exactly those.
    - Otherwise (fewer stages, e.g. a 4-stage tiny plan with strides 8/4/2/1): the coarsest three maps, never the
      finest one, which is the per-pixel embedding for the masks (attending to it would cost full-resolution
      memory). With fewer than three such maps the coarsest is reused: [c0, c1] -> [c0, c0, c1], [c0] -> [c0]*3.
    """
    scalar = [max(s) for s in strides]
    if all(p in scalar[:-1] for p in preferred):
        return [scalar.index(p) for p in preferred]
    candidates = list(range(max(len(strides) - 1, 1)))[:len(preferred)]   # all but the finest map
    while len(candidates) < len(preferred):
        candidates.insert(0, candidates[0])
    return candidates
