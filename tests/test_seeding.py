"""MALENIA_SEED: seeded runs start from the same weights and draw the same patches; bad values are named."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_malenia.errors import MaleniaInputError
from nnunetv2_malenia.training.cpu_bf16 import CPU_BF16_VARIABLE
from nnunetv2_malenia.training.schedule import ScheduledTrainer
from nnunetv2_malenia.training.seeding import SEED_VARIABLE, seed_from_environment


def _draws():
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)]


def test_same_seed_same_draws_and_ranks_sample_apart(monkeypatch):
    monkeypatch.setenv(SEED_VARIABLE, "7")
    assert seed_from_environment() == 7
    first = _draws()
    seed_from_environment()
    assert _draws() == first
    seed_from_environment(rank=1)
    torch_draw, numpy_draw, python_draw = _draws()
    assert torch_draw == first[0]            # same weights on every DDP rank
    assert numpy_draw != first[1] and python_draw != first[2]      # different patches per rank


def test_unset_seeds_nothing(monkeypatch):
    monkeypatch.delenv(SEED_VARIABLE, raising=False)
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    assert seed_from_environment() is None
    assert torch.equal(torch.rand(2), expected)


@pytest.mark.parametrize("value", ["zero", "1.5", "-1"])
def test_bad_seed_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(SEED_VARIABLE, value)
    with pytest.raises(MaleniaInputError, match=f"environment: {SEED_VARIABLE}: .*{value}"):
        seed_from_environment()


def test_trainer_seeds_before_nnunet_builds_the_network(monkeypatch):
    """ScheduledTrainer.initialize seeds, then nnU-Net's initialize draws the weights: two runs draw the same."""
    drawn = []
    monkeypatch.setattr(nnUNetTrainer, "initialize", lambda self: drawn.append(torch.rand(3).tolist()))
    monkeypatch.setenv(SEED_VARIABLE, "11")
    logged = []
    trainer = ScheduledTrainer.__new__(ScheduledTrainer)     # the hook alone; no plans needed
    trainer.local_rank = 0
    trainer.device = torch.device("cpu")
    monkeypatch.setenv(CPU_BF16_VARIABLE, "0")                 # no network here for the bf16 hook to wrap
    trainer.print_to_log_file = lambda *args, **kwargs: logged.append(" ".join(map(str, args)))
    for _ in range(2):
        torch.rand(5)                                         # whatever ran before does not matter
        trainer.initialize()
    assert drawn[0] == drawn[1]
    assert logged and f"{SEED_VARIABLE}=11" in logged[0]
