"""Zero-shot classes: diseases of a knowledge table as output classes of a trained Malenia model.

The model folder carries the training bank (texts in plans.json, embeddings in the checkpoint). Diseases whose
descriptions are all in that bank need no text encoder; new descriptions (a user's "splenic cyst") are encoded with
the encoder the bank records, and appended as new rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from nnunetv2_malenia.attributes.knowledge_table import KnowledgeTable
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.text_bank.bank import PARAGRAPH_ASPECT, TextBank, new_bank, paragraph_text
from nnunetv2_malenia.training.bank_lookup import disease_row_mask


@dataclass(frozen=True)
class ZeroShotClasses:
    diseases: Tuple[str, ...]        # class k+1 <-> diseases[k]
    bank: TextBank                   # training rows first (same indices), then new rows
    class_row_mask: torch.Tensor     # [K, R'] bool
    new_texts: Tuple[Tuple[str, str], ...]

    @property
    def labels(self) -> dict:
        """dataset.json "labels" of the zero-shot label map."""
        return {"background": 0, **{name: k + 1 for k, name in enumerate(self.diseases)}}


def missing_rows(table: KnowledgeTable, bank: TextBank, diseases: Sequence[str],
                 paragraphs: bool = False) -> List[Tuple[str, str]]:
    """The (aspect, text) rows the diseases need that the bank lacks; with ``paragraphs`` also each disease's
    descriptions joined into one paragraph (what a single-positive model was aligned with)."""
    known = set(zip(bank.aspects, bank.texts))
    out: List[Tuple[str, str]] = []
    for name in diseases:
        needed = [(aspect, text) for aspect, texts in table[name].descriptions.items() for text in texts]
        if paragraphs:
            needed.append((PARAGRAPH_ASPECT, paragraph_text(table[name].descriptions)))
        out += [row for row in needed if row not in known and row not in out]
    return out


def zero_shot_classes(table: KnowledgeTable, bank: TextBank, diseases: Sequence[str] | None = None,
                      encoder=None, device: str = "cpu", paragraphs: bool = False) -> ZeroShotClasses:
    """``encoder``: a TextEncoder to use for new texts (default: re-created from ``bank.encoder_id`` when needed).
    ``paragraphs``: the model names classes by joined paragraphs (its plans' ``match_paragraphs``)."""
    diseases = tuple(diseases or table.names)
    unknown = [d for d in diseases if d not in table]
    if unknown:
        raise MaleniaInputError(Problem(str(table.files[-1] if table.files else "knowledge table"), "diseases",
                                        f"unknown diseases {unknown}; the table has {table.names}"))
    new = missing_rows(table, bank, diseases, paragraphs)
    if new:
        if encoder is None:
            encoder = _encoder_for_new_texts(bank, new, device)
        print(f"encoding {len(new)} description(s) not in the model's text bank with {bank.encoder_id}")
        embeddings = encoder.encode([t for _, t in new], progress=False)               # [N, D]
        if embeddings.shape[1] != bank.dim:
            raise MaleniaInputError(Problem("", "text encoder", f"{encoder.encoder_id} gives {embeddings.shape[1]}-d "
                                            f"embeddings, the model's bank is {bank.dim}-d"))
        entries = list(zip(bank.aspects, bank.texts)) + new
        bank = new_bank(entries, torch.cat([bank.embeddings, embeddings.float()]), bank.encoder_id)
    return ZeroShotClasses(diseases, bank, disease_row_mask(table, bank, diseases, paragraphs), tuple(new))


def _encoder_for_new_texts(bank: TextBank, new: Sequence[Tuple[str, str]], device: str):
    from nnunetv2_malenia.text_bank.encoder import TextEncoder

    try:
        return TextEncoder(bank.encoder_id, device=device)
    except MaleniaInputError as e:
        listed = "; ".join(f"{a}: {t!r}" for a, t in new[:10]) + (" ..." if len(new) > 10 else "")
        raise MaleniaInputError(Problem("knowledge table", "descriptions", (
            f"{len(new)} description(s) are not in the model's text bank and its encoder {bank.encoder_id!r} cannot "
            f"be loaded here ({e}). Missing: {listed}. Install the encoder, or use only descriptions the model "
            f"was trained with"))) from None
