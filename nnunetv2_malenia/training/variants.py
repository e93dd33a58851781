"""Small variants of nnUNetTrainerMalenia, nnU-Net style: each changes one setting and says so in its name.

The ablation variants follow Tables 3-4 of the paper; each trains into its own results folder
(``nnUNetTrainerMalenia_NoFusion__nnUNetPlans__3d_fullres``), so they compare side by side.
"""
from __future__ import annotations

import torch

from nnunetv2_malenia.training.trainer import nnUNetTrainerMalenia


class nnUNetTrainerMalenia_5epochs(nnUNetTrainerMalenia):
    """Smoke run: five epochs of nnU-Net's usual 250 iterations."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 5


class nnUNetTrainerMalenia_5epochs_4iters(nnUNetTrainerMalenia):
    """The test suite's run: five epochs of four training and two validation iterations (minutes on a CPU)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 5
        self.num_iterations_per_epoch = 4
        self.num_val_iterations_per_epoch = 2


# --- ablations (paper Tables 3-4) ----------------------------------------------------------------------------------
class nnUNetTrainerMalenia_SingleScaleAlignment(nnUNetTrainerMalenia):
    """MP-NCE on the last decoder block only (Table 3, single-scale)."""
    malenia_loss_settings = dict(nnUNetTrainerMalenia.malenia_loss_settings, multi_scale=False)


class nnUNetTrainerMalenia_SinglePositive(nnUNetTrainerMalenia):
    """One positive per lesion: the embedding of its eight descriptions joined into one paragraph (Table 3)."""
    malenia_loss_settings = dict(nnUNetTrainerMalenia.malenia_loss_settings, multi_positive=False)


class nnUNetTrainerMalenia_NoFusion(nnUNetTrainerMalenia):
    """CMKI without the cross/self-attention deep fusion (Table 4, no DF)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, fusion=False)


class nnUNetTrainerMalenia_MaskBranchOnly(nnUNetTrainerMalenia):
    """Final masks from the mask-token branch only (Table 4, MT)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, branches="mask")


class nnUNetTrainerMalenia_TextBranchOnly(nnUNetTrainerMalenia):
    """Final masks from the text-embedding branch only (Table 4, TE)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, branches="text")
