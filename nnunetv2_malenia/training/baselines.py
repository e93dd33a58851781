"""Plain nnU-Net trainers on the Malenia variants' schedules, for the benchmark's baseline arms.

The GPU schedule needs no class here: nnU-Net's own ``nnUNetTrainer_250epochs`` matches
``nnUNetTrainerMalenia_250epochs`` (both change ``num_epochs`` only).
"""
from __future__ import annotations

from nnunetv2_malenia.training.schedule import (CPU_ADAMW, CPU_DEMO, CPU_LONG, SMOKE_2x2, TESTS_5x4, TIME_BUDGET,
                                                TIME_BUDGET_2ITERS, ScheduledTrainer)
from nnunetv2_malenia.training.time_budget import TimeBudgetMixin


class nnUNetTrainer_2epochs_2iters(ScheduledTrainer):
    """Matches nnUNetTrainerMalenia_2epochs_2iters (benchmark smoke profile)."""
    schedule = SMOKE_2x2


class nnUNetTrainer_5epochs_4iters(ScheduledTrainer):
    """Matches nnUNetTrainerMalenia_5epochs_4iters."""
    schedule = TESTS_5x4


class nnUNetTrainer_CPUDemo(ScheduledTrainer):
    """Matches nnUNetTrainerMalenia_CPUDemo (schedule and optimizer)."""
    schedule = CPU_DEMO
    adamw = CPU_ADAMW
    augment = False             # see ScheduledTrainer.augment


class nnUNetTrainer_CPULong(nnUNetTrainer_CPUDemo):
    """Matches nnUNetTrainerMalenia_CPULong (twice the CPU regime's iterations)."""
    schedule = CPU_LONG


class nnUNetTrainer_TimeBudget(TimeBudgetMixin, ScheduledTrainer):
    """Matches nnUNetTrainerMalenia_TimeBudget (MALENIA_TIME_BUDGET_S seconds, same epochs and optimizer)."""
    schedule = TIME_BUDGET
    adamw = CPU_ADAMW


class nnUNetTrainer_TimeBudget_2iters(nnUNetTrainer_TimeBudget):
    """Matches nnUNetTrainerMalenia_TimeBudget_2iters."""
    schedule = TIME_BUDGET_2ITERS
