"""``nnUNetv2_malenia_parse_reports``: radiology report texts -> per-case attribute entries, codes and evidence."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from nnunetv2_malenia.attributes.schema import load_vocabulary
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems, raise_if_problems
from nnunetv2_malenia.utils.cli import file_problems, make_parser
from nnunetv2_malenia.reports.extract import MISSING, ParsedReport, ReportParser
from nnunetv2_malenia.reports.sources import (ReportInput, read_csv_reports, read_txt_folder,
                                              read_workbook_reports)
from nnunetv2_malenia.reports.validate import validate_parsed
from nnunetv2_malenia.utils.atomic_io import write_json_atomic

DESCRIPTION = """Parse radiology reports into Malenia's eight attribute aspects, offline and deterministically.

Input (-i) is one of:
  * a folder of <case>.txt files (one report each); give --organ or --disease;
  * a CSV with a case id column and a report column (--case-column, --report-column); organ/disease from
    --organ-column/--disease-column or the flags;
  * the Malenia annotation spreadsheet (.xlsx): report column I, organ and disease from the sheet.

Output (-o, JSON):
  "cases":   the 'cases' section of malenia_attributes.json: case -> label -> aspect -> value keys of the aspects
             the report states (the others are left out, so the label's knowledge-table description applies);
  "reports": per case and label: every aspect's status (found / default / missing), value keys, spreadsheet codes
             (columns B-H), evidence spans (character offsets + text) and confidence, plus negated features.
Aspects not stated are reported as missing. Two spreadsheet coding conventions are applied as flagged defaults
(absent relationship -> not_close, absent shape -> irregular); --no-defaults reports them as missing instead."""


def _inputs(args, vocab) -> List[ReportInput]:
    source: Path = args.input
    if source.is_dir():
        if not (args.organ or args.disease):
            raise MaleniaInputError(Problem(str(source), "--organ/--disease", "a folder of .txt reports needs "
                                                                              "--organ or --disease"))
        return read_txt_folder(source, args.organ, args.disease, vocab)
    if source.suffix.lower() == ".csv":
        if not (args.organ or args.disease or args.organ_column or args.disease_column):
            raise MaleniaInputError(Problem(str(source), "--organ/--disease", "give --organ/--disease or "
                                                                              "--organ-column/--disease-column"))
        return read_csv_reports(source, args.case_column, args.report_column, args.organ, args.disease,
                                args.organ_column, args.disease_column, vocab)
    if source.suffix.lower() in (".xlsx", ".xlsm"):
        reports, problems = read_workbook_reports(source, vocab)
        for p in problems:
            print(f"note: {p}", file=sys.stderr)
        return reports
    if not source.exists():
        raise MaleniaInputError(Problem(str(source), "", "input not found"))
    raise MaleniaInputError(Problem(str(source), "", "expected a folder of .txt files, a .csv or an .xlsx file"))


def parse_inputs(reports: Sequence[ReportInput], label: Optional[str], coding_defaults: bool = True,
                 progress: bool = False) -> dict:
    """Parse every report; returns the output object (``cases`` + ``reports``)."""
    vocab = load_vocabulary()
    parser = ReportParser(vocab, coding_defaults=coding_defaults)
    cases: Dict[str, Dict[str, dict]] = {}
    details: Dict[str, Dict[str, dict]] = {}
    problems: List[Problem] = []
    for item in tqdm(reports, desc="parsing reports", disable=not progress):
        label_name = label or item.disease or item.organ or "lesion"
        if label_name in details.get(item.case, {}):
            problems.append(Problem(item.where, "", f"second report for case {item.case!r} label {label_name!r}"))
            continue
        parsed: ParsedReport = parser.parse(item.report, item.organ, item.case)
        record = parsed.to_json()
        # The parser's own output must pass the validator an LLM answer would have to pass.
        problems += validate_parsed(record, item.report, item.where, vocab)
        entry = parsed.attribute_entry()
        if entry:
            cases.setdefault(item.case, {})[label_name] = entry
        details.setdefault(item.case, {})[label_name] = record
    if problems:
        raise MaleniaInputError(problems)
    return {"format_version": 1, "cases": cases, "reports": details}


def _summary(result: dict) -> str:
    total = sum(len(v) for v in result["reports"].values())
    missing: Dict[str, int] = {}
    for per_label in result["reports"].values():
        for record in per_label.values():
            for aspect, r in record["aspects"].items():
                if r["status"] == MISSING:
                    missing[aspect] = missing.get(aspect, 0) + 1
    text = ", ".join(f"{a} {n}" for a, n in missing.items()) or "none"
    return f"parsed {total} report(s); aspects missing: {text}"


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = make_parser("nnUNetv2_malenia_parse_reports", DESCRIPTION)
    ap.add_argument("-i", "--input", type=Path, required=True, help="folder of <case>.txt, a .csv or the .xlsx")
    ap.add_argument("-o", "--output", type=Path, required=True, help="output JSON file")
    ap.add_argument("--organ", help="organ of every report (kidney, liver, pancreas, colon, lung, ...)")
    ap.add_argument("--disease", help="knowledge-table disease of every report (sets the organ and the label)")
    ap.add_argument("--label", help="label name (dataset.json) to file the attributes under; default: the disease, "
                                    "else the organ")
    ap.add_argument("--case-column", default="case", help="CSV column with the case id (default: %(default)s)")
    ap.add_argument("--report-column", default="report", help="CSV column with the report (default: %(default)s)")
    ap.add_argument("--organ-column", help="CSV column with each report's organ")
    ap.add_argument("--disease-column", help="CSV column with each report's disease")
    ap.add_argument("--no-defaults", action="store_true",
                    help="report absent relationship/shape statements as missing instead of the coding defaults")
    args = ap.parse_args(argv)
    try:
        # checked first: a directory or read-only -o used to fail only after every report was parsed
        raise_if_problems(file_problems(args.output, "-o"))
        vocab = load_vocabulary()
        reports = _inputs(args, vocab)
        result = parse_inputs(reports, args.label, coding_defaults=not args.no_defaults, progress=True)
        write_json_atomic(result, args.output)
    except MaleniaInputError as e:
        exit_with_problems(e)
    print(_summary(result))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
