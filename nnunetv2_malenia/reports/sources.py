"""Where report texts come from: a folder of ``<case>.txt``, a CSV, or the annotation spreadsheet.

Each source yields ``ReportInput`` records (case id, report text, organ, disease, where it came from); bad input is
collected as ``Problem`` entries and raised together.

Case ids follow the spreadsheet importer's rule (``import_annotations.default_case_id``: the name without .nii/.nii.gz,
letters and a number, no spaces) unless an ``--id-mapping`` file maps them, so that what the parser writes is what
``nnUNetv2_malenia_import_annotations`` and the converters accept: ids such as ``imaging`` (KiTS's file name in every
case folder) or ``1`` (a row number) cannot tell cases apart.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, List, Mapping, Optional, Tuple

from nnunetv2_malenia.attributes.import_annotations import default_case_id, read_annotation_workbook
from nnunetv2_malenia.attributes.knowledge_table import KnowledgeTable, load_knowledge_table
from nnunetv2_malenia.attributes.schema import Vocabulary, load_vocabulary
from nnunetv2_malenia.errors import MaleniaInputError, Problem, raise_if_problems


@dataclass(frozen=True)
class ReportInput:
    case: str
    report: str
    organ: Optional[str]
    disease: Optional[str]
    where: str                     # file (and row) it came from, for messages


@dataclass(frozen=True)
class Lookup:
    """What ids, organs and diseases are checked against: the knowledge table (default + --knowledge-table files),
    organs a user table gives a report vocabulary, and the --id-mapping."""
    vocab: Vocabulary
    table: KnowledgeTable
    extra_organs: Collection[str] = ()
    id_mapping: Optional[Mapping[str, str]] = None

    @staticmethod
    def default(vocab: Optional[Vocabulary] = None) -> "Lookup":
        vocab = vocab or load_vocabulary()
        return Lookup(vocab, load_knowledge_table(vocabulary=vocab))


def case_id_from_raw(raw: str, lookup: Optional[Lookup] = None) -> Tuple[Optional[str], str]:
    """(nnU-Net case id, "") or (None, why not): the --id-mapping entry, else the importer's default rule."""
    key = str(raw).strip()
    if lookup is not None and lookup.id_mapping and key in lookup.id_mapping:
        return lookup.id_mapping[key], ""
    return default_case_id(key)


def resolve_organ(organ: Optional[str], disease: Optional[str], file: str, where: str,
                  problems: List[Problem], vocab: Vocabulary, lookup: Optional[Lookup] = None) -> Optional[str]:
    """The organ of a report: given directly, or the knowledge-table organ of the disease."""
    lookup = lookup or Lookup.default(vocab)
    if organ:
        if vocab.organ_group(organ) is None and organ not in lookup.extra_organs:
            known = sorted(set(vocab.organ_groups) | set(lookup.extra_organs))
            problems.append(Problem(file, where, f"unknown organ {organ!r}; known organs: {', '.join(known)} "
                                                 f"(others: give a --knowledge-table with a report_vocabulary)"))
            return None
        return organ
    if disease:
        table = lookup.table
        if disease not in table:
            problems.append(Problem(file, where, f"unknown disease {disease!r}; the knowledge table has: "
                                                 f"{', '.join(table.names)}"))
            return None
        return table[disease].organ
    return None


def read_txt_folder(folder: Path, organ: Optional[str], disease: Optional[str],
                    vocab: Optional[Vocabulary] = None, lookup: Optional[Lookup] = None) -> List[ReportInput]:
    vocab = vocab or load_vocabulary()
    lookup = lookup or Lookup.default(vocab)
    problems: List[Problem] = []
    files = sorted(folder.glob("*.txt"))
    if not files:
        problems.append(Problem(str(folder), "", "no <case>.txt report files in this folder"))
    organ = resolve_organ(organ, disease, str(folder), "--organ/--disease", problems, vocab, lookup)
    out = []
    for f in files:
        case, why = case_id_from_raw(f.stem, lookup)
        if case is None:
            problems.append(Problem(str(f), "file name", f"{why}; rename the file or map it with --id-mapping"))
            continue
        try:
            text = f.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as e:
            problems.append(Problem(str(f), "", f"not UTF-8 text: {e.reason}"))
            continue
        if not text:
            problems.append(Problem(str(f), "", "empty report"))
            continue
        out.append(ReportInput(case, text, organ, disease, str(f)))
    raise_if_problems(problems)
    return out


def read_csv_reports(path: Path, case_column: str, report_column: str, organ: Optional[str],
                     disease: Optional[str], organ_column: Optional[str] = None,
                     disease_column: Optional[str] = None, vocab: Optional[Vocabulary] = None,
                     lookup: Optional[Lookup] = None) -> List[ReportInput]:
    """One report per row; organ/disease from their columns when given, else from the flags."""
    vocab = vocab or load_vocabulary()
    lookup = lookup or Lookup.default(vocab)
    problems: List[Problem] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        wanted = [c for c in (case_column, report_column, organ_column, disease_column) if c]
        absent = [c for c in wanted if c not in header]
        if absent:
            raise MaleniaInputError(Problem(str(path), "header", f"missing column(s) {', '.join(absent)}; "
                                                                 f"columns are: {', '.join(header)}"))
        rows = list(reader)
    out, seen = [], {}
    for i, row in enumerate(rows, start=2):            # row 1 is the header
        where = f"row {i}"
        raw_case = (row.get(case_column) or "").strip()
        text = (row.get(report_column) or "").strip()
        case, why = case_id_from_raw(raw_case, lookup)
        if case is None:
            problems.append(Problem(str(path), f"{where} column {case_column}",
                                    f"{why}; fix the id or map it with --id-mapping"))
            continue
        if case in seen:
            problems.append(Problem(str(path), f"{where} column {case_column}",
                                    f"case {case!r} already given in row {seen[case]}"))
            continue
        seen[case] = i
        if not text:
            problems.append(Problem(str(path), f"{where} column {report_column}", "empty report"))
            continue
        row_organ = (row.get(organ_column) or "").strip() if organ_column else organ
        row_disease = (row.get(disease_column) or "").strip() if disease_column else disease
        resolved = resolve_organ(row_organ or organ, row_disease or disease, str(path), where, problems, vocab, lookup)
        out.append(ReportInput(case, text, resolved, row_disease or disease, f"{path}:{where}"))
    raise_if_problems(problems)
    return out


def read_workbook_reports(path: Path, vocab: Optional[Vocabulary] = None, lookup: Optional[Lookup] = None
                          ) -> Tuple[List[ReportInput], List[Problem]]:
    """Reports (column I) of the annotation spreadsheet, organ and disease from the sheet.

    Uses the spreadsheet importer (``nnunetv2_malenia.attributes.import_annotations``); its problems (bad codes) are
    returned, not raised, because the report text of such rows can still be parsed. Rows whose id names no case
    (``Example 1``, ``imaging.nii``, ``1``) are skipped with a problem, as the importer skips them."""
    rows, problems = read_annotation_workbook(path, vocabulary=vocab)
    problems = list(problems)
    out = []
    for r in rows:
        if r.report and str(r.report).strip():
            case, why = case_id_from_raw(r.raw_case_id, lookup)
            if case is None:
                problems.append(Problem(str(path), f"sheet {r.sheet} row {r.row} column A",
                                        f"{why}; report skipped (map it with --id-mapping)"))
                continue
            out.append(ReportInput(case, str(r.report).strip(), r.organ, r.disease,
                                   f"{path}: sheet {r.sheet} row {r.row}"))
    return out, problems
