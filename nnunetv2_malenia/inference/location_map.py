"""Lesion location from an organ map given with each scan (``nnUNetv2_malenia_predict --location-maps DIR``).

Why: diseases of one organ share most of their look, and diseases of different organs share it too: of the phantom
benchmark's unseen diseases, a liver cyst looks like the seen kidney cysts, a kidney stone like the seen gallstones.
Where a lesion lies is then what names it, and tokens trained on one seen disease per organ encode which seen disease
a lesion resembles, not its location apart from it (README, Limitations). An organ segmentation of the scan (an organ
segmenter's output, or the phantoms' own ``locationsTs``) says where a lesion is without asking the tokens. Not in
the paper, where the tokens alone read location; an extra input, so the benchmark reports naming with and without
it.

Folder format: one label map ``CASE{file_ending}`` per input case, on its image's grid, and ``locations.json``::

    {"format_version": 1, "labels": {"liver_right_lobe": 12, "kidney": 3, ...}}

name -> label value in the maps; a name is a location key of the vocabulary (aspects.json, e.g. a liver lobe) or an
organ of the knowledge table (e.g. "kidney", for maps without sub-regions); 0 and values not listed = no location.

Naming: a lesion's location shares are the fractions of its voxels with a location that lie in each location; the
evidence for disease k is the share of those in a location k accepts (one of its location keys, or its organ). The
tokens' disease scores p_k (the network's naming rule) become p_k (e_k + floor) / sum_j p_j (e_j + floor): a
disease whose organ holds none of the lesion keeps ``floor`` of its score, so an organ map that misses a lesion at an
organ's edge leaves the naming to the tokens instead of forbidding a disease.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from nnunetv2_malenia.attributes.knowledge_table import Disease, KnowledgeTable
from nnunetv2_malenia.errors import MaleniaInputError, Problem, raise_if_problems

LOCATIONS_FILENAME = "locations.json"
LOCATIONS_FORMAT = 1
# The share of its score a disease keeps when none of the lesion lies where it occurs. Set a priori, not fitted on
# any test set: low enough that a map's organ outweighs the tokens' seen-disease bias (their top disease scored
# 0.9 against 0.05 for the right one on unseen lesions), high enough that a map's error is not a veto.
DEFAULT_LOCATION_FLOOR = 0.01


@dataclass(frozen=True)
class LocationMaps:
    folder: Path
    names: Mapping[int, str]           # label value -> location key or organ
    files: Mapping[str, Path]          # case -> its map

    def read(self, case: str) -> np.ndarray:
        """The case's map as an int array in array axis order ([Z, Y, X] for 3D), as the label maps are read."""
        import SimpleITK as sitk

        return sitk.GetArrayFromImage(sitk.ReadImage(str(self.files[case]))).astype(np.int64)


def write_location_names(folder: Path, names: Sequence[str]) -> None:
    """``folder/locations.json`` for maps whose label value i + 1 is ``names[i]``."""
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic

    write_json_atomic({"format_version": LOCATIONS_FORMAT, "labels": {n: i + 1 for i, n in enumerate(names)}},
                      Path(folder) / LOCATIONS_FILENAME)


def read_location_names(folder: Path, allowed: Sequence[str]) -> Dict[int, str]:
    """label value -> name from ``folder/locations.json``; MaleniaInputError naming the file and field otherwise."""
    from nnunetv2_malenia.attributes.schema import read_json

    file = Path(folder) / LOCATIONS_FILENAME
    if not file.is_file():
        raise MaleniaInputError(Problem(str(file), "", f"not found: a --location-maps folder needs "
                                                       f"{LOCATIONS_FILENAME} (location name -> label value)"))
    raw = read_json(file, "location map labels")
    if raw.get("format_version") != LOCATIONS_FORMAT:
        raise MaleniaInputError(Problem(str(file), "format_version", f"unsupported {raw.get('format_version')!r}; "
                                                                     f"this package reads {LOCATIONS_FORMAT}"))
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise MaleniaInputError(Problem(str(file), "labels", "missing, empty or not an object of name -> label value"))
    problems, names = [], {}
    for name, value in labels.items():
        if name not in allowed:
            problems.append(Problem(str(file), f"labels.{name}", f"unknown location; use a location key of the "
                                                                 f"vocabulary or an organ: {', '.join(allowed)}"))
        elif not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            problems.append(Problem(str(file), f"labels.{name}", f"label value must be an integer > 0, got {value!r}"))
        elif value in names:
            problems.append(Problem(str(file), f"labels.{name}", f"label value {value} is also {names[value]!r}"))
        else:
            names[value] = name
    raise_if_problems(problems)
    return names


def read_location_maps(folder: str, cases: Mapping[str, List[str]], file_ending: str,
                       allowed: Sequence[str]) -> LocationMaps:
    """Check a --location-maps folder against the input cases (a map per case, on its first image's grid, with
    label values locations.json declares) before any prediction starts."""
    from nnunetv2_malenia.inference.predict import given_label_maps

    names = read_location_names(Path(folder), allowed)

    def undeclared(file: Path, array: np.ndarray) -> List[Problem]:
        unknown = sorted(set(np.unique(array).tolist()) - set(names) - {0})
        return [Problem(str(file), "label values", f"{unknown[:10]} not in {Path(folder) / LOCATIONS_FILENAME}")] \
            if unknown else []

    files = given_label_maps(cases, folder, file_ending, "--location-maps", undeclared)
    return LocationMaps(Path(folder), names, files)


def location_shares(values: np.ndarray, names: Mapping[int, str]) -> Dict[str, float]:
    """Map values under one lesion [n] -> location name -> share of the lesion's voxels that have a location
    (descending); empty when none has."""
    labels, counts = np.unique(values[np.isin(values, list(names))], return_counts=True)
    total = counts.sum()
    order = np.argsort(-counts, kind="stable")
    return {names[int(labels[i])]: float(counts[i] / total) for i in order}


def location_evidence(shares: Mapping[str, float], diseases: Sequence[Disease]) -> np.ndarray:
    """[K]: per disease, the share of the lesion lying in a location it accepts (a location key or its organ)."""
    def accepts(disease: Disease, name: str) -> bool:
        return name == disease.organ or name in disease.value_keys.get("location", ())

    return np.array([sum(s for name, s in shares.items() if accepts(d, name)) for d in diseases], dtype=np.float64)


def name_with_location(disease_scores: np.ndarray, evidence: np.ndarray, floor: float) -> np.ndarray:
    """[K] token scores, [K] location evidence -> [K] scores summing to 1: p_k (e_k + floor), renormalised."""
    weighted = np.asarray(disease_scores, dtype=np.float64) * (np.asarray(evidence) + floor)
    total = weighted.sum()
    return weighted / total if total > 0 else np.asarray(disease_scores, dtype=np.float64)


def rank_by_location(ranked: Sequence[Tuple[str, float]], values: np.ndarray, names: Mapping[int, str],
                     table: KnowledgeTable, floor: float) -> Tuple[List[Tuple[str, float]], Dict[str, float]]:
    """A lesion's diseases ranked by the tokens [(name, score)], re-ranked with the location map's values under the
    lesion [n] -> (new ranking, the lesion's location shares). No location under the lesion: the ranking stays."""
    shares = location_shares(values, names)
    if not shares:
        return list(ranked), shares
    diseases = [n for n, _ in ranked]
    evidence = location_evidence(shares, [table[n] for n in diseases])                   # [K]
    scores = name_with_location(np.array([v for _, v in ranked]), evidence, floor)       # [K]
    order = np.argsort(-scores, kind="stable")
    return [(diseases[i], float(scores[i])) for i in order], shares
