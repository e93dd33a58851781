"""Small variants of nnUNetTrainerMalenia, nnU-Net style: each changes one setting and says so in its name.

The ablation variants follow Tables 3-4 of the paper; each trains into its own results folder
(``nnUNetTrainerMalenia_NoFusion__nnUNetPlans__3d_fullres``), so they compare side by side.
"""
from __future__ import annotations

from nnunetv2_malenia.training.paper_optimizer import PAPER_ADAMW
from nnunetv2_malenia.training.schedule import (CPU_ADAMW, CPU_DEMO, CPU_LONG, GPU_250, SMOKE_2x2, TESTS_5x4, TIME_BUDGET,
                                                TIME_BUDGET_2ITERS)
from nnunetv2_malenia.training.time_budget import TimeBudgetMixin
from nnunetv2_malenia.training.trainer import nnUNetTrainerMalenia


class nnUNetTrainerMalenia_5epochs(nnUNetTrainerMalenia):
    """Smoke run: five epochs of nnU-Net's usual 250 iterations."""
    schedule = dict(num_epochs=5)


class nnUNetTrainerMalenia_5epochs_4iters(nnUNetTrainerMalenia):
    """The test suite's run: five epochs of four training and two validation iterations (minutes on a CPU)."""
    schedule = TESTS_5x4


class nnUNetTrainerMalenia_2epochs_2iters(nnUNetTrainerMalenia):
    """The benchmark's smoke profile: two epochs of two training and one validation iteration."""
    schedule = SMOKE_2x2


class nnUNetTrainerMalenia_CPUDemo(nnUNetTrainerMalenia):
    """The CPU regime (demo and quick benchmark): 80 epochs of 25 iterations with AdamW 1e-3, warm-up then cosine,
    no data augmentation; train it on the halved-width ``3d_cpu`` configuration (nnUNetv2_malenia_cpu_plans).
    README, "CPU regime"."""
    schedule = CPU_DEMO
    adamw = CPU_ADAMW
    augment = False             # see ScheduledTrainer.augment


class nnUNetTrainerMalenia_CPULong(nnUNetTrainerMalenia_CPUDemo):
    """The CPU regime with twice the iterations (160 epochs of 25)."""
    schedule = CPU_LONG


class nnUNetTrainerMalenia_250epochs(nnUNetTrainerMalenia):
    """GPU demo / benchmark schedule: a quarter of nnU-Net's 1000 epochs."""
    schedule = GPU_250


class nnUNetTrainerMalenia_AdamW(nnUNetTrainerMalenia):
    """The paper's optimizer (Sec. 4.1) instead of nnU-Net's SGD: AdamW lr 1e-4, weight decay 1e-5, 40 warm-up
    epochs (a fifth of shorter schedules), then cosine decay."""
    adamw = PAPER_ADAMW


class nnUNetTrainerMalenia_AdamW_250epochs(nnUNetTrainerMalenia_AdamW):
    schedule = GPU_250


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


class nnUNetTrainerMalenia_UnusedRowsAsNegatives(nnUNetTrainerMalenia):
    """Descriptions that only unseen diseases use stay MP-NCE negatives for every token (before issue #12 B)."""
    malenia_loss_settings = dict(nnUNetTrainerMalenia.malenia_loss_settings, unused_rows_as_negatives=True)


class nnUNetTrainerMalenia_NoOtherLesionLoss(nnUNetTrainerMalenia):
    """The paper's L_seg without loss_others (a token's mask is not scored on the other lesions of its case)."""
    malenia_loss_settings = dict(nnUNetTrainerMalenia.malenia_loss_settings, weight_others=0.0)


class nnUNetTrainerMalenia_NoLesionLoss(nnUNetTrainerMalenia):
    """Without the auxiliary deep supervision and its heads (losses/lesion_aux.py): the U-Net gets its
    gradient through the matched tokens' masks only, as in the paper."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, lesion_heads="none")


class nnUNetTrainerMalenia_NoMaskPooling(nnUNetTrainerMalenia):
    """Token embeddings from the tokens alone, as in the paper (no pixel feature pooled under the token's mask)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, mask_pooling=False)


class nnUNetTrainerMalenia_NoMaskResidual(nnUNetTrainerMalenia):
    """The fused mask is CMKI's alone, as in the paper (not a correction of the last decoder block's mask)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, mask_residual=False)


class nnUNetTrainerMalenia_NoMaskedAttention(nnUNetTrainerMalenia):
    """Every decoder block attends over the whole volume, as the paper's Eq. 1 is written (the default before
    masked attention, network/mask_decoder.py)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, masked_attention=False)


