"""From (case, label) to bank rows: the glue between dataset attributes and the stored text bank.

The criterion wants, per lesion, a multi-hot row over the bank (its positives); the network wants, per output
class, the rows that class accepts. Both are computed here once and cached, so target building per batch is a
dictionary lookup plus connected components.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from nnunetv2_malenia.attributes.dataset_attributes import DatasetAttributes
from nnunetv2_malenia.attributes.knowledge_table import KnowledgeTable
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.text_bank.bank import PARAGRAPH_ASPECT, TextBank, paragraph_text


class BankLookup:
    def __init__(self, attributes: DatasetAttributes, bank: TextBank):
        self.attributes = attributes
        self.bank = bank
        self._label_names = {la.value: la.name for la in attributes.labels.values()}
        self._cache: Dict[Tuple[Optional[str], int], Tuple[List[int], Optional[int]]] = {}

    @property
    def lesion_label_values(self) -> List[int]:
        return sorted(la.value for la in self.attributes.labels.values() if la.is_lesion)

    def _rows(self, case_id: Optional[str], label_value: int) -> Tuple[List[int], Optional[int]]:
        key = (case_id, label_value)
        if key not in self._cache:
            name = self._label_names[label_value]
            texts = self.attributes.descriptions_for(case_id, name)
            try:
                rows = self.bank.rows_for(texts)
            except KeyError as e:
                raise MaleniaInputError(Problem(self.attributes.file, f"cases.{case_id}.{name}",
                                                f"description not in the text bank ({e}); rebuild it with "
                                                f"nnUNetv2_malenia_build_bank --force")) from None
            paragraph = None
            if self.attributes.labels[name].is_lesion:
                paragraph = self.bank.row(PARAGRAPH_ASPECT, paragraph_text(texts))
            self._cache[key] = (rows, paragraph)
        return self._cache[key]

    def positive_rows(self, case_id: Optional[str], label_value: int) -> List[int]:
        """Bank rows of every description of this lesion: per-case where given, else the label's."""
        return self._rows(case_id, label_value)[0]

    def paragraph_row(self, case_id: Optional[str], label_value: int) -> Optional[int]:
        """The single joined-paragraph row (single-positive ablation); None for organ labels."""
        return self._rows(case_id, label_value)[1]

    def class_row_mask(self, num_classes: int) -> torch.Tensor:
        """[K, R] bool for the dataset's foreground labels 1..K: label descriptions plus every per-case text
        seen for that label, so a token matching a report-derived description still names the right class; and
        their joined paragraphs, which only a single-positive model names by (``match_paragraphs``)."""
        mask = torch.zeros(num_classes, len(self.bank), dtype=torch.bool)
        for la in self.attributes.labels.values():
            cases = [c for c, per in self.attributes.cases.items() if la.name in per]
            for case_id in [None, *cases]:
                rows, paragraph = self._rows(case_id, la.value)
                mask[la.value - 1, rows] = True
                if paragraph is not None:
                    mask[la.value - 1, paragraph] = True
        return mask

    def training_rows(self) -> torch.Tensor:
        """[R] bool: the rows a training label or case uses (its descriptions and their joined paragraph). The other
        rows describe only knowledge-table diseases absent from the training data, i.e. the unseen ones."""
        used = torch.zeros(len(self.bank), dtype=torch.bool)
        for la in self.attributes.labels.values():
            cases = [c for c, per in self.attributes.cases.items() if la.name in per]
            for case_id in [None, *cases]:
                rows, paragraph = self._rows(case_id, la.value)
                used[rows] = True
                if paragraph is not None:
                    used[paragraph] = True
        return used


def disease_row_mask(table: KnowledgeTable, bank: TextBank, diseases: Sequence[str],
                     paragraphs: bool = False) -> torch.Tensor:
    """[K, R] bool for zero-shot classes given by knowledge-table diseases (every description must be in the bank;
    with ``paragraphs`` also each disease's descriptions joined into one paragraph, for single-positive models)."""
    mask = torch.zeros(len(diseases), len(bank), dtype=torch.bool)
    for k, name in enumerate(diseases):
        mask[k, bank.rows_for(table[name].descriptions)] = True
        if paragraphs:
            mask[k, bank.row(PARAGRAPH_ASPECT, paragraph_text(table[name].descriptions))] = True
    return mask
