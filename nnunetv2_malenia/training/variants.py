"""Small variants of nnUNetTrainerMalenia, nnU-Net style: each changes one setting and says so in its name.

The ablation variants follow Tables 3-4 of the paper; each trains into its own results folder
(``nnUNetTrainerMalenia_NoFusion__nnUNetPlans__3d_fullres``), so they compare side by side.
"""
from __future__ import annotations

from nnunetv2_malenia.training.trainer import nnUNetTrainerMalenia


class nnUNetTrainerMalenia_5epochs(nnUNetTrainerMalenia):
    """Smoke run: five epochs of nnU-Net's usual 250 iterations."""
    schedule = dict(num_epochs=5)


class nnUNetTrainerMalenia_5epochs_4iters(nnUNetTrainerMalenia):
    """The test suite's run: five epochs of four training and two validation iterations (minutes on a CPU)."""
    schedule = dict(num_epochs=5, num_iterations_per_epoch=4, num_val_iterations_per_epoch=2)


class nnUNetTrainerMalenia_CPUDemo(nnUNetTrainerMalenia):
    """The demo's CPU schedule: 25 epochs of 12 iterations (about 12 minutes on 2 cores at a 48^3 patch).
    Long enough to show the pipeline and a learning curve, far too short for good Dice: use a GPU schedule for that."""
    schedule = dict(num_epochs=25, num_iterations_per_epoch=12, num_val_iterations_per_epoch=3)


class nnUNetTrainerMalenia_250epochs(nnUNetTrainerMalenia):
    """GPU demo / benchmark schedule: a quarter of nnU-Net's 1000 epochs."""
    schedule = dict(num_epochs=250)


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
