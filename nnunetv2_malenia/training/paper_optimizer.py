"""The paper's optimizer (Sec. 4.1): AdamW, lr 1e-4, weight decay 1e-5, linear warm-up then cosine decay.

nnUNetTrainerMalenia keeps nnU-Net's SGD (lr 1e-2, Nesterov momentum 0.99, poly decay), the schedule nnU-Net's U-Net
is tuned for; ``nnUNetTrainerMalenia_AdamW`` (variants.py) switches to this one. Like nnU-Net's PolyLRScheduler the
schedule is stepped once per epoch with the epoch index, so ``--c`` resumes at the right learning rate.
"""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler

PAPER_LR = 1e-4
PAPER_WEIGHT_DECAY = 1e-5
PAPER_WARMUP_EPOCHS = 40
# As ScheduledTrainer.adamw data: the 40 warm-up epochs become a fifth of a schedule shorter than 200 epochs.
PAPER_ADAMW = dict(lr=PAPER_LR, weight_decay=PAPER_WEIGHT_DECAY, warmup_fraction=0.2,
                   warmup_epochs=PAPER_WARMUP_EPOCHS)


class WarmupCosineLRScheduler(_LRScheduler):
    """lr(e) = max_lr (e + 1) / warmup for e < warmup, then max_lr 0.5 (1 + cos(pi (e - warmup) / (total - warmup)))."""

    def __init__(self, optimizer: Optimizer, max_lr: float, total_epochs: int, warmup_epochs: int,
                 current_step: int = None):
        assert 0 <= warmup_epochs < total_epochs, f"warm-up {warmup_epochs} must be shorter than {total_epochs} epochs"
        self.max_lr, self.total_epochs, self.warmup_epochs = max_lr, total_epochs, warmup_epochs
        self.ctr = 0
        super().__init__(optimizer, current_step if current_step is not None else -1)

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.max_lr * (epoch + 1) / self.warmup_epochs
        progress = (epoch - self.warmup_epochs) / (self.total_epochs - self.warmup_epochs)
        return self.max_lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def step(self, current_step=None):
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(current_step)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return self._last_lr


def warmup_epochs_for(num_epochs: int) -> int:
    """The paper's 40 warm-up epochs, shortened to a fifth of a schedule shorter than 200 epochs."""
    return min(PAPER_WARMUP_EPOCHS, num_epochs // 5)
