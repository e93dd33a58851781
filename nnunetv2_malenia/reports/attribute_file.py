"""Parsed reports -> a raw dataset's ``malenia_attributes.json``: create it, or merge into the one there.

The parser's ``cases`` section is already in the attribute file's format (case -> label -> aspect -> value keys).
Merging follows ``nnUNetv2_malenia_import_annotations --merge``: parsed aspects replace the same aspects of the same
case and label, everything else (other labels, aspects, cases) is kept. A label the file does not describe yet is
added as ``{"disease": ...}``; a disease from a user knowledge table also needs the file's ``knowledge_table`` entry,
which is set when the file has none. The merged object is validated like ``nnUNetv2_malenia_check`` would before
anything is written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from nnunetv2_malenia.attributes.dataset_attributes import FORMAT_VERSION, parse_dataset_attributes
from nnunetv2_malenia.attributes.knowledge_table import KnowledgeTable, load_knowledge_table
from nnunetv2_malenia.attributes.schema import Vocabulary, read_json
from nnunetv2_malenia.errors import MaleniaInputError, Problem


def merge_parsed_cases(existing: Optional[dict], cases: Mapping[str, Mapping[str, Mapping[str, Sequence[str]]]],
                       label_diseases: Mapping[str, Optional[str]], table: KnowledgeTable, file: Path,
                       user_tables: Sequence[Path]) -> Tuple[dict, List[str]]:
    """The attribute file object with ``cases`` merged in, and the label names added to ``labels``.

    ``label_diseases``: label -> knowledge-table disease of its reports (None when only the organ was given)."""
    merged = json.loads(json.dumps(existing)) if existing else {"format_version": FORMAT_VERSION}
    labels = merged.setdefault("labels", {})
    if not isinstance(labels, dict):
        raise MaleniaInputError(Problem(str(file), "labels", "must be an object of label name -> description"))
    problems: List[Problem] = []
    added: List[str] = []
    for label, disease in label_diseases.items():
        if label in labels:
            continue
        if disease is None:
            problems.append(Problem(str(file), f"labels.{label}", "label not described in the attribute file; give "
                                    "--disease (a knowledge-table name) or describe the label in the file first"))
            continue
        labels[label] = {"disease": disease}
        added.append(label)
        _reference_user_table(merged, table, disease, file, user_tables, problems)
    raw_cases = merged.setdefault("cases", {})
    if not isinstance(raw_cases, dict):
        problems.append(Problem(str(file), "cases", "must be an object of case id -> label name -> aspects"))
    if problems:
        raise MaleniaInputError(problems)
    for case, per_label in sorted(cases.items()):
        for label, aspects in per_label.items():
            target = raw_cases.setdefault(case, {}).setdefault(label, {})
            # one value as a plain string, several as a list (the file format allows both; the importer does this)
            target.update({a: (v[0] if len(v) == 1 else list(v)) for a, v in aspects.items()})
    return merged, added


def _reference_user_table(merged: dict, table: KnowledgeTable, disease: str, file: Path, user_tables: Sequence[Path],
                          problems: List[Problem]) -> None:
    """A disease that only a user table defines is resolvable from the attribute file only through its
    ``knowledge_table`` entry (one file, relative to the attribute file)."""
    if disease in load_knowledge_table(vocabulary=None, include_default=True).names:
        return
    defining = [t for t in user_tables if disease in load_knowledge_table([t], include_default=False).names]
    source = defining[-1] if defining else None
    current = merged.get("knowledge_table")
    if source is None:
        return                                   # parse_dataset_attributes reports the unknown disease
    relative = os.path.relpath(Path(source).resolve(), Path(file).resolve().parent)
    if current is None:
        merged["knowledge_table"] = relative
    elif (Path(file).parent / current).resolve() != Path(source).resolve():
        problems.append(Problem(str(file), "knowledge_table", f"names {current!r}, but disease {disease!r} comes from "
                                f"{source}; an attribute file references one table: merge the tables first"))


def validate_attribute_object(obj: dict, file: Path, dataset_json_file: Optional[Path],
                              case_ids: Optional[Sequence[str]], vocab: Vocabulary) -> None:
    """Raise MaleniaInputError if the object would not pass ``nnUNetv2_malenia_check`` (when dataset.json is known).
    The knowledge_table entry is resolved relative to the attribute file, which need not exist yet."""
    if dataset_json_file is None or not dataset_json_file.is_file():
        return
    dataset_json = read_json(dataset_json_file, "dataset.json")
    parse_dataset_attributes(obj, dataset_json, str(file), case_ids, str(dataset_json_file), vocabulary=vocab)


def dataset_target(dataset: str) -> Tuple[Path, Path, List[str], List[str]]:
    """(attribute file, dataset.json, case ids, foreground label names) of an nnU-Net raw dataset."""
    # the importer's reader of a raw dataset: the same layout checks and the same case listing as nnU-Net's
    from nnunetv2_malenia.attributes.import_annotations import _dataset_context
    from nnunetv2_malenia.paths import DATASET_ATTRIBUTES_FILENAME

    folder, case_ids, labels = _dataset_context(dataset)
    return folder / DATASET_ATTRIBUTES_FILENAME, folder / "dataset.json", case_ids, labels


def check_against_dataset(cases: Mapping[str, Mapping[str, object]], where: Mapping[Tuple[str, str], str],
                          case_ids: Sequence[str], labels: Sequence[str], dataset_json: Path) -> None:
    """Every parsed case must be a case of imagesTr and every label a foreground label of dataset.json."""
    known = set(case_ids)
    problems: List[Problem] = []
    for case, per_label in cases.items():
        for label in per_label:
            origin = where.get((case, label), case)
            if case not in known:
                problems.append(Problem(origin, "case id", f"case {case!r} is not in the dataset's imagesTr "
                                                           f"({len(known)} cases); fix the id or use --id-mapping"))
            if label not in labels:
                problems.append(Problem(str(dataset_json), "labels", f"no foreground label {label!r} (labels: "
                                        f"{', '.join(labels) or 'none'}); name it with --label"))
    if problems:
        raise MaleniaInputError(list(dict.fromkeys(problems)))


def referenced_table(path: Optional[Path]) -> List[Path]:
    """The knowledge table an existing attribute file names (``knowledge_table``, relative to the file), as a list of
    zero or one path; a named table that does not exist is an error naming the file and field."""
    existing = existing_attribute_file(path) if path is not None else None
    name = existing.get("knowledge_table") if isinstance(existing, dict) else None
    if name is None:
        return []
    if not isinstance(name, str) or not name.strip():
        raise MaleniaInputError(Problem(str(path), "knowledge_table", f"must be a file name, got {name!r}"))
    table = Path(name) if Path(name).is_absolute() else path.parent / name
    if not table.is_file():
        raise MaleniaInputError(Problem(str(path), "knowledge_table", f"file not found: {table}"))
    return [table]


def existing_attribute_file(path: Path) -> Optional[dict]:
    return read_json(path, "dataset attribute file") if path.is_file() else None


def label_diseases(records: Mapping[Tuple[str, str], Optional[str]]) -> Dict[str, Optional[str]]:
    """label -> the disease its reports were parsed as (None if only an organ was given)."""
    out: Dict[str, Optional[str]] = {}
    for (_, label), disease in records.items():
        out[label] = out.get(label) or disease
    return out
