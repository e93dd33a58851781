"""The wall-clock budget (training/time_budget.py) inside nnU-Net's own ``run_training`` loop, on a fake clock.

The hooks that need data, a network or disk are replaced by ones that advance a clock; the loop itself, the logger
and the mixin are the real ones, so the test sees how many epochs nnU-Net runs, whether on_train_end (which writes
checkpoint_final) runs exactly once, and which learning rates nnU-Net logs."""
from __future__ import annotations

import itertools

import pytest
import torch
from nnunetv2.training.logging.nnunet_logger import MetaLogger
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.training.schedule import CPU_ADAMW, ScheduledTrainer
from nnunetv2_malenia.training.time_budget import (TIME_BUDGET_ENV, BudgetCosineLRScheduler, TimeBudgetMixin,
                                                   next_epoch_estimate, next_epoch_fits, read_time_budget)


class FakeClockTrainer(nnUNetTrainer):
    """nnU-Net's run_training with the heavy hooks replaced: each epoch takes ``epoch_s[i]`` seconds of a fake clock.
    The constructor skips nnU-Net's (plans, dataset, folders)."""
    adamw = CPU_ADAMW

    def __init__(self, tmp_path, epoch_s, num_epochs=1000):
        self.logger = MetaLogger(str(tmp_path), False)
        self.current_epoch, self.num_epochs = 0, num_epochs
        self.num_iterations_per_epoch = self.num_val_iterations_per_epoch = 1
        self.is_ddp, self.local_rank, self.device = False, 0, torch.device("cpu")
        self.network = torch.nn.Linear(1, 1)
        self.dataloader_train = self.dataloader_val = itertools.repeat(None)
        self.epoch_s, self.clock, self.train_end_calls, self.lines = epoch_s, 1000.0, 0, []

    def print_to_log_file(self, *args, **kwargs):
        self.lines.append(" ".join(map(str, args)))

    def on_train_start(self):
        self.optimizer, self.lr_scheduler = self.configure_optimizers()

    def on_epoch_start(self):
        self.logger.log("epoch_start_timestamps", self.clock, self.current_epoch)

    def on_train_epoch_start(self):
        self.lr_scheduler.step(self.current_epoch)
        self.logger.log("lrs", self.optimizer.param_groups[0]["lr"], self.current_epoch)

    def train_step(self, batch):
        self.clock += self.epoch_s[min(self.current_epoch, len(self.epoch_s) - 1)]
        return {}

    def on_train_epoch_end(self, outputs):
        pass

    def on_validation_epoch_start(self):
        pass

    def validation_step(self, batch):
        return {}

    def on_validation_epoch_end(self, outputs):
        pass

    def on_epoch_end(self):
        self.logger.log("epoch_end_timestamps", self.clock, self.current_epoch)
        self.current_epoch += 1

    def on_train_end(self):
        self.train_end_calls += 1


class BudgetedFakeTrainer(TimeBudgetMixin, FakeClockTrainer):
    pass


def test_loop_stops_before_the_epoch_that_would_overrun(tmp_path, monkeypatch):
    monkeypatch.setenv(TIME_BUDGET_ENV, "95")
    trainer = BudgetedFakeTrainer(tmp_path, epoch_s=[10.0])
    trainer.run_training()
    # after 9 epochs 90 s are spent and a tenth would end at 100 s > 95 s
    assert trainer.current_epoch == trainer.num_epochs == 9
    assert trainer.train_end_calls == 1
    assert any("Time budget spent: 90 s of 95 s after 9 epochs" in line for line in trainer.lines)


def test_learning_rate_warms_up_then_decays_against_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv(TIME_BUDGET_ENV, "100")
    trainer = BudgetedFakeTrainer(tmp_path, epoch_s=[1.0])
    trainer.run_training()
    lrs = trainer.logger.get_value("lrs", step=None)
    assert len(lrs) == trainer.current_epoch == 100          # 1-s epochs fill a 100-s budget exactly
    peak = lrs.index(max(lrs))
    assert 8 <= peak <= 11 and max(lrs) == pytest.approx(CPU_ADAMW["lr"], rel=0.02)     # 10 % warm-up
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert lrs[-1] < 0.002 * CPU_ADAMW["lr"]                 # the last epoch starts at 99 % of the budget


def test_a_slow_first_epoch_does_not_end_the_run_early(tmp_path, monkeypatch):
    # a slow first epoch (warm-up) must not end the run early: 30 s, then 5-s epochs in a 60-s budget
    monkeypatch.setenv(TIME_BUDGET_ENV, "60")
    trainer = BudgetedFakeTrainer(tmp_path, epoch_s=[30.0, 5.0])
    trainer.run_training()
    assert trainer.current_epoch == 7 and trainer.train_end_calls == 1     # 30 + 6 x 5 = 60


