"""Lesions as connected components, and lesion-level detection counts.

``lesion_components`` defines lesion ids for the whole plugin: the zero-shot predictor numbers the lesions of its
reports with it, and the evaluation finds them again in the predicted label map with the same call.

Detection criterion: a reference lesion is *detected* when at least one voxel of it is covered by a predicted
lesion of the same disease, and a predicted lesion is *correct* when it covers at least one voxel of a reference
lesion of that disease. We chose any overlap (>= 1 voxel) over an IoU threshold because many lesions here are a few
voxels across (phantom cysts and stones, small metastases), where a one-voxel boundary shift already costs IoU 0.1
and would turn a found lesion into a miss; segmentation quality is what Dice/NSD measure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class LesionComponent:
    id: int                        # position in lesion_components' output = the report's lesion "id"
    label: int                     # label value of the component in the label map
    num_voxels: int
    slices: Tuple[slice, ...]      # bounding box in array index order
    mask: np.ndarray               # bool, shape of the bounding box: the component's voxels inside it


def lesion_components(label_map: np.ndarray, labels: Optional[Iterable[int]] = None) -> List[LesionComponent]:
    """Connected components of every foreground label (or of ``labels`` only), as the plugin's lesion list.

    Order: by label value, then by ``scipy.ndimage.label``'s order (first voxel in C order). Connectivity is full
    (26-neighbourhood in 3D, 8 in 2D): a lesion touching itself only across a corner is still one lesion, as a
    reader would count it.
    """
    label_map = np.asarray(label_map)
    present = [int(v) for v in np.unique(label_map) if v != 0]
    wanted = present if labels is None else sorted({int(v) for v in labels} & set(present))
    structure = ndimage.generate_binary_structure(label_map.ndim, label_map.ndim)
    components: List[LesionComponent] = []
    for value in wanted:
        labelled, n = ndimage.label(label_map == value, structure=structure)
        for k, box in enumerate(ndimage.find_objects(labelled), start=1):
            mask = labelled[box] == k
            components.append(LesionComponent(len(components), value, int(mask.sum()), box, mask))
    return components


def component_index_map(shape: Sequence[int], components: Sequence[LesionComponent]) -> np.ndarray:
    """int32 map: 0 = no lesion, ``id + 1`` inside lesion ``id``."""
    index = np.zeros(tuple(shape), dtype=np.int32)
    for c in components:
        index[c.slices][c.mask] = c.id + 1
    return index


def overlap_counts(reference_index: np.ndarray, prediction_index: np.ndarray) -> Dict[Tuple[int, int], int]:
    """``{(reference id, predicted id): shared voxels}`` for every overlapping pair of components."""
    both = (reference_index > 0) & (prediction_index > 0)
    if not both.any():
        return {}
    n_pred = int(prediction_index.max()) + 1
    pair_codes = reference_index[both].astype(np.int64) * n_pred + prediction_index[both]
    codes, counts = np.unique(pair_codes, return_counts=True)
    return {(int(c // n_pred) - 1, int(c % n_pred) - 1): int(n) for c, n in zip(codes, counts)}


@dataclass
class DetectionCounts:
    n_reference: int = 0           # reference lesions
    n_predicted: int = 0           # predicted lesions
    reference_detected: int = 0    # reference lesions touched by a predicted lesion
    predicted_correct: int = 0     # predicted lesions touching a reference lesion

    def __iadd__(self, other: "DetectionCounts") -> "DetectionCounts":
        self.n_reference += other.n_reference
        self.n_predicted += other.n_predicted
        self.reference_detected += other.reference_detected
        self.predicted_correct += other.predicted_correct
        return self

    def as_dict(self) -> dict:
        p, r, f1 = precision_recall_f1(self)
        return {"n_reference": self.n_reference, "n_predicted": self.n_predicted,
                "reference_detected": self.reference_detected, "predicted_correct": self.predicted_correct,
                "precision": p, "recall": r, "f1": f1}


def detection_counts(reference_ids: Sequence[int], predicted_ids: Sequence[int],
                     overlaps: Dict[Tuple[int, int], int]) -> DetectionCounts:
    """Counts for one disease: its reference lesion ids, its predicted lesion ids, all component overlaps."""
    ref, pred = set(reference_ids), set(predicted_ids)
    pairs = [(r, p) for (r, p) in overlaps if r in ref and p in pred]
    return DetectionCounts(len(ref), len(pred), len({r for r, _ in pairs}), len({p for _, p in pairs}))


def precision_recall_f1(c: DetectionCounts) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """Precision = correct / predicted, recall = detected / reference, F1 = their harmonic mean.

    Undefined ratios are None: precision without predicted lesions, recall without reference lesions. F1 is 0 when
    exactly one side has lesions (all misses, or all false alarms) and None when neither has any.
    """
    precision = c.predicted_correct / c.n_predicted if c.n_predicted else None
    recall = c.reference_detected / c.n_reference if c.n_reference else None
    if precision is None and recall is None:
        f1 = None
    elif precision is None or recall is None:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1
