"""Lesion-attribute matching (the paper's Table 8) and disease identification from per-case lesion reports.

Each predicted lesion of a report (``REPORTS_DIR/CASE.json``, written by the zero-shot predictor; its ``id`` is the
lesion's index in ``lesion_components(predicted label map)``) is matched to the reference lesion it shares the most
voxels with (any disease; ties go to the lower reference id). Then, per aspect:

- a predicted value is a true positive when the lesion is matched and the value is among the reference values of
  that aspect for the matched lesion (the reference record of its case and label);
- precision = true-positive predicted lesions / predicted lesions that state a value for the aspect
  (unmatched predicted lesions with a value are false positives);
- recall = reference lesions hit by at least one true-positive predicted lesion / reference lesions whose record
  has the aspect (unmatched reference lesions are misses; counting reference lesions, not predictions, keeps
  recall <= 1 when a lesion is split into several predictions).

Values are compared as vocabulary keys when both sides resolve to a key (a predicted ``value`` key, or a
description whose normalised text is a vocabulary text), otherwise as normalised text (lower case, single spaces,
no trailing full stop).

Disease identification accuracy = matched predicted lesions whose top-ranked disease (highest score in
``diseases``) is the matched reference lesion's disease (its label name) / matched predicted lesions. A matched
lesion that names no disease counts as wrong.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from nnunetv2_malenia.attributes.schema import ASPECTS, Vocabulary
from nnunetv2_malenia.errors import Problem


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".").strip()


class ValueCanon:
    """Maps (aspect, key or description) to one comparable string: the vocabulary key when there is one, else the
    normalised text. Keys never contain whitespace and free text always does, so the two cannot collide."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self._key_of_norm = {(aspect, normalise_text(text)): key
                             for aspect, values in vocabulary.values.items() for key, text in values.items()}

    def __call__(self, aspect: str, key: Optional[str] = None, text: Optional[str] = None) -> Optional[str]:
        if isinstance(key, str) and key in self.vocabulary.values.get(aspect, {}):
            return key
        if isinstance(text, str) and text.strip():
            norm = normalise_text(text)
            return self._key_of_norm.get((aspect, norm), norm)
        return None

    def reference_values(self, descriptions: Mapping[str, Sequence[str]]) -> Dict[str, FrozenSet[str]]:
        """Reference description texts per aspect (as DatasetAttributes.descriptions_for gives them) -> canon sets."""
        out = {}
        for aspect, texts in descriptions.items():
            values = {self(aspect, text=t) for t in texts}
            values.discard(None)
            if aspect in ASPECTS and values:
                out[aspect] = frozenset(values)
        return out


@dataclass(frozen=True)
class ReportLesion:
    id: int
    label: int
    values: Mapping[str, Optional[str]]       # aspect -> canonical value (None: no value stated)
    top_disease: Optional[str]


def parse_report(report: Mapping, file: str, canon: ValueCanon, problems: List[Problem]) -> List[ReportLesion]:
    """Validate a lesion report (schema in evaluate.py's docstring); collects problems, returns the lesions."""
    lesions = report.get("lesions")
    if not isinstance(lesions, list):
        problems.append(Problem(file, "lesions", "missing or not a list of lesion objects"))
        return []
    scan = report.get("scan") if isinstance(report.get("scan"), dict) else {}
    out: List[ReportLesion] = []
    for i, lesion in enumerate(lesions):
        where = f"lesions[{i}]"
        if not isinstance(lesion, dict):
            problems.append(Problem(file, where, "must be an object"))
            continue
        lid, label = lesion.get("id"), lesion.get("label")
        if not isinstance(lid, int) or isinstance(lid, bool) or lid < 0:
            problems.append(Problem(file, f"{where}.id", f"must be a lesion index >= 0, got {lid!r}"))
            continue
        if not isinstance(label, int) or isinstance(label, bool):
            problems.append(Problem(file, f"{where}.label", f"must be an integer label value, got {label!r}"))
            continue
        attrs = lesion.get("attributes", {})
        if not isinstance(attrs, dict):
            problems.append(Problem(file, f"{where}.attributes", "must be an object of aspect -> value"))
            attrs = {}
        values: Dict[str, Optional[str]] = {}
        for aspect in ASPECTS:
            # the scan-level enhancement status stands in when a lesion does not repeat it
            entry = attrs.get(aspect, scan.get(aspect) if aspect == "enhancement_status" else None)
            if entry is None:
                values[aspect] = None
            elif isinstance(entry, dict):
                values[aspect] = canon(aspect, entry.get("value"), entry.get("description"))
            else:
                problems.append(Problem(file, f"{where}.attributes.{aspect}",
                                        "must be an object {value, description, score}"))
        diseases = lesion.get("diseases", [])
        top = None
        if not isinstance(diseases, list) or not all(isinstance(d, dict) and isinstance(d.get("name"), str)
                                                     for d in diseases):
            problems.append(Problem(file, f"{where}.diseases", "must be a list of {name, score} objects"))
        elif diseases:
            # the list is ranked already; taking the best score guards against an unsorted list
            top = max(enumerate(diseases), key=lambda e: (float(e[1].get("score", 0.0)), -e[0]))[1]["name"]
        out.append(ReportLesion(lid, label, values, top))
    ids = [l.id for l in out]
    if len(set(ids)) != len(ids):
        problems.append(Problem(file, "lesions", f"lesion ids repeat: {sorted(ids)}"))
    return out


