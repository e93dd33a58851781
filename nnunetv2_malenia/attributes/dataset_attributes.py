"""The dataset attribute file, ``malenia_attributes.json``, next to an nnU-Net raw dataset's dataset.json.

Format (keys in ``labels`` and ``cases.<case>`` are label names of dataset.json)::

    {
      "format_version": 1,
      "knowledge_table": "my_diseases.json",            # optional, relative to this file; extends the default
      "labels": {
        "kidney cyst":  {"disease": "kidney cyst"},      # lesion label described by a knowledge-table disease
        "odd lesion":   {"organ": "spleen",              # lesion label described inline (all eight aspects)
                         "attributes": {"location": "spleen", "shape": "round_like", ...}},
        "liver":        {"organ": "liver",               # non-lesion label: an organ with its own description
                         "description": "normal liver parenchyma"}
      },
      "cases": {                                         # optional per-case, per-lesion descriptions
        "case_00000": {"kidney tumor": {"density": "hyperdense", "location": "right_kidney"}}
      }
    }

Per-case aspects replace the label's aspects for that case; aspects a case leaves out fall back to the label.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from nnunetv2_malenia.attributes.knowledge_table import (KnowledgeTable, load_knowledge_table, parse_aspect_map,
                                                         parse_disease)
from nnunetv2_malenia.attributes.schema import ORGAN_ASPECT, Vocabulary, load_vocabulary, read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.paths import DATASET_ATTRIBUTES_FILENAME

FORMAT_VERSION = 1
AspectTexts = Mapping[str, Tuple[str, ...]]


@dataclass(frozen=True)
class LabelAttributes:
    name: str                      # label name in dataset.json
    value: int                     # label value in the segmentation
    is_lesion: bool
    organ: str
    disease: Optional[str]         # knowledge-table disease, None for inline lesions and organs
    descriptions: AspectTexts      # lesion: the eight aspects; organ: {ORGAN_ASPECT: (description,)}


@dataclass(frozen=True)
class DatasetAttributes:
    file: str
    labels: Mapping[str, LabelAttributes]                          # label name -> attributes
    cases: Mapping[str, Mapping[str, AspectTexts]]                 # case -> label name -> aspect -> texts
    knowledge_table: KnowledgeTable
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def lesion_labels(self) -> List[LabelAttributes]:
        return [la for la in self.labels.values() if la.is_lesion]

    def label_by_value(self, value: int) -> LabelAttributes:
        for la in self.labels.values():
            if la.value == value:
                return la
        raise KeyError(value)

    def descriptions_for(self, case_id: Optional[str], label_name: str) -> AspectTexts:
        """What a lesion of ``label_name`` in ``case_id`` looks like: per-case aspects over the label's."""
        base = dict(self.labels[label_name].descriptions)
        if case_id is not None:
            base.update(self.cases.get(case_id, {}).get(label_name, {}))
        return base

    def all_descriptions(self) -> List[Tuple[str, str]]:
        """Every distinct (aspect, text): knowledge table first, then labels, then per-case texts."""
        out, seen = [], set()

        def add(aspect: str, text: str) -> None:
            if (aspect, text) not in seen:
                seen.add((aspect, text))
                out.append((aspect, text))

        for aspect, text in self.knowledge_table.descriptions():
            add(aspect, text)
        groups: List[AspectTexts] = [la.descriptions for la in self.labels.values()]
        groups += [texts for per_case in self.cases.values() for texts in per_case.values()]
        for group in groups:
            for aspect, texts in group.items():
                for text in texts:
                    add(aspect, text)
        return out


TOP_LEVEL_KEYS = ("format_version", "knowledge_table", "labels", "cases", "about")
LABEL_ENTRY_KEYS = ("disease", "attributes", "description", "organ", "paper_split", "source")


