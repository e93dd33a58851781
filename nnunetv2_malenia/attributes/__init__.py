"""Attribute schema, clinical knowledge table and per-dataset attribute files."""
from nnunetv2_malenia.attributes.schema import ASPECTS, ORGAN_ASPECT, Vocabulary, load_vocabulary
from nnunetv2_malenia.attributes.knowledge_table import Disease, KnowledgeTable, load_knowledge_table
from nnunetv2_malenia.attributes.dataset_attributes import (DatasetAttributes, LabelAttributes,
                                                            load_dataset_attributes)

__all__ = ["ASPECTS", "ORGAN_ASPECT", "Vocabulary", "load_vocabulary", "Disease", "KnowledgeTable",
           "load_knowledge_table", "DatasetAttributes", "LabelAttributes", "load_dataset_attributes"]
