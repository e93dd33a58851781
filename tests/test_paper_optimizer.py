"""The paper's optimizer variant: AdamW with warm-up then cosine decay, stepped per epoch like nnU-Net's poly LR."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from nnunetv2_malenia.training.paper_optimizer import PAPER_LR, WarmupCosineLRScheduler, warmup_epochs_for
from nnunetv2_malenia.training.variants import nnUNetTrainerMalenia_AdamW


def test_warmup_then_cosine_values():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLRScheduler(opt, 2.0, total_epochs=50, warmup_epochs=10)
    assert [sched.lr_at(e) for e in (0, 4, 9)] == pytest.approx([0.2, 1.0, 2.0])       # linear, peak at the end
    assert sched.lr_at(10) == pytest.approx(2.0)
    assert sched.lr_at(30) == pytest.approx(1.0)                                       # half-way through the cosine
    assert sched.lr_at(49) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 39 / 40)))
    # nnU-Net steps with the epoch index (also after --c): the optimizer follows, and get_last_lr reports it
    sched.step(30)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0) and sched.get_last_lr() == [pytest.approx(1.0)]
    with pytest.raises(AssertionError, match="shorter"):
        WarmupCosineLRScheduler(opt, 1.0, total_epochs=10, warmup_epochs=10)


def test_paper_warmup_length_fits_short_schedules():
    assert warmup_epochs_for(1000) == 40 and warmup_epochs_for(250) == 40
    assert warmup_epochs_for(100) == 20 and warmup_epochs_for(5) == 1 and warmup_epochs_for(2) == 0


def test_adamw_variant_configures_the_paper_optimizer():
    trainer = SimpleNamespace(network=torch.nn.Linear(3, 2), num_epochs=250, adamw=nnUNetTrainerMalenia_AdamW.adamw)
    optimizer, scheduler = nnUNetTrainerMalenia_AdamW.configure_optimizers(trainer)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["weight_decay"] == 1e-5
    assert scheduler.warmup_epochs == 40 and scheduler.lr_at(39) == pytest.approx(PAPER_LR)


def test_cpu_regime_optimizer_and_no_augmentation():
    """The CPU regime's trainers, Malenia and plain alike: AdamW 1e-3 warming up over 8 of 80 epochs, and nnU-Net's
    validation transforms (no augmentation) for training."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_malenia.training.baselines import nnUNetTrainer_CPUDemo
    from nnunetv2_malenia.training.variants import nnUNetTrainerMalenia_CPUDemo

    for cls in (nnUNetTrainerMalenia_CPUDemo, nnUNetTrainer_CPUDemo):
        trainer = SimpleNamespace(network=torch.nn.Linear(3, 2), num_epochs=cls.schedule["num_epochs"],
                                  adamw=cls.adamw, augment=cls.augment)
        optimizer, scheduler = cls.configure_optimizers(trainer)
        assert isinstance(optimizer, torch.optim.AdamW) and scheduler.warmup_epochs == 8
        assert scheduler.lr_at(8) == pytest.approx(1e-3)
        transforms = cls.get_training_transforms(trainer, (48, 48, 48), None, None, (0, 1, 2), False)
        plain = nnUNetTrainer.get_validation_transforms(None)
        assert [type(t) for t in transforms.transforms] == [type(t) for t in plain.transforms]