def unknown_key_problems(raw: dict, file: str) -> List[Problem]:
    """A typo such as "case" for "cases" or "atributes" next to "disease" would otherwise drop data silently.
    Keys starting with "_" are comments."""
    problems = [Problem(file, key, f"unknown top-level key; known keys: {', '.join(TOP_LEVEL_KEYS)}")
                for key in raw if key not in TOP_LEVEL_KEYS and not str(key).startswith("_")]
    labels = raw.get("labels")
    if isinstance(labels, dict):
        for name, entry in labels.items():
            if isinstance(entry, dict):
                problems += [Problem(file, f"labels.{name}.{key}", f"unknown key in a label entry; known keys: "
                                                                   f"{', '.join(LABEL_ENTRY_KEYS)}")
                             for key in entry if key not in LABEL_ENTRY_KEYS and not str(key).startswith("_")]
    return problems


def foreground_labels(dataset_json: Mapping, file: str, problems: List[Problem]) -> Dict[str, int]:
    """dataset.json's foreground labels as {name: value}; malformed entries become problems, not exceptions."""
    labels = dataset_json.get("labels")
    if not isinstance(labels, dict):
        problems.append(Problem(file, "labels", "dataset.json has no 'labels' object"))
        return {}
    out = {}
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            problems.append(Problem(file, f"labels.{name}", "region-based labels are not supported by Malenia"))
        elif isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, str) and value.isdigit()):
            problems.append(Problem(file, f"labels.{name}", f"label value must be an integer, got {value!r}"))
        elif name != "background" and int(value) != 0:
            out[name] = int(value)
    return out


def parse_dataset_attributes(raw: dict, dataset_json: Mapping, file: str, case_ids: Optional[Iterable[str]] = None,
                             dataset_json_file: str = "dataset.json",
                             vocabulary: Vocabulary | None = None) -> DatasetAttributes:
    """Validate a dataset attribute object against dataset.json (and the case list when given)."""
    vocab = vocabulary or load_vocabulary()
    problems: List[Problem] = unknown_key_problems(raw, file)
    version = raw.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        problems.append(Problem(file, "format_version", f"unsupported version {version!r}; expected {FORMAT_VERSION}"))
    table_file = raw.get("knowledge_table")
    extra = []
    if table_file is not None:
        path = Path(table_file) if Path(table_file).is_absolute() else Path(file).parent / table_file
        if not path.is_file():
            problems.append(Problem(file, "knowledge_table", f"file not found: {path}"))
        else:
            extra = [path]
    try:
        table = load_knowledge_table(extra, vocabulary=vocab)
    except MaleniaInputError as e:
        problems.extend(e.problems)
        table = load_knowledge_table(vocabulary=vocab)

    fg = foreground_labels(dataset_json, dataset_json_file, problems)
    entries = raw.get("labels")
    if not isinstance(entries, dict):
        problems.append(Problem(file, "labels", "missing or not an object of label name -> description"))
        entries = {}
    labels: Dict[str, LabelAttributes] = {}
    for name in fg:
        if name not in entries:
            problems.append(Problem(file, f"labels.{name}", f"label {name!r} of dataset.json is not described"))
    for name, entry in entries.items():
        where = f"labels.{name}"
        if name not in fg:
            problems.append(Problem(file, where, f"no foreground label {name!r} in dataset.json "
                                                 f"(labels: {', '.join(fg) or 'none'})"))
            continue
        la = _parse_label(name, fg[name], entry, table, vocab, file, where, problems)
        if la is not None:
            labels[name] = la

    cases: Dict[str, Dict[str, AspectTexts]] = {}
    known_cases = set(case_ids) if case_ids is not None else None
    raw_cases = raw.get("cases", {})
    if not isinstance(raw_cases, dict):
        problems.append(Problem(file, "cases", "must be an object of case id -> label name -> aspects"))
        raw_cases = {}
    for case, per_label in raw_cases.items():
        if known_cases is not None and case not in known_cases:
            problems.append(Problem(file, f"cases.{case}", "no such case in imagesTr/labelsTr"))
            continue
        if not isinstance(per_label, dict):
            problems.append(Problem(file, f"cases.{case}", "must be an object of label name -> aspects"))
            continue
        for name, attrs in per_label.items():
            where = f"cases.{case}.{name}"
            if name not in fg:
                problems.append(Problem(file, where, f"no foreground label {name!r} in dataset.json"))
                continue
            if name in labels and not labels[name].is_lesion:
                problems.append(Problem(file, where, f"{name!r} is an organ label; per-case attributes are for lesions"))
                continue
            if not isinstance(attrs, dict):
                problems.append(Problem(file, where, "must be an object of aspect -> descriptions"))
                continue
            texts, _ = parse_aspect_map(attrs, vocab, file, where, problems, require_all=False)
            cases.setdefault(case, {})[name] = texts
    if problems:
        raise MaleniaInputError(problems)
    return DatasetAttributes(file=file, labels=labels, cases=cases, knowledge_table=table, raw=raw)


