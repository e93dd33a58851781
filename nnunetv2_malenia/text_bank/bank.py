"""The stored text bank: one L2-normalised embedding per distinct (aspect, description) row, plus its sidecar."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, List, Mapping, Sequence, Tuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nnunetv2_malenia import __version__
from nnunetv2_malenia.attributes.schema import ASPECTS, ORGAN_ASPECT
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.utils.atomic_io import atomic_path, write_json_atomic

# "paragraph" rows embed a lesion's eight descriptions joined into one text (single-positive ablation only).
PARAGRAPH_ASPECT = "paragraph"
BANK_ASPECTS = ASPECTS + (ORGAN_ASPECT, PARAGRAPH_ASPECT)
EMBEDDINGS_FILENAME = "malenia_text_bank.safetensors"
SIDECAR_FILENAME = "malenia_text_bank.json"
_TENSOR_KEY = "embeddings"


def paragraph_text(aspect_texts: Mapping[str, Sequence[str]]) -> str:
    """The eight aspects in ASPECTS order, each aspect's texts joined by '; ', aspects by '. '."""
    parts = ["; ".join(aspect_texts.get(aspect, ())) for aspect in ASPECTS]
    return ". ".join(p for p in parts if p)


def content_hash(entries: Iterable[Tuple[str, str]], encoder_id: str) -> str:
    """sha256 over the ordered (aspect, text) rows and the encoder: any change means the bank must be rebuilt."""
    payload = json.dumps({"encoder_id": encoder_id, "entries": [list(e) for e in entries]}, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TextBank:
    embeddings: torch.Tensor   # [R, D] float32, L2-normalised
    texts: Tuple[str, ...]     # len R
    aspects: Tuple[str, ...]   # len R, each in BANK_ASPECTS
    encoder_id: str
    content_hash: str
    package_version: str

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.texts)

    def aspect_index(self) -> torch.Tensor:
        """[R] long: each row's aspect as an index into BANK_ASPECTS."""
        return torch.tensor([BANK_ASPECTS.index(a) for a in self.aspects], dtype=torch.long)

    def _lookup(self) -> Mapping[Tuple[str, str], int]:
        # Frozen dataclass: cache the index on first use without making it a field.
        cached = self.__dict__.get("_row_of")
        if cached is None:
            cached = {(a, t): i for i, (a, t) in enumerate(zip(self.aspects, self.texts))}
            object.__setattr__(self, "_row_of", cached)
        return cached

    def row(self, aspect: str, text: str) -> int:
        try:
            return self._lookup()[(aspect, text)]
        except KeyError:
            raise KeyError(f"text bank has no {aspect!r} row for {text!r}; rebuild it with "
                           f"nnUNetv2_malenia_build_bank") from None

    def rows_for(self, aspect_texts: Mapping[str, Sequence[str]]) -> List[int]:
        """Row indices of every (aspect, text), aspects in the mapping's order."""
        return [self.row(aspect, text) for aspect, texts in aspect_texts.items() for text in texts]


def save_bank(bank: TextBank, folder: Path | str) -> None:
    folder = Path(folder)
    with atomic_path(folder / EMBEDDINGS_FILENAME) as tmp:
        save_file({_TENSOR_KEY: bank.embeddings.float().contiguous()}, str(tmp))
    write_json_atomic({
        "texts": list(bank.texts), "aspects": list(bank.aspects), "encoder_id": bank.encoder_id, "dim": bank.dim,
        "content_hash": bank.content_hash, "package_version": bank.package_version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, folder / SIDECAR_FILENAME)


def load_bank(folder: Path | str, expected_hash: str | None = None) -> TextBank:
    """Load and cross-check tensor and sidecar; every mismatch is reported with the file and field."""
    folder = Path(folder)
    tensor_file, sidecar_file = folder / EMBEDDINGS_FILENAME, folder / SIDECAR_FILENAME
    missing = [Problem(str(f), "", "text bank file not found; run nnUNetv2_malenia_build_bank DATASET")
               for f in (tensor_file, sidecar_file) if not f.is_file()]
    if missing:
        raise MaleniaInputError(missing)
    try:
        meta = json.loads(sidecar_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MaleniaInputError(Problem(str(sidecar_file), f"line {e.lineno}", f"not valid JSON: {e.msg}")) from None
    sf = str(sidecar_file)
    problems: List[Problem] = []
    for key in ("texts", "aspects", "encoder_id", "dim", "content_hash", "package_version"):
        if key not in meta:
            problems.append(Problem(sf, key, "missing field"))
    if problems:
        raise MaleniaInputError(problems)
    try:
        embeddings = load_file(str(tensor_file)).get(_TENSOR_KEY)
    except (SafetensorError, OSError, ValueError) as e:       # truncated or overwritten file
        raise MaleniaInputError(Problem(str(tensor_file), "", f"cannot be read as safetensors "
                                                              f"({type(e).__name__}: {e})")) from None
    if embeddings is None or embeddings.ndim != 2:
        raise MaleniaInputError(Problem(str(tensor_file), _TENSOR_KEY, "expected one 2-D tensor named 'embeddings'"))
    texts, aspects = tuple(meta["texts"]), tuple(meta["aspects"])
    rows = embeddings.shape[0]
    if len(texts) != rows:
        problems.append(Problem(sf, "texts", f"{len(texts)} texts but {rows} embedding rows in {tensor_file.name}"))
    if len(aspects) != rows:
        problems.append(Problem(sf, "aspects", f"{len(aspects)} aspects but {rows} embedding rows"))
    unknown = sorted(set(aspects) - set(BANK_ASPECTS))
    if unknown:
        problems.append(Problem(sf, "aspects", f"unknown aspects {unknown}; expected {list(BANK_ASPECTS)}"))
    if meta["dim"] != embeddings.shape[1]:
        problems.append(Problem(sf, "dim", f"{meta['dim']} but embeddings have {embeddings.shape[1]} columns"))
    recomputed = content_hash(zip(aspects, texts), meta["encoder_id"])
    if meta["content_hash"] != recomputed:
        problems.append(Problem(sf, "content_hash", "does not match the stored texts and encoder; rebuild the bank"))
    if expected_hash is not None and meta["content_hash"] != expected_hash:
        problems.append(Problem(sf, "content_hash", "bank is stale (attribute texts or encoder changed); rebuild "
                                                   "with nnUNetv2_malenia_build_bank DATASET"))
    if problems:
        raise MaleniaInputError(problems)
    return TextBank(embeddings.float(), texts, aspects, meta["encoder_id"], meta["content_hash"],
                    meta["package_version"])


def new_bank(entries: Sequence[Tuple[str, str]], embeddings: torch.Tensor, encoder_id: str) -> TextBank:
    return TextBank(embeddings, tuple(t for _, t in entries), tuple(a for a, _ in entries), encoder_id,
                    content_hash(entries, encoder_id), __version__)
