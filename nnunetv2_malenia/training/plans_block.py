"""The ``"malenia"`` block the trainer writes into its plans configuration.

nnU-Net's predictor rebuilds a network from ``plans.json`` alone (static ``build_network_architecture``, then a strict
``load_state_dict``). Everything Malenia needs beyond nnU-Net's own plan therefore travels in this block, which the
trainer saves into the results folder's plans.json (and so into exported zips):

* ``network``: constructor settings of :class:`MaleniaNet` (bank size R, text dim D, number of classes K, tokens ...);
  the bank embeddings and class matrix themselves are buffers in the checkpoint;
* ``bank``: the texts and aspects of the bank rows, the encoder that made them and the bank's content hash, so a
  checkpoint can be checked against it and new descriptions can be encoded with the same encoder at inference;
* ``classes``: label value -> label name of the training dataset (the classes of nnUNetv2_predict);
* ``knowledge_table``: the disease table used in training, for zero-shot prediction without the raw dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Tuple

import torch

from nnunetv2_malenia.attributes.knowledge_table import KnowledgeTable, knowledge_table_from_json, table_to_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.text_bank.bank import TextBank

BLOCK_KEY = "malenia"
BLOCK_FORMAT = 1


@dataclass(frozen=True)
class MaleniaBlock:
    network: Mapping                 # kwargs of build_malenia_network
    bank_hash: str
    encoder_id: str
    bank_texts: Tuple[str, ...]      # [R]
    bank_aspects: Tuple[str, ...]    # [R]
    classes: Mapping[int, str]       # label value (1..K) -> label name
    knowledge_table_json: Mapping

    def knowledge_table(self, source: str = "plans.json: malenia.knowledge_table") -> KnowledgeTable:
        return knowledge_table_from_json(dict(self.knowledge_table_json), source)

    def bank(self, embeddings: torch.Tensor) -> TextBank:
        """The bank rebuilt from these texts and the checkpoint's ``bank_embeddings`` buffer [R, D]."""
        return TextBank(embeddings.float().cpu(), self.bank_texts, self.bank_aspects, self.encoder_id,
                        self.bank_hash, "")


def make_block(bank: TextBank, classes: Mapping[int, str], table: KnowledgeTable, network: Mapping) -> dict:
    return {
        "format_version": BLOCK_FORMAT,
        "network": dict(network, num_bank_rows=len(bank), text_dim=bank.dim, num_classes=len(classes)),
        "bank": {"content_hash": bank.content_hash, "encoder_id": bank.encoder_id, "texts": list(bank.texts),
                 "aspects": list(bank.aspects)},
        "classes": {str(v): n for v, n in sorted(classes.items())},
        "knowledge_table": table_to_json(table),
    }


def read_block(configuration: Mapping, source: str) -> MaleniaBlock:
    """Parse the block of a plans configuration dict; ``source`` names the file in error messages."""
    raw = configuration.get(BLOCK_KEY)
    if not isinstance(raw, dict):
        raise MaleniaInputError(Problem(source, BLOCK_KEY, "no Malenia block in this plans configuration: the model "
                                        "was not trained with nnUNetTrainerMalenia (or plans.json was replaced)"))
    problems = []
    for key in ("network", "bank", "classes", "knowledge_table"):
        if not isinstance(raw.get(key), dict):
            problems.append(Problem(source, f"{BLOCK_KEY}.{key}", "missing or not an object"))
    if raw.get("format_version") != BLOCK_FORMAT:
        problems.append(Problem(source, f"{BLOCK_KEY}.format_version",
                                f"unsupported {raw.get('format_version')!r}; this package reads {BLOCK_FORMAT}"))
    if problems:
        raise MaleniaInputError(problems)
    bank = raw["bank"]
    for key in ("content_hash", "encoder_id", "texts", "aspects"):
        if key not in bank:
            problems.append(Problem(source, f"{BLOCK_KEY}.bank.{key}", "missing"))
    if not problems and not (len(bank["texts"]) == len(bank["aspects"]) == raw["network"].get("num_bank_rows")):
        problems.append(Problem(source, f"{BLOCK_KEY}.bank", f"{len(bank['texts'])} texts, {len(bank['aspects'])} "
                                f"aspects, network.num_bank_rows={raw['network'].get('num_bank_rows')}: must agree"))
    if problems:
        raise MaleniaInputError(problems)
    classes: Dict[int, str] = {int(v): n for v, n in raw["classes"].items()}
    return MaleniaBlock(network=raw["network"], bank_hash=bank["content_hash"], encoder_id=bank["encoder_id"],
                        bank_texts=tuple(bank["texts"]), bank_aspects=tuple(bank["aspects"]), classes=classes,
                        knowledge_table_json=raw["knowledge_table"])
