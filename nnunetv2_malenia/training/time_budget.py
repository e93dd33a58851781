"""Training for a fixed wall-clock budget: ``TimeBudgetMixin`` ends nnU-Net's epoch loop once the budget is spent.

The budget is read from the environment variable ``MALENIA_TIME_BUDGET_S`` (seconds), so ``nnUNetv2_train`` carries
it without a new argument (nnU-Net's trainer ``__init__`` must keep its signature):

    MALENIA_TIME_BUDGET_S=120 nnUNetv2_train 911 3d_fullres 0 -tr nnUNetTrainerMalenia_TimeBudget

What counts: the epoch loop only (training and validation iterations, nnU-Net's per-epoch checkpoint and plot), summed
from the start/end timestamps nnU-Net logs for every epoch. Imports, data loading set-up and the final validation
are outside it. The timestamps travel in the checkpoint, so ``--c`` resumes with the time already spent.

When it stops: after an epoch, when one more epoch as long as the estimate would end past the budget. The estimate is
the slowest of the last ``ESTIMATE_WINDOW`` epochs after the first: the first carries cuDNN's autotuning and the data
loader's start, and the last epoch alone was too optimistic on a busy CPU (epochs of one run vary by 10-20 %, and a
6-s budget ended at 6.02 s). So the loop stays within the budget (the first epoch always runs, however long) unless an
epoch is slower than every recent one, and ends on an epoch boundary; nnU-Net then
writes checkpoint_final and runs its validation as after any schedule. ``num_epochs`` of the schedule stays an upper
bound (a budget larger than the schedule ends at ``num_epochs``).

Learning rate: the warm-up/cosine schedule of ``ScheduledTrainer.adamw`` measured against the budget instead of the
epoch count: at each epoch start, the learning rate of WarmupCosineLRScheduler at the spent fraction of the budget
(in thousandths). The alternative, a fixed epoch count estimated from the first epoch's time, was not taken: the
first epoch carries cuDNN's autotuning and the data loader's start, so it overestimates every later epoch and the
schedule would end early. Stopped one epoch short of the budget, the last epoch runs at a few per cent of the peak.

Under DDP every rank takes rank 0's clock (an all-reduce of the spent time), so the ranks agree on the learning rate
and stop after the same epoch.
"""
from __future__ import annotations

import math
import os
from typing import Callable

import torch
from torch import distributed as dist
from torch.optim import AdamW, Optimizer

from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.training.paper_optimizer import WarmupCosineLRScheduler

TIME_BUDGET_ENV = "MALENIA_TIME_BUDGET_S"


def read_time_budget() -> float:
    value = os.environ.get(TIME_BUDGET_ENV)
    try:
        budget = float(value)
    except (TypeError, ValueError):
        budget = float("nan")
    if not (math.isfinite(budget) and budget > 0):
        raise MaleniaInputError(Problem("", f"environment variable {TIME_BUDGET_ENV}", "a time-budget trainer "
                                        f"needs the training budget in seconds (> 0) there, got {value!r}"))
    return budget


def epoch_durations(log: dict):
    """Durations of the finished epochs in nnU-Net's logger dict (an epoch in progress has no end timestamp yet)."""
    return [end - start for start, end in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"])]


ESTIMATE_WINDOW = 5


def next_epoch_estimate(durations) -> float:
    """Seconds the next epoch is expected to take: the slowest of the last ESTIMATE_WINDOW finished epochs, the first
    epoch left out once a later one has finished (start-up cost, see the module docstring)."""
    steady = durations[1:] or durations[:1]
    return max(steady[-ESTIMATE_WINDOW:])


def next_epoch_fits(spent_s: float, next_epoch_s: float, budget_s: float) -> bool:
    """Whether one more epoch of ``next_epoch_s`` seconds ends within the budget."""
    return spent_s + next_epoch_s <= budget_s


class BudgetCosineLRScheduler(WarmupCosineLRScheduler):
    """WarmupCosineLRScheduler on a clock: ``step`` ignores the epoch index and takes the spent fraction of the time
    budget, in TICKS steps: warm-up over ``warmup_fraction`` of the budget, cosine to 0 at the budget's end."""
    TICKS = 1000

    def __init__(self, optimizer: Optimizer, max_lr: float, warmup_fraction: float,
                 spent_fraction: Callable[[], float]):
        self.spent_fraction = spent_fraction
        super().__init__(optimizer, max_lr, self.TICKS, int(self.TICKS * warmup_fraction))

    def step(self, current_step=None):
        super().step(min(self.TICKS, int(self.TICKS * self.spent_fraction())))


class _BudgetSpent(Exception):
    """Raised after the last epoch's on_epoch_end to leave nnU-Net's ``for epoch in range(...)`` loop, whose bound
    is fixed when the loop starts (changing num_epochs inside it changes nothing)."""


class TimeBudgetMixin:
    """Put it first: ``class X(TimeBudgetMixin, nnUNetTrainerMalenia)``. Needs ``adamw`` settings (ScheduledTrainer)."""
    _budget_s: float = None
    _spent_s: float = 0.0

    def time_budget_s(self) -> float:
        if self._budget_s is None:
            self._budget_s = read_time_budget()
        return self._budget_s

    def _logged_spent_s(self) -> float:
        spent = sum(epoch_durations(self.logger.get_checkpoint()))
        if self.is_ddp:                          # rank 0's clock for every rank
            value = torch.tensor([spent if self.local_rank == 0 else 0.0], dtype=torch.float64, device=self.device)
            dist.all_reduce(value)
            spent = float(value.item())
        return spent

    def configure_optimizers(self):
        assert self.adamw is not None, f"{type(self).__name__}: the time budget schedules AdamW; set adamw settings"
        settings = self.adamw
        optimizer = AdamW(self.network.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
        return optimizer, BudgetCosineLRScheduler(optimizer, settings["lr"], settings.get("warmup_fraction", 0.0),
                                                  lambda: self._spent_s / self.time_budget_s())

    def on_train_start(self):
        self.time_budget_s()                     # fail before any work when the variable is missing
        super().on_train_start()
        self._spent_s = self._logged_spent_s()   # > 0 when resumed with --c
        self.print_to_log_file(f"Time budget: {self.time_budget_s():.0f} s for the epoch loop "
                               f"({self._spent_s:.0f} s spent before this run)")

    def on_epoch_end(self):
        super().on_epoch_end()                   # logs the end timestamp, saves checkpoints, current_epoch += 1
        self._spent_s = self._logged_spent_s()
        estimate = next_epoch_estimate(epoch_durations(self.logger.get_checkpoint()))
        if self.current_epoch < self.num_epochs and not next_epoch_fits(self._spent_s, estimate, self.time_budget_s()):
            self.print_to_log_file(f"Time budget spent: {self._spent_s:.0f} s of {self.time_budget_s():.0f} s "
                                   f"after {self.current_epoch} epochs (a next one would take {estimate:.1f} s)")
            self.num_epochs = self.current_epoch
            raise _BudgetSpent

    def run_training(self):
        try:
            super().run_training()
        except _BudgetSpent:
            self.on_train_end()                  # what nnU-Net's loop does after its last epoch: checkpoint_final