def _parse_label(name: str, value: int, entry, table: KnowledgeTable, vocab: Vocabulary, file: str, where: str,
                 problems: List[Problem]) -> Optional[LabelAttributes]:
    if not isinstance(entry, dict):
        problems.append(Problem(file, where, "must be an object with 'disease', 'attributes' or 'description'"))
        return None
    kinds = [k for k in ("disease", "attributes", "description") if k in entry]
    if len(kinds) != 1:
        problems.append(Problem(file, where, "give exactly one of 'disease' (knowledge-table name), 'attributes' "
                                             f"(inline lesion) or 'description' (organ label); found {kinds or 'none'}"))
        return None
    if "disease" in entry:
        disease = entry["disease"]
        if disease not in table:
            problems.append(Problem(file, f"{where}.disease", f"unknown disease {disease!r}; the knowledge table has: "
                                                              f"{', '.join(table.names)}"))
            return None
        d = table[disease]
        return LabelAttributes(name, value, True, d.organ, disease, d.descriptions)
    if "attributes" in entry:
        d = parse_disease(name, entry, vocab, file, where, problems)
        if d is None:
            return None
        return LabelAttributes(name, value, True, d.organ, None, d.descriptions)
    text = entry["description"]
    organ = entry.get("organ", name)
    if not isinstance(text, str) or not text.strip():
        problems.append(Problem(file, f"{where}.description", "must be a non-empty string"))
        return None
    return LabelAttributes(name, value, False, organ, None, {ORGAN_ASPECT: (text.strip(),)})


def list_raw_cases(raw_folder: Path, dataset_json: Mapping) -> List[str]:
    """Case identifiers of imagesTr, as nnU-Net itself lists them."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    if "dataTr" not in dataset_json:
        # nnU-Net needs these to list cases; report them here instead of letting a KeyError escape from nnU-Net
        missing = [f for f in ("file_ending",) if f not in dataset_json]
        if missing:
            raise MaleniaInputError(Problem(str(raw_folder / "dataset.json"), missing[0], "required field missing"))
        if not (raw_folder / "imagesTr").is_dir():
            raise MaleniaInputError(Problem(str(raw_folder / "imagesTr"), "", "folder not found"))
    return sorted(get_filenames_of_train_images_and_targets(str(raw_folder), dict(dataset_json)).keys())


def load_dataset_attributes(raw_folder: Path | str, check_cases: bool = True) -> DatasetAttributes:
    """Read and validate ``malenia_attributes.json`` of an nnU-Net raw dataset folder."""
    raw_folder = Path(raw_folder)
    dj_file = raw_folder / "dataset.json"
    dataset_json = read_json(dj_file, "dataset.json")
    attr_file = raw_folder / DATASET_ATTRIBUTES_FILENAME
    if not attr_file.is_file():
        raise MaleniaInputError(Problem(str(attr_file), "", "dataset attribute file not found; create it (see "
                                        "README.md) or import annotations with nnUNetv2_malenia_import_annotations"))
    raw = read_json(attr_file, "dataset attribute file")
    case_ids = list_raw_cases(raw_folder, dataset_json) if check_cases else None
    return parse_dataset_attributes(raw, dataset_json, str(attr_file), case_ids, str(dj_file))