# --- settings that are off by default (measured in README, "CPU regime"; rows of bench_ablations.py) -----------------
class nnUNetTrainerMalenia_ContextLocation(nnUNetTrainerMalenia):
    """Location and organ descriptions matched against a context embedding: the decoder feature pooled in a 2-voxel
    shell around the token's mask, not the token itself (network/mask_decoder.py, ``context_ring``)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, context_ring=2)


class nnUNetTrainerMalenia_TissueContext(nnUNetTrainerMalenia_ContextLocation):
    """As ``_ContextLocation``, but the shell reads the input intensities (a soft histogram per voxel) instead of
    the decoder feature, which also sees the lesion: location can only come from the tissue around it
    (network/mask_decoder.py, ``context_source``)."""
    malenia_network_settings = dict(nnUNetTrainerMalenia_ContextLocation.malenia_network_settings,
                                    context_source="image")


class nnUNetTrainerMalenia_AspectHeads(nnUNetTrainerMalenia):
    """One text head per bank aspect: a token meets each aspect's descriptions through its own embedding instead of
    one embedding for all eight (network/mask_decoder.py, "Aspect heads")."""
    malenia_network_settings = dict(nnUNetTrainerMalenia.malenia_network_settings, aspect_heads=True)


class nnUNetTrainerMalenia_AppearanceSwap(nnUNetTrainerMalenia):
    """Half of the training lesions repainted with another disease's intensities and density texts, so location is
    read from the tissue around a lesion rather than from its look (training/appearance_swap.py)."""
    appearance_swap = 0.5


class nnUNetTrainerMalenia_AspectNegatives(nnUNetTrainerMalenia):
    """MP-NCE with aspect-wise negatives: a lesion's location description competes with the other location
    descriptions (and t0), not with every description of every aspect (losses/mp_nce.py)."""
    malenia_loss_settings = dict(nnUNetTrainerMalenia.malenia_loss_settings, aspect_negatives=True)


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives(nnUNetTrainerMalenia_AspectHeads):
    """Aspect heads trained with aspect-wise negatives: each aspect's head is contrasted against that aspect's rows
    only, so each head becomes a classifier of its aspect's values (location from where, density from how)."""
    malenia_loss_settings = nnUNetTrainerMalenia_AspectNegatives.malenia_loss_settings


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_AppearanceSwap(nnUNetTrainerMalenia_AspectHeads_AspectNegatives):
    """Aspect heads and aspect-wise negatives on counterfactual lesions: with half of the lesions repainted as another
    disease, the location head cannot read location off the lesion's look and has to read the tissue around it."""
    appearance_swap = nnUNetTrainerMalenia_AppearanceSwap.appearance_swap


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase(nnUNetTrainerMalenia_AspectHeads_AspectNegatives):
    """Aspect heads and aspect-wise negatives, with enhancement status (the scan's phase) read from one embedding of
    the whole scan (network/scan_phase.py) rather than from each lesion's look."""
    malenia_network_settings = dict(nnUNetTrainerMalenia_AspectHeads.malenia_network_settings, scan_phase=True)


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_MaskPosition(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase):
    """The scan-level phase head with location read from where each token's mask lies (network/mask_position.py)
    instead of the token's location head, which learnt location from the lesion's look."""
    malenia_network_settings = dict(nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase.malenia_network_settings,
                                    position_location=True)


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_LesionIntensity(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase):
    """The scan-level phase head with density, density variation, surface and specific features read from the
    intensities inside and around each token's mask (network/lesion_intensity.py) instead of the token's heads, which
    read them off decoder features that see the whole organ: given the organ (--location-maps), a liver cyst was
    described as a liver tumour in every appearance aspect."""
    malenia_network_settings = dict(nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase.malenia_network_settings,
                                    lesion_intensity=True)


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_AppearanceSwap(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase):
    """The scan-level phase head on counterfactual lesions: the swap moves location off the lesion's look (kidney
    stones placed in a kidney), the phase head reads enhancement from the scan (kidney stones non-contrast); each
    alone left the stones misnamed by the aspect the other one fixes."""
    appearance_swap = nnUNetTrainerMalenia_AppearanceSwap.appearance_swap


# --- the ablations on the CPU regime (benchmarks/bench_ablations.py) ------------------------------------------------
class nnUNetTrainerMalenia_SingleScaleAlignment_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_loss_settings = nnUNetTrainerMalenia_SingleScaleAlignment.malenia_loss_settings


class nnUNetTrainerMalenia_SinglePositive_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_loss_settings = nnUNetTrainerMalenia_SinglePositive.malenia_loss_settings


class nnUNetTrainerMalenia_NoFusion_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_NoFusion.malenia_network_settings


class nnUNetTrainerMalenia_MaskBranchOnly_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_MaskBranchOnly.malenia_network_settings


class nnUNetTrainerMalenia_TextBranchOnly_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_TextBranchOnly.malenia_network_settings


class nnUNetTrainerMalenia_UnusedRowsAsNegatives_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_loss_settings = nnUNetTrainerMalenia_UnusedRowsAsNegatives.malenia_loss_settings


class nnUNetTrainerMalenia_NoOtherLesionLoss_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_loss_settings = nnUNetTrainerMalenia_NoOtherLesionLoss.malenia_loss_settings


class nnUNetTrainerMalenia_NoLesionLoss_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    """The CPU regime without the lesion loss (its A/B in README, "CPU regime")."""
    malenia_network_settings = nnUNetTrainerMalenia_NoLesionLoss.malenia_network_settings


