"""MaleniaNet: nnU-Net's U-Net + mask-token Transformer decoder + text alignment + CMKI (paper Sec. 3.1-3.3).

Interface shared with the losses and the trainer: docs/network_losses_interface.md.
"""
from nnunetv2_malenia.network.build import build_malenia_network
from nnunetv2_malenia.network.malenia_net import (DEFAULT_TOKEN_DIM, NAMING_RULES, NUM_ASPECTS, MaleniaNet,
                                                  dense_logits, vote_logits)

__all__ = ["MaleniaNet", "build_malenia_network", "dense_logits", "vote_logits", "DEFAULT_TOKEN_DIM", "NAMING_RULES",
           "NUM_ASPECTS"]