def test_jittery_epochs_are_estimated_by_the_slowest_recent_one(tmp_path, monkeypatch):
    # 1.0 / 1.2 s alternating after a 2-s first epoch in an 8.5-s budget: 2 + 1 + 1.2 + 1 + 1.2 + 1 = 7.4 s after six
    # epochs; the last epoch alone (1.0 s) would predict 8.4 s and start a seventh that ends at 8.6 s, past the budget
    monkeypatch.setenv(TIME_BUDGET_ENV, "8.5")
    trainer = BudgetedFakeTrainer(tmp_path, epoch_s=[2.0] + [1.0, 1.2] * 10)
    trainer.run_training()
    assert trainer.current_epoch == 6
    assert sum(trainer.epoch_s[:6]) <= 8.5


def test_next_epoch_estimate():
    assert next_epoch_estimate([30.0]) == 30.0                   # only the first epoch so far
    assert next_epoch_estimate([30.0, 5.0, 6.0]) == 6.0          # the first is left out once others exist
    assert next_epoch_estimate([9.0, 3, 1, 1, 1, 1, 1]) == 1  # only the last five count


def test_a_schedule_shorter_than_the_budget_ends_at_num_epochs(tmp_path, monkeypatch):
    monkeypatch.setenv(TIME_BUDGET_ENV, "1000")
    trainer = BudgetedFakeTrainer(tmp_path, epoch_s=[1.0], num_epochs=4)
    trainer.run_training()
    assert trainer.current_epoch == 4 and trainer.train_end_calls == 1


def test_resumed_run_counts_the_time_already_spent(tmp_path, monkeypatch):
    monkeypatch.setenv(TIME_BUDGET_ENV, "50")
    first = BudgetedFakeTrainer(tmp_path, epoch_s=[10.0], num_epochs=3)
    first.run_training()                                     # 30 s spent, as after a crash at epoch 3
    resumed = BudgetedFakeTrainer(tmp_path, epoch_s=[10.0])
    resumed.logger.load_checkpoint(first.logger.get_checkpoint())
    resumed.current_epoch = first.current_epoch
    resumed.run_training()
    assert resumed.current_epoch == 5                        # two more epochs, not five


@pytest.mark.parametrize("value", [None, "", "abc", "0", "-5", "nan", "inf"])
def test_missing_or_bad_budget_is_refused_before_training(tmp_path, monkeypatch, value):
    if value is None:
        monkeypatch.delenv(TIME_BUDGET_ENV, raising=False)
    else:
        monkeypatch.setenv(TIME_BUDGET_ENV, value)
    with pytest.raises(MaleniaInputError, match=TIME_BUDGET_ENV):
        read_time_budget()
    trainer = BudgetedFakeTrainer(tmp_path, epoch_s=[1.0])
    with pytest.raises(MaleniaInputError, match=TIME_BUDGET_ENV):
        trainer.run_training()
    assert trainer.current_epoch == 0


def test_scheduler_follows_the_spent_fraction_not_the_epoch_index():
    spent = [0.0]
    optimizer = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    scheduler = BudgetCosineLRScheduler(optimizer, 1.0, 0.1, lambda: spent[0])
    lrs = {}
    for fraction in (0.0, 0.05, 0.1, 0.55, 1.0, 1.5):
        spent[0] = fraction
        scheduler.step(123)                                  # nnU-Net passes the epoch index: ignored
        lrs[fraction] = optimizer.param_groups[0]["lr"]
    assert lrs[0.0] == pytest.approx(0.01) and lrs[0.05] == pytest.approx(0.51)
    assert lrs[0.1] == pytest.approx(1.0) and lrs[0.55] == pytest.approx(0.5)
    assert lrs[1.0] == pytest.approx(0.0, abs=1e-12) and lrs[1.5] == pytest.approx(0.0, abs=1e-12)


def test_next_epoch_fits():
    assert next_epoch_fits(90, 10, 100) and not next_epoch_fits(90.5, 10, 100)


def test_time_budget_trainers_pair_up():
    from nnunetv2_malenia.training import baselines, variants

    for malenia, plain in ((variants.nnUNetTrainerMalenia_TimeBudget, baselines.nnUNetTrainer_TimeBudget),
                           (variants.nnUNetTrainerMalenia_TimeBudget_2iters,
                            baselines.nnUNetTrainer_TimeBudget_2iters)):
        assert malenia.schedule == plain.schedule and malenia.adamw == plain.adamw == CPU_ADAMW
        for cls in (malenia, plain):       # the mixin's hooks come before the trainers' own in the MRO
            for hook in ("run_training", "on_epoch_end", "configure_optimizers", "on_train_start"):
                assert getattr(cls, hook) is getattr(TimeBudgetMixin, hook), (cls, hook)
        assert issubclass(plain, ScheduledTrainer)
