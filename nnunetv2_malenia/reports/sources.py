"""Where report texts come from: a folder of ``<case>.txt``, a CSV, or the annotation spreadsheet.

Each source yields ``ReportInput`` records (case id, report text, organ, disease, where it came from); bad input is
collected as ``Problem`` entries and raised together.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from nnunetv2_malenia.attributes.knowledge_table import load_knowledge_table
from nnunetv2_malenia.attributes.schema import Vocabulary, load_vocabulary
from nnunetv2_malenia.errors import MaleniaInputError, Problem, raise_if_problems


@dataclass(frozen=True)
class ReportInput:
    case: str
    report: str
    organ: Optional[str]
    disease: Optional[str]
    where: str                     # file (and row) it came from, for messages


def case_id_from_raw(raw: str) -> str:
    """Spreadsheet ids such as ``liver_3.nii`` name the image; the case id drops the extension."""
    return re.sub(r"\.nii(\.gz)?$", "", str(raw).strip())


def resolve_organ(organ: Optional[str], disease: Optional[str], file: str, where: str,
                  problems: List[Problem], vocab: Vocabulary) -> Optional[str]:
    """The organ of a report: given directly, or the knowledge-table organ of the disease."""
    if organ:
        if vocab.organ_group(organ) is None:
            problems.append(Problem(file, where, f"unknown organ {organ!r}; known organs: "
                                                 f"{', '.join(sorted(vocab.organ_groups))}"))
            return None
        return organ
    if disease:
        table = load_knowledge_table(vocabulary=vocab)
        if disease not in table:
            problems.append(Problem(file, where, f"unknown disease {disease!r}; the knowledge table has: "
                                                 f"{', '.join(table.names)}"))
            return None
        return table[disease].organ
    return None


def read_txt_folder(folder: Path, organ: Optional[str], disease: Optional[str],
                    vocab: Optional[Vocabulary] = None) -> List[ReportInput]:
    vocab = vocab or load_vocabulary()
    problems: List[Problem] = []
    files = sorted(folder.glob("*.txt"))
    if not files:
        problems.append(Problem(str(folder), "", "no <case>.txt report files in this folder"))
    organ = resolve_organ(organ, disease, str(folder), "--organ/--disease", problems, vocab)
    out = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as e:
            problems.append(Problem(str(f), "", f"not UTF-8 text: {e.reason}"))
            continue
        if not text:
            problems.append(Problem(str(f), "", "empty report"))
            continue
        out.append(ReportInput(f.stem, text, organ, disease, str(f)))
    raise_if_problems(problems)
    return out


def read_csv_reports(path: Path, case_column: str, report_column: str, organ: Optional[str],
                     disease: Optional[str], organ_column: Optional[str] = None,
                     disease_column: Optional[str] = None, vocab: Optional[Vocabulary] = None) -> List[ReportInput]:
    """One report per row; organ/disease from their columns when given, else from the flags."""
    vocab = vocab or load_vocabulary()
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
        case = (row.get(case_column) or "").strip()
        text = (row.get(report_column) or "").strip()
        if not case:
            problems.append(Problem(str(path), f"{where} column {case_column}", "empty case id"))
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
        resolved = resolve_organ(row_organ or organ, row_disease or disease, str(path), where, problems, vocab)
        out.append(ReportInput(case, text, resolved, row_disease or disease, f"{path}:{where}"))
    raise_if_problems(problems)
    return out


def read_workbook_reports(path: Path, vocab: Optional[Vocabulary] = None) -> Tuple[List[ReportInput], List[Problem]]:
    """Reports (column I) of the annotation spreadsheet, organ and disease from the sheet.

    Uses the spreadsheet importer (``nnunetv2_malenia.attributes.import_annotations``); its problems (bad codes)
    are returned, not raised, because the report text of such rows can still be parsed."""
    try:
        from nnunetv2_malenia.attributes.import_annotations import read_annotation_workbook
    except ImportError:
        raise MaleniaInputError(Problem(str(path), "", "reading the annotation spreadsheet needs "
                                        "nnunetv2_malenia.attributes.import_annotations, which this install lacks; "
                                        "export the reports as CSV instead")) from None
    rows, problems = read_annotation_workbook(path, vocabulary=vocab)
    out = []
    for r in rows:
        if r.report and str(r.report).strip():
            out.append(ReportInput(case_id_from_raw(r.raw_case_id), str(r.report).strip(), r.organ, r.disease,
                                   f"{path}: sheet {r.sheet} row {r.row}"))
    return out, list(problems)
