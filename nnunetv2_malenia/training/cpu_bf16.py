"""bfloat16 autocast for training on a CPU that computes bf16 natively (AMX or AVX512-BF16).

nnU-Net autocasts on CUDA only: on most CPUs bf16 is emulated and slower than fp32. On CPUs with AMX tiles or
AVX512-BF16 (Intel Xeon since Cooper Lake / Sapphire Rapids, AMD Zen 4) oneDNN runs the convolutions and matmuls in
bf16 at about twice the fp32 speed: fwd+bwd of the 3d_cpu U-Net on a batch of two 48^3 patches 0.44 s -> 0.21 s on
2 cores of an Intel Xeon with AMX (README, "CPU regime"). Weights, optimizer state, losses and gradients stay fp32;
only the network's forward runs under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and its outputs are cast back
to fp32, so every loss (nnU-Net's and Malenia's) sees what it saw before.

The environment variable ``MALENIA_CPU_BF16`` chooses: ``auto`` (default: on where the CPU has native bf16), ``1``
(on, even where emulated: slow) or ``0`` (off: fp32, the numbers of a CPU without bf16). Only CPU training is
affected, the trainer's own final validation included (it runs the training network); ``nnUNetv2_predict`` and
``nnUNetv2_malenia_predict`` build a fresh network and run it in fp32.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

import torch

from nnunetv2_malenia.errors import MaleniaInputError, Problem

CPU_BF16_VARIABLE = "MALENIA_CPU_BF16"
_CHOICES = {"auto": None, "1": True, "on": True, "0": False, "off": False}


def cpu_has_native_bf16() -> bool:
    """AMX tiles or AVX512-BF16, as torch's CPU capability probes report them (private helpers: absent -> False)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def cpu_bf16_wanted(device: torch.device) -> bool:
    """Whether training on ``device`` autocasts to bf16 (module docstring); never on a GPU."""
    if device.type != "cpu":
        return False
    value = os.environ.get(CPU_BF16_VARIABLE, "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise MaleniaInputError(Problem("environment", CPU_BF16_VARIABLE,
                                        f"must be one of {', '.join(_CHOICES)}; got {value!r}"))
    forced = _CHOICES[value]
    return cpu_has_native_bf16() if forced is None else forced


def cpu_training_precision() -> str:
    """What CPU training runs in here, for hardware lines of results: "bf16 autocast" or "fp32"."""
    return "bf16 autocast" if cpu_bf16_wanted(torch.device("cpu")) else "fp32"


def to_fp32(value: Any) -> Any:
    """bf16 tensors -> fp32, through dicts, lists and tuples (network outputs); everything else unchanged."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype == torch.bfloat16 else value
    if isinstance(value, dict):
        return {k: to_fp32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_fp32(v) for v in value)
    return value


def bf16_forward(forward: Callable) -> Callable:
    """``forward`` run under CPU bf16 autocast, its outputs returned in fp32."""
    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(*args, **kwargs)
        return to_fp32(out)
    return wrapped


def enable_cpu_bf16(network: torch.nn.Module) -> None:
    """Run ``network``'s forward under CPU bf16 autocast from now on (an instance attribute: the class, the
    state dict and networks built later, e.g. by the predictor, are untouched)."""
    network.forward = bf16_forward(network.forward)
