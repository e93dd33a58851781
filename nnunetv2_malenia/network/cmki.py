"""Cross-Modal Knowledge Injection (paper Sec. 3.2, Eq. 3-5).

Per token: its A=8 slot text embeddings (one per attribute aspect) are concatenated and mapped by an MLP to one
text embedding t_i. Tokens and texts then exchange information (Eq. 3; ``num_layers`` rounds):
    m^ = SelfAttn(CrossAttn(q_m, k_t, v_t) + m),   t^ = SelfAttn(CrossAttn(q_t, k_m, v_m) + t)
and two mask branches read the per-pixel feature F (Eq. 4-5):
    Q_m = phi_m(m^), Q_t = phi_t(t^), K = phi_k(F);  Mask_x = Q_x K^T / sqrt(C_k)
    Mask = MLP(beta1 Mask_m + beta2 Mask_t)
C_k is the per-pixel feature's channel count (the finest U-Net decoder output, 32 for nnU-Net plans): queries are
projected down to it instead of projecting the full-resolution feature up to the token dimension (memory).
The ensemble MLP acts per voxel across the Q token channels; it is residual and starts close to the identity, so
training starts from the plain weighted sum of the two branches. Everything linear (phi_k, the betas, the MLP's
first layer) is applied on the token side, so at full resolution there are two batched matmuls (ensemble
input and hidden layer), then activation, W2 and the residual (see ``forward``); the separate branch masks
returned for the dict cost one more matmul and no backward unless a loss uses them.

Ablations (paper Table 4): ``fusion=False`` skips Eq. 3 (m^ = m, t^ = t); ``branches="mask"`` or ``"text"`` keeps
one branch (Mask = MLP(Mask_x), no beta) and does not build the other branch's projection.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from nnunetv2_malenia.network.mask_decoder import AttentionLayer, mlp, token_masks

BRANCHES = ("both", "mask", "text")


class FusionLayer(nn.Module):
    """One round of Eq. 3; both directions read the inputs of this round.

    A direction whose result nothing reads (the last round's text update when only the mask branch is kept, and
    vice versa) is not built: unused parameters would break DDP without ``find_unused_parameters``.
    """

    def __init__(self, dim: int, num_heads: int, update_mask: bool = True, update_text: bool = True):
        super().__init__()
        self.mask_from_text = AttentionLayer(dim, num_heads) if update_mask else None
        self.mask_self = AttentionLayer(dim, num_heads) if update_mask else None
        self.text_from_mask = AttentionLayer(dim, num_heads) if update_text else None
        self.text_self = AttentionLayer(dim, num_heads) if update_text else None

    def forward(self, m: torch.Tensor, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        m_new = self.mask_self(self.mask_from_text(m, t)) if self.mask_self is not None else m   # [B, Q, C]
        t_new = self.text_self(self.text_from_mask(t, m)) if self.text_self is not None else t   # [B, Q, C]
        return m_new, t_new


class TokenEnsemble(nn.Module):
    """Mask = x + W2 act(W1 x + b1) + b2, per voxel over the Q token channels (x = beta-weighted branch sum).

    Stored as Linear layers over the token axis; ``CrossModalKnowledgeInjection`` applies W1 on the token side
    (W1 is linear and x is linear in the queries), so only act, W2 and the residual run at full resolution.
    """

    def __init__(self, num_tokens: int):
        super().__init__()
        self.fc1 = nn.Linear(num_tokens, num_tokens)
        self.act = nn.LeakyReLU(0.01)
        self.fc2 = nn.Linear(num_tokens, num_tokens)
        nn.init.normal_(self.fc2.weight, std=1e-3)    # near-identity start, but nonzero so fc1 learns too
        nn.init.zeros_(self.fc2.bias)

    def mix_tokens(self, queries: torch.Tensor, bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """W1 applied before the dot product: queries [B, Q, Ck], bias [B, Q] -> the same for the hidden layer."""
        hidden_q = torch.einsum("pq,bqc->bpc", self.fc1.weight, queries)       # [B, Q, Ck]
        hidden_b = torch.einsum("pq,bq->bp", self.fc1.weight, bias) + self.fc1.bias   # [B, Q]
        return hidden_q, hidden_b

    def finish(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """x, hidden [B, Q, N] -> x + W2 act(hidden) + b2 [B, Q, N]."""
        # bmm with the weight broadcast over the batch: matmul([Q, Q], [B, Q, N]) folds the batch into rows, which
        # transposes the full-resolution tensor to [B*N, Q] and back (two copies each way); 2.5x slower fwd+bwd here.
        weight = self.fc2.weight.to(hidden.dtype).expand(hidden.shape[0], -1, -1)  # [B, Q, Q]
        out = torch.bmm(weight, self.act(hidden))                                 # [B, Q, N]
        return out.add_(self.fc2.bias.to(out.dtype).unsqueeze(-1)).add_(x)


class CrossModalKnowledgeInjection(nn.Module):
    def __init__(self, token_dim: int, num_aspects: int, pixel_channels: int, num_tokens: int, *,
                 num_heads: int = 8, num_layers: int = 1, fusion: bool = True, branches: str = "both",
                 beta: Tuple[float, float] = (0.5, 0.5)):
        super().__init__()
        assert branches in BRANCHES, f"branches must be one of {BRANCHES}; got {branches!r}"
        assert len(beta) == 2, f"beta must be (beta_mask, beta_text); got {beta!r}"
        self.branches = branches
        self.beta = (float(beta[0]), float(beta[1]))
        self.key_dim = pixel_channels
        use_m, use_t = branches in ("both", "mask"), branches in ("both", "text")
        # Concatenated slot texts [A*C] -> one text embedding per token [C]; not built when nothing reads it
        # (mask branch only, no fusion: that ablation never sees the text).
        self.slot_mlp = mlp((num_aspects * token_dim, token_dim, token_dim)) if (fusion or use_t) else None
        layers = num_layers if fusion else 0
        self.fusion = nn.ModuleList(
            FusionLayer(token_dim, num_heads, update_mask=use_m or i < layers - 1, update_text=use_t or i < layers - 1)
            for i in range(layers))
        self.phi_m = nn.Linear(token_dim, pixel_channels) if use_m else None
        self.phi_t = nn.Linear(token_dim, pixel_channels) if use_t else None
        # phi_k is a per-voxel linear map (a 1x1 conv). It is never applied to the full-resolution feature:
        # Q . (W_k F + b_k) = (Q W_k) . F + Q . b_k, so it is folded into the queries (same result, no [B,Ck,*S]
        # tensor and no full-resolution conv in forward or backward).
        self.phi_k = nn.Linear(pixel_channels, pixel_channels)
        self.ensemble = TokenEnsemble(num_tokens)

    def _branch(self, phi: nn.Linear, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Folded Eq. 4-5 query of one branch: x [B, Q, C] -> (query [B, Q, Ck], bias [B, Q]) with
        Mask_x = query . F + bias = phi(x) . phi_k(F) / sqrt(Ck)."""
        q = phi(x) / math.sqrt(self.key_dim)                                    # [B, Q, Ck]
        return q @ self.phi_k.weight, q @ self.phi_k.bias                        # [B, Q, Ck], [B, Q]

    def forward(self, tokens: torch.Tensor, slot_text: torch.Tensor, pixel_feature: torch.Tensor,
                with_branches: bool = True) -> Dict[str, Optional[torch.Tensor]]:
        """tokens [B, Q, C], slot_text [B, Q, A, C], pixel_feature [B, Ck, *S'] ->
        {"mask_m", "mask_t", "pred_masks"}: [B, Q, *S'] logits. mask_m / mask_t are None for a disabled branch
        and when ``with_branches`` is False (dense eval needs only pred_masks)."""
        b, q, a, c = slot_text.shape
        m = tokens
        t = self.slot_mlp(slot_text.reshape(b, q, a * c)) if self.slot_mlp is not None else None   # [B, Q, C]
        for layer in self.fusion:
            m, t = layer(m, t)                                         # [B, Q, C] each
        branch = {"mask_m": self._branch(self.phi_m, m) if self.phi_m is not None else None,
                  "mask_t": self._branch(self.phi_t, t) if self.phi_t is not None else None}
        if branch["mask_m"] is not None and branch["mask_t"] is not None:
            x_q = self.beta[0] * branch["mask_m"][0] + self.beta[1] * branch["mask_t"][0]   # [B, Q, Ck]
            x_b = self.beta[0] * branch["mask_m"][1] + self.beta[1] * branch["mask_t"][1]   # [B, Q]
        else:
            x_q, x_b = branch["mask_m"] if branch["mask_m"] is not None else branch["mask_t"]
        h_q, h_b = self.ensemble.mix_tokens(x_q, x_b)
        # Two matmuls rather than one on concatenated queries: slicing a full-resolution result costs a
        # zero-filled full-size gradient per slice in backward.
        x = token_masks(x_q, pixel_feature, x_b)                       # [B, Q, *S']
        hidden = token_masks(h_q, pixel_feature, h_b)                  # [B, Q, *S']
        pred = self.ensemble.finish(x.reshape(b, q, -1), hidden.reshape(b, q, -1)).reshape(x.shape)   # [B, Q, *S']
        out = {"mask_m": None, "mask_t": None, "pred_masks": pred}
        if with_branches:
            for key, value in branch.items():
                if value is not None:
                    out[key] = token_masks(value[0], pixel_feature, value[1])        # [B, Q, *S']
        return out
