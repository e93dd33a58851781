"""nnU-Net's LocalLogger, extended with Malenia's named losses and a fourth progress-plot panel for them.

nnU-Net's LocalLogger only accepts its fixed keys and infers the epoch from the shortest list, so every named loss
is registered up front and logged exactly once per epoch, like nnU-Net's own keys.
"""
from __future__ import annotations

import os
from typing import Iterable

from nnunetv2.training.logging.nnunet_logger import LocalLogger

NAMED_LOSS_PREFIX = "malenia/"


class MaleniaLocalLogger(LocalLogger):
    def register_named_losses(self, names: Iterable[str]) -> None:
        for name in names:
            self.my_fantastic_logging.setdefault(NAMED_LOSS_PREFIX + name, [])

    def named_loss_keys(self):
        return [k for k in self.my_fantastic_logging if k.startswith(NAMED_LOSS_PREFIX)]

    def load_checkpoint(self, checkpoint: dict):
        # Older checkpoints (or ones from a different ablation) may lack some named losses: keep the registered keys.
        registered = {k: [] for k in self.named_loss_keys()}
        registered.update(checkpoint)
        self.my_fantastic_logging = registered

    def plot_progress_png(self, output_folder: str):
        import matplotlib
        matplotlib.use("agg")
        import matplotlib.pyplot as plt

        log = self.my_fantastic_logging
        epoch = min(len(v) for v in log.values()) - 1
        if epoch < 0:
            return
        x = list(range(epoch + 1))
        fig, axes = plt.subplots(4, 1, figsize=(16, 28))
        ax = axes[0]
        ax.plot(x, log["train_losses"][:epoch + 1], color="b", label="loss_tr", linewidth=3)
        ax.plot(x, log["val_losses"][:epoch + 1], color="r", label="loss_val", linewidth=3)
        ax2 = ax.twinx()
        ax2.plot(x, log["mean_fg_dice"][:epoch + 1], color="g", ls="dotted", label="pseudo dice", linewidth=2)
        ax2.plot(x, log["ema_fg_dice"][:epoch + 1], color="g", label="pseudo dice (mov. avg.)", linewidth=3)
        ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax2.set_ylabel("pseudo dice")
        ax.legend(loc="upper left"), ax2.legend(loc="upper right")

        durations = [e - s for e, s in zip(log["epoch_end_timestamps"][:epoch + 1], log["epoch_start_timestamps"])]
        axes[1].plot(x, durations, color="b", label="epoch duration", linewidth=3)
        axes[1].set_ylim(0, max(durations) * 1.1 if durations else 1)
        axes[1].set_xlabel("epoch"), axes[1].set_ylabel("time [s]"), axes[1].legend(loc="upper left")

        axes[2].plot(x, log["lrs"][:epoch + 1], color="b", label="learning rate", linewidth=3)
        axes[2].set_xlabel("epoch"), axes[2].set_ylabel("learning rate"), axes[2].legend(loc="upper left")

        # Unweighted named losses (train, mean over the epoch's iterations): which term drives training.
        for key in self.named_loss_keys():
            axes[3].plot(x, log[key][:epoch + 1], label=key[len(NAMED_LOSS_PREFIX):], linewidth=2)
        axes[3].set_xlabel("epoch"), axes[3].set_ylabel("unweighted loss"), axes[3].legend(loc="upper right")

        fig.tight_layout()
        fig.savefig(os.path.join(output_folder, "progress.png"))
        plt.close(fig)
