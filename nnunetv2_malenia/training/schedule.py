"""Training schedules as data: a variant sets ``schedule = dict(num_epochs=..., ...)`` instead of an __init__.

Malenia variants (variants.py) and the plain nnU-Net baselines of the benchmark (baselines.py) share the same
dicts, so compared arms can only differ in the method, never in epochs or iterations.
"""
from __future__ import annotations

from typing import Dict

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

SMOKE_2x2 = dict(num_epochs=2, num_iterations_per_epoch=2, num_val_iterations_per_epoch=1)
TESTS_5x4 = dict(num_epochs=5, num_iterations_per_epoch=4, num_val_iterations_per_epoch=2)
CPU_DEMO = dict(num_epochs=25, num_iterations_per_epoch=12, num_val_iterations_per_epoch=3)
GPU_250 = dict(num_epochs=250)


class ScheduledTrainer(nnUNetTrainer):
    # nnU-Net schedule attributes (num_epochs, num_iterations_per_epoch, ...); empty = nnU-Net's defaults.
    schedule: Dict = {}

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        for name, value in self.schedule.items():
            setattr(self, name, value)
