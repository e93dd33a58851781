"""Training schedules and optimizers as data: a variant sets ``schedule = dict(num_epochs=..., ...)`` and, to leave
nnU-Net's SGD, ``adamw = dict(lr=..., weight_decay=..., warmup_fraction=...)`` instead of overriding methods.

Malenia variants (variants.py) and the plain nnU-Net baselines of the benchmark (baselines.py) share the same
dicts, so compared arms can only differ in the method, never in epochs, iterations or optimizer.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch.optim import AdamW

from nnunetv2_malenia.training.cpu_bf16 import CPU_BF16_VARIABLE, cpu_bf16_wanted, enable_cpu_bf16
from nnunetv2_malenia.training.paper_optimizer import WarmupCosineLRScheduler
from nnunetv2_malenia.training.seeding import SEED_VARIABLE, seed_from_environment

SMOKE_2x2 = dict(num_epochs=2, num_iterations_per_epoch=2, num_val_iterations_per_epoch=1)
TESTS_5x4 = dict(num_epochs=5, num_iterations_per_epoch=4, num_val_iterations_per_epoch=2)
# The CPU regime (README "CPU regime"): 2,000 iterations of batch 2 at the 3d_cpu plan, 17-25 minutes of Malenia
# training on 2 cores with native bf16 as measured on two hosts (cpu_bf16.py; about 1.4x in fp32). Epochs of 25
# iterations give the warm-up/cosine schedule (stepped per epoch, like nnU-Net's poly schedule) 80 steps, and
# nnU-Net's validation pseudo-Dice a point every 25 iterations. 1,000 iterations (40 epochs) left every arm rising at
# the end (quick benchmark curves); seeded, same data, bf16: fold-0 validation Dice of Malenia 0.15 at 1,000, 0.33
# at 2,000 (before masked attention and the larger phantom gallbladder; 0.74 with them).
CPU_DEMO = dict(num_epochs=80, num_iterations_per_epoch=25, num_val_iterations_per_epoch=3)
# Twice the CPU regime's iterations, for users with the time (about 38 min of Malenia training on 2 cores in bf16).
CPU_LONG = dict(CPU_DEMO, num_epochs=2 * CPU_DEMO["num_epochs"])
GPU_250 = dict(num_epochs=250)
# Wall-clock budget runs (time_budget.py): num_epochs is only a cap, the budget ends the loop. Epochs of 25 iterations
# as in the CPU regime (learning-rate steps and pseudo-Dice points); the 2-iteration epochs let a budget of seconds
# end on a CPU after an epoch or two (the GPU check's CPU path in CI).
TIME_BUDGET = dict(num_epochs=1000, num_iterations_per_epoch=25, num_val_iterations_per_epoch=3)
TIME_BUDGET_2ITERS = dict(TIME_BUDGET, num_iterations_per_epoch=2, num_val_iterations_per_epoch=1)

# AdamW at 1e-3 for short schedules: on a fixed batch of two phantom cases it fits every lesion within 100-200 steps
# where nnU-Net's SGD (1e-2, momentum 0.99) needs 400-600 (issue #11, benchmarks/overfit_check.py). A tenth of the
# schedule warms up, then cosine decay to 0.
CPU_ADAMW = dict(lr=1e-3, weight_decay=1e-4, warmup_fraction=0.1)


class ScheduledTrainer(nnUNetTrainer):
    # nnU-Net schedule attributes (num_epochs, num_iterations_per_epoch, ...); empty = nnU-Net's defaults.
    schedule: Dict = {}
    # None: nnU-Net's SGD + poly decay. Else AdamW(lr, weight_decay), linear warm-up over warmup_fraction of the
    # epochs (at most warmup_epochs when given), then cosine decay to 0.
    adamw: Optional[Dict] = None
    # False: no data augmentation and no mirroring at test time (nnU-Net's nnUNetTrainerNoDA as a setting). The CPU
    # regime trains without: 1,000 iterations underfit, and with nnU-Net's augmentation Malenia's validation
    # pseudo-Dice of lung tumours stayed at 0.02-0.18 over 40 epochs where without it reached 0.45-0.59 (demo
    # phantoms, same seed of data). Mirroring also swaps left and right, upper and lower anatomy while a lesion's
    # location description ("right kidney", "upper lobe") stays as it was.
    augment: bool = True

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        for name, value in self.schedule.items():
            setattr(self, name, value)

    def initialize(self):
        # Seeded here, not in __init__: the network's weights are drawn in initialize and the training patches after
        # it (on_train_start), so nothing between the seed and them consumes random numbers.
        seed = seed_from_environment(self.local_rank)
        if seed is not None:
            self.print_to_log_file(f"{SEED_VARIABLE}={seed}: network initialisation and patch sampling seeded")
        super().initialize()
        if cpu_bf16_wanted(self.device):
            # every arm alike (the baselines train through nnU-Net's own train_step); see cpu_bf16.py
            enable_cpu_bf16(self.network)
            self.print_to_log_file(f"CPU bf16 autocast on for training ({CPU_BF16_VARIABLE}=0 trains in fp32)")

    def configure_optimizers(self):
        if self.adamw is None:
            return super().configure_optimizers()
        settings = self.adamw
        optimizer = AdamW(self.network.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
        warmup = int(self.num_epochs * settings.get("warmup_fraction", 0.0))
        if "warmup_epochs" in settings:
            warmup = min(warmup, settings["warmup_epochs"])
        return optimizer, WarmupCosineLRScheduler(optimizer, settings["lr"], self.num_epochs, warmup)

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        # nnU-Net declares this hook static and calls it through self, so an instance method overrides it
        if self.augment:
            return nnUNetTrainer.get_training_transforms(
                patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
                use_mask_for_norm, is_cascaded, foreground_labels, regions, ignore_label)
        return nnUNetTrainer.get_validation_transforms(deep_supervision_scales, is_cascaded, foreground_labels,
                                                       regions, ignore_label)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if self.augment:
            return rotation, dummy_2d, initial_patch_size, mirror_axes
        self.inference_allowed_mirroring_axes = None        # no mirroring in nnU-Net's predictor either
        return rotation, dummy_2d, self.configuration_manager.patch_size, None
