"""The text bank's content hash as a checkpoint buffer, checked whenever a state dict is loaded.

plans.json records which bank a model was trained with; the checkpoint carries the bank's embeddings. Storing the
hash digest [32] uint8 beside them lets a strict ``load_state_dict`` refuse a checkpoint from another training (or a
bank rebuilt after an attribute edit) with a message instead of silently mixing the two.
"""
from __future__ import annotations

import torch

FINGERPRINT_KEY = "bank_fingerprint"


def bank_fingerprint(content_hash: str) -> torch.Tensor:
    """sha256 hex digest (64 chars) -> [32] uint8."""
    if not content_hash:
        return torch.zeros(32, dtype=torch.uint8)
    return torch.tensor(list(bytes.fromhex(content_hash)), dtype=torch.uint8)


def fingerprint_hex(fingerprint: torch.Tensor) -> str:
    return bytes(fingerprint.cpu().tolist()).hex()


class BankFingerprintCheck:
    """load_state_dict pre-hook for a module owning a ``bank_fingerprint`` buffer."""

    def __call__(self, module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        incoming = state_dict.get(prefix + FINGERPRINT_KEY)
        own = getattr(module, FINGERPRINT_KEY)
        if incoming is None or own is None or not own.any():
            return        # missing keys are reported by the strict load itself; an all-zero own print = unchecked
        if not torch.equal(incoming.to(own.device), own):
            raise RuntimeError(
                f"checkpoint text bank {fingerprint_hex(incoming)[:12]} does not match the bank recorded in "
                f"plans.json ({fingerprint_hex(own)[:12]}): the checkpoint and plans.json come from different "
                f"trainings, or the bank was rebuilt after malenia_attributes.json / the knowledge table / the "
                f"encoder changed. Use the plans.json of the checkpoint's results folder or retrain.")


def attach_bank_fingerprint(network: torch.nn.Module, content_hash: str) -> torch.nn.Module:
    """Give ``network`` a persistent ``bank_fingerprint`` buffer and check it on every state-dict load."""
    network.register_buffer(FINGERPRINT_KEY, bank_fingerprint(content_hash))
    network.register_load_state_dict_pre_hook(BankFingerprintCheck())
    return network
