"""nnU-Net's predictor, with a trained Malenia model's classes swapped for the diseases of a knowledge table.

Sliding window, Gaussian weighting, mirroring, fold ensembling, background preprocessing and export are nnU-Net's
own; only the class set changes. Each fold's state dict gets the extended bank and the disease class matrix, because
nnU-Net reloads every fold's parameters (strictly) before predicting with it.
"""
from __future__ import annotations

from os.path import join
from typing import Optional, Sequence

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from torch._dynamo import OptimizedModule

from nnunetv2_malenia.attributes.knowledge_table import KnowledgeTable, load_knowledge_table
from nnunetv2_malenia.inference.zero_shot_classes import ZeroShotClasses, zero_shot_classes
from nnunetv2_malenia.network.bank_fingerprint import bank_fingerprint
from nnunetv2_malenia.network.malenia_net import check_naming_rule
from nnunetv2_malenia.training.plans_block import MaleniaBlock, read_block

BANK_BUFFERS = ("bank_embeddings", "row_aspect", "class_row_mask", "bank_fingerprint")


class MaleniaPredictor(nnUNetPredictor):
    block: Optional[MaleniaBlock] = None
    classes: Optional[ZeroShotClasses] = None

    def initialize_from_trained_model_folder(self, model_training_output_dir: str, use_folds=None,
                                             checkpoint_name: str = "checkpoint_final.pth"):
        super().initialize_from_trained_model_folder(model_training_output_dir, use_folds, checkpoint_name)
        self.model_folder = model_training_output_dir
        self.block = read_block(self.configuration_manager.configuration, join(model_training_output_dir,
                                                                                "plans.json"))

    def training_knowledge_table(self, extra_files: Sequence[str] = ()) -> KnowledgeTable:
        """The table stored with the model, with the user's table files merged on top (same names replace)."""
        table = self.block.knowledge_table(join(self.model_folder, "plans.json"))
        if not extra_files:
            return table
        extra = load_knowledge_table(list(extra_files), include_default=False)
        return KnowledgeTable(diseases={**table.diseases, **extra.diseases}, files=table.files + extra.files)

    def stored_bank(self):
        return self.block.bank(self.list_of_parameters[0]["bank_embeddings"])

    def use_zero_shot_classes(self, classes: ZeroShotClasses) -> None:
        bank = classes.bank
        buffers = {"bank_embeddings": bank.embeddings.float(), "row_aspect": bank.aspect_index(),
                   "class_row_mask": classes.class_row_mask, "bank_fingerprint": bank_fingerprint(bank.content_hash)}
        network = self._bare_network()
        network.set_text_bank(buffers["bank_embeddings"], buffers["row_aspect"])
        network.set_class_row_mask(buffers["class_row_mask"])
        network.bank_fingerprint = buffers["bank_fingerprint"].clone()
        for params in self.list_of_parameters:
            params.update({k: v.clone() for k, v in buffers.items()})
        self.dataset_json = dict(self.dataset_json, labels=classes.labels,
                                 malenia_zero_shot={"diseases": list(classes.diseases),
                                                    "new_descriptions": [list(e) for e in classes.new_texts]})
        self.label_manager = self.plans_manager.get_label_manager(self.dataset_json)
        self.classes = classes

    def prepare_zero_shot(self, extra_tables: Sequence[str] = (), diseases: Optional[Sequence[str]] = None,
                          device: str = "cpu") -> ZeroShotClasses:
        table = self.training_knowledge_table(extra_tables)
        classes = zero_shot_classes(table, self.stored_bank(), diseases, device=device,
                                    paragraphs=bool(self.block.network.get("match_paragraphs", False)))
        self.use_zero_shot_classes(classes)
        self.knowledge_table = table
        return classes

    def _bare_network(self):
        return self.network._orig_mod if isinstance(self.network, OptimizedModule) else self.network

    def use_naming_rule(self, rule: Optional[str] = None) -> str:
        """Name diseases with ``rule`` ("best_match" or "aspect_vote"; None keeps the one the model was trained
        with, from plans.json). A plain network attribute, not a weight: load_fold's state dicts keep it, and the
        label maps and the lesion reports (same network) use the same rule. Returns the rule in use."""
        network = self._bare_network()
        if rule is not None:
            network.naming_rule = check_naming_rule(rule)
        return network.naming_rule

    def use_seen_penalty(self, penalty: float) -> None:
        """Lower the trained (seen) diseases' logits by ``penalty`` when naming (calibrated stacking, see
        ``seen_penalty_logits``); call after ``prepare_zero_shot``: the seen ones are the current classes that the
        model's plans list as its training classes."""
        network = self._bare_network()
        trained = set(self.block.classes.values())
        seen = torch.tensor([d in trained for d in self.classes.diseases], dtype=torch.bool)   # [K]
        network.set_seen_penalty(penalty, seen)

    def load_fold(self, params: dict) -> None:
        self._bare_network().load_state_dict(params)