def load_report(path: Path | str, canon: ValueCanon, problems: List[Problem]) -> List[ReportLesion]:
    path = Path(path)
    if not path.is_file():
        problems.append(Problem(str(path), "", "lesion report not found (one CASE.json per case in --reports)"))
        return []
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        problems.append(Problem(str(path), f"line {e.lineno} column {e.colno}", f"invalid JSON: {e.msg}"))
        return []
    if not isinstance(report, dict):
        problems.append(Problem(str(path), "", "a lesion report must be a JSON object"))
        return []
    return parse_report(report, str(path), canon, problems)


def best_reference_match(overlaps: Mapping[Tuple[int, int], int]) -> Dict[int, int]:
    """predicted id -> reference id it shares the most voxels with (ties: lower reference id)."""
    best: Dict[int, Tuple[int, int]] = {}
    for (ref, pred), n in overlaps.items():
        if pred not in best or (n, -ref) > (best[pred][0], -best[pred][1]):
            best[pred] = (n, ref)
    return {pred: ref for pred, (_, ref) in best.items()}


@dataclass
class AttributeCounts:
    """Sums over cases; ``as_dict`` turns them into Table-8 precision / recall and identification accuracy."""

    tp_predicted: Dict[str, int] = field(default_factory=lambda: {a: 0 for a in ASPECTS})
    predicted_with_value: Dict[str, int] = field(default_factory=lambda: {a: 0 for a in ASPECTS})
    tp_reference: Dict[str, int] = field(default_factory=lambda: {a: 0 for a in ASPECTS})
    reference_with_aspect: Dict[str, int] = field(default_factory=lambda: {a: 0 for a in ASPECTS})
    n_predicted: int = 0
    n_matched: int = 0
    n_identified: int = 0
    n_reference: int = 0

    def __iadd__(self, other: "AttributeCounts") -> "AttributeCounts":
        for name in ("tp_predicted", "predicted_with_value", "tp_reference", "reference_with_aspect"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for a in ASPECTS:
                mine[a] += theirs[a]
        self.n_predicted += other.n_predicted
        self.n_matched += other.n_matched
        self.n_identified += other.n_identified
        self.n_reference += other.n_reference
        return self

    def as_dict(self, with_attributes: bool = True) -> dict:
        ratio = lambda a, b: a / b if b else None
        out = {"n_predicted_lesions": self.n_predicted, "n_reference_lesions": self.n_reference,
               "n_matched_predicted_lesions": self.n_matched,
               "disease_identification": {"correct": self.n_identified, "matched": self.n_matched,
                                          "accuracy": ratio(self.n_identified, self.n_matched)}}
        if with_attributes:
            out["per_aspect"] = {a: {"tp_predicted": self.tp_predicted[a],
                                     "predicted_with_value": self.predicted_with_value[a],
                                     "precision": ratio(self.tp_predicted[a], self.predicted_with_value[a]),
                                     "tp_reference": self.tp_reference[a],
                                     "reference_with_aspect": self.reference_with_aspect[a],
                                     "recall": ratio(self.tp_reference[a], self.reference_with_aspect[a])}
                                 for a in ASPECTS}
        return out


def score_case(report_lesions: Sequence[ReportLesion], match: Mapping[int, int],
               reference: Mapping[int, Tuple[str, Mapping[str, FrozenSet[str]]]]) -> AttributeCounts:
    """Counts for one case.

    ``match``: predicted id -> reference id (best_reference_match); ``reference``: reference id -> (disease name,
    aspect -> canonical reference values) for every reference lesion of the case.
    """
    counts = AttributeCounts(n_predicted=len(report_lesions), n_reference=len(reference))
    hit: Dict[str, set] = {a: set() for a in ASPECTS}
    for lesion in report_lesions:
        ref_id = match.get(lesion.id)
        ref = reference.get(ref_id) if ref_id is not None else None
        if ref is not None:
            counts.n_matched += 1
            counts.n_identified += int(lesion.top_disease == ref[0])
        for aspect in ASPECTS:
            value = lesion.values.get(aspect)
            if value is None:
                continue
            counts.predicted_with_value[aspect] += 1
            if ref is not None and value in ref[1].get(aspect, ()):
                counts.tp_predicted[aspect] += 1
                hit[aspect].add(ref_id)
    for ref_id, (_, values) in reference.items():
        for aspect in values:
            counts.reference_with_aspect[aspect] += 1
    for aspect in ASPECTS:
        counts.tp_reference[aspect] = len(hit[aspect])
    return counts