class nnUNetTrainerMalenia_NoMaskPooling_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_NoMaskPooling.malenia_network_settings


class nnUNetTrainerMalenia_NoMaskResidual_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_NoMaskResidual.malenia_network_settings


class nnUNetTrainerMalenia_NoMaskedAttention_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_NoMaskedAttention.malenia_network_settings


class nnUNetTrainerMalenia_ContextLocation_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_ContextLocation.malenia_network_settings


class nnUNetTrainerMalenia_TissueContext_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_TissueContext.malenia_network_settings


class nnUNetTrainerMalenia_AspectHeads_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_AspectHeads.malenia_network_settings


class nnUNetTrainerMalenia_AppearanceSwap_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    appearance_swap = nnUNetTrainerMalenia_AppearanceSwap.appearance_swap


class nnUNetTrainerMalenia_AspectNegatives_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_loss_settings = nnUNetTrainerMalenia_AspectNegatives.malenia_loss_settings


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_CPUDemo(nnUNetTrainerMalenia_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_AspectHeads_AspectNegatives.malenia_network_settings
    malenia_loss_settings = nnUNetTrainerMalenia_AspectHeads_AspectNegatives.malenia_loss_settings


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_AppearanceSwap_CPUDemo(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_CPUDemo):
    appearance_swap = nnUNetTrainerMalenia_AppearanceSwap.appearance_swap


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_CPUDemo(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_CPUDemo):
    malenia_network_settings = nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase.malenia_network_settings


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_MaskPosition_CPUDemo(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_CPUDemo):
    malenia_network_settings = (
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_MaskPosition.malenia_network_settings)


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_LesionIntensity_CPUDemo(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_CPUDemo):
    malenia_network_settings = (
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_LesionIntensity.malenia_network_settings)


class nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_AppearanceSwap_CPUDemo(
        nnUNetTrainerMalenia_AspectHeads_AspectNegatives_ScanPhase_CPUDemo):
    appearance_swap = nnUNetTrainerMalenia_AppearanceSwap.appearance_swap


# --- the ablations on the 250-epoch schedule (benchmark "full" profile) ---------------------------------------------
class nnUNetTrainerMalenia_SingleScaleAlignment_250epochs(nnUNetTrainerMalenia_SingleScaleAlignment):
    schedule = GPU_250


class nnUNetTrainerMalenia_SinglePositive_250epochs(nnUNetTrainerMalenia_SinglePositive):
    schedule = GPU_250


class nnUNetTrainerMalenia_NoFusion_250epochs(nnUNetTrainerMalenia_NoFusion):
    schedule = GPU_250


class nnUNetTrainerMalenia_MaskBranchOnly_250epochs(nnUNetTrainerMalenia_MaskBranchOnly):
    schedule = GPU_250


class nnUNetTrainerMalenia_TextBranchOnly_250epochs(nnUNetTrainerMalenia_TextBranchOnly):
    schedule = GPU_250


class nnUNetTrainerMalenia_UnusedRowsAsNegatives_250epochs(nnUNetTrainerMalenia_UnusedRowsAsNegatives):
    schedule = GPU_250


class nnUNetTrainerMalenia_NoOtherLesionLoss_250epochs(nnUNetTrainerMalenia_NoOtherLesionLoss):
    schedule = GPU_250


class nnUNetTrainerMalenia_NoLesionLoss_250epochs(nnUNetTrainerMalenia_NoLesionLoss):
    schedule = GPU_250


class nnUNetTrainerMalenia_NoMaskPooling_250epochs(nnUNetTrainerMalenia_NoMaskPooling):
    schedule = GPU_250


class nnUNetTrainerMalenia_NoMaskResidual_250epochs(nnUNetTrainerMalenia_NoMaskResidual):
    schedule = GPU_250


class nnUNetTrainerMalenia_NoMaskedAttention_250epochs(nnUNetTrainerMalenia_NoMaskedAttention):
    schedule = GPU_250


class nnUNetTrainerMalenia_ContextLocation_250epochs(nnUNetTrainerMalenia_ContextLocation):
    schedule = GPU_250


class nnUNetTrainerMalenia_TissueContext_250epochs(nnUNetTrainerMalenia_TissueContext):
    schedule = GPU_250


# --- a wall-clock budget instead of an epoch count (MALENIA_TIME_BUDGET_S; time_budget.py) -------------------------
class nnUNetTrainerMalenia_TimeBudget(TimeBudgetMixin, nnUNetTrainerMalenia):
    """Trains for MALENIA_TIME_BUDGET_S seconds: epochs of 25 iterations, AdamW 1e-3 with warm-up and cosine decay
    measured against the budget (benchmarks/gpu_check.py, GPU path)."""
    schedule = TIME_BUDGET
    adamw = CPU_ADAMW


class nnUNetTrainerMalenia_TimeBudget_2iters(nnUNetTrainerMalenia_TimeBudget):
    """The same with epochs of two iterations, for budgets of seconds (gpu_check.py's CPU path)."""
    schedule = TIME_BUDGET_2ITERS
