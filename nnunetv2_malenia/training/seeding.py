"""Seeded training runs: ``MALENIA_SEED=0 nnUNetv2_train ...`` starts every arm of a comparison from the same network
initialisation and the same sequence of sampled patches.

nnU-Net sets no seed, so two runs of one trainer differ in both; on the CPU regime's 1,000 iterations that spread
alone moved fold-0 validation Dice by more than some settings under test did. Runs are repeatable on the CPU with
``nnUNet_n_proc_DA=0`` (single-threaded augmentation, as the demo and benchmark run): nnU-Net seeds its augmentation
worker processes from the operating system, and CUDA kernels are not all deterministic.
"""
from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch

from nnunetv2_malenia.errors import MaleniaInputError, Problem

SEED_VARIABLE = "MALENIA_SEED"


def seed_from_environment(rank: int = 0) -> Optional[int]:
    """Seeds torch, numpy and random from ``MALENIA_SEED`` and returns the seed; None (nothing seeded) when unset.

    torch gets the same seed on every DDP rank (DDP broadcasts rank 0's weights anyway); numpy and random, which
    draw the training patches, get ``seed + rank`` so that ranks still sample different cases."""
    value = os.environ.get(SEED_VARIABLE, "").strip()
    if not value:
        return None
    try:
        seed = int(value)
    except ValueError:
        raise MaleniaInputError(Problem("environment", SEED_VARIABLE, f"must be an integer, got {value!r}")) from None
    if seed < 0:
        raise MaleniaInputError(Problem("environment", SEED_VARIABLE, f"must be 0 or larger, got {seed}"))
    torch.manual_seed(seed)
    np.random.seed(seed + rank)
    random.seed(seed + rank)
    return seed
