"""Evaluation: Dice / NSD per disease, lesion detection, lesion-attribute matching (``nnUNetv2_malenia_evaluate``)."""
from nnunetv2_malenia.evaluation.lesions import (LesionComponent, component_index_map, lesion_components,
                                                 overlap_counts)
from nnunetv2_malenia.evaluation.metrics import dice, surface_dice

__all__ = ["LesionComponent", "component_index_map", "lesion_components", "overlap_counts", "dice", "surface_dice",
           "evaluate_folders"]


def __getattr__(name):
    # evaluate.py pulls in the knowledge table and tqdm; the predictor only needs lesion_components
    if name == "evaluate_folders":
        from nnunetv2_malenia.evaluation.evaluate import evaluate_folders

        return evaluate_folders
    raise AttributeError(name)
