"""``nnUNetv2_malenia_parse_reports``: radiology report texts -> per-case attribute entries, codes and evidence."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from nnunetv2_malenia.attributes.import_annotations import read_id_mapping
from nnunetv2_malenia.attributes.knowledge_table import load_knowledge_table
from nnunetv2_malenia.attributes.schema import load_vocabulary
from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems, raise_if_problems
from nnunetv2_malenia.reports import attribute_file
from nnunetv2_malenia.utils.cli import file_problems, make_parser
from nnunetv2_malenia.reports.extract import MISSING, ParsedReport, ReportParser
from nnunetv2_malenia.reports.organ_vocabulary import OrganVocabulary, load_organ_vocabularies
from nnunetv2_malenia.reports.sources import (Lookup, ReportInput, read_csv_reports, read_txt_folder,
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
(absent relationship -> not_close, absent shape -> irregular); --no-defaults reports them as missing instead.

Case ids: the file name / id column without .nii(.gz), with letters and a number (the spreadsheet importer's rule);
others (``imaging``, ``1``) are errors for .txt/.csv input and skipped rows for the spreadsheet, unless --id-mapping
maps them.

Straight into a raw dataset (-d DATASET, or --attributes FILE): the "cases" are merged into its
malenia_attributes.json (created if absent): parsed aspects replace the same aspects of the same case and label,
the rest of the file is kept, a new label is described by its --disease, and every case id and label is checked
against imagesTr and dataset.json first. Nothing is written if anything is wrong.

User diseases: --knowledge-table FILE adds diseases (same format as attribute_tables/knowledge_table.json); an entry
may carry "report_vocabulary": {"like": "<known organ group>", "location": {"<value>": ["<regex>", ...]}} for an
organ the parser does not know (see nnunetv2_malenia/reports/organ_vocabulary.py). With -d/--attributes, the table
the attribute file already names is loaded first. Walk-through: docs/report_parser.md."""


def _inputs(args, vocab, lookup: Lookup) -> List[ReportInput]:
    source: Path = args.input
    if source.is_dir():
        if not (args.organ or args.disease):
            raise MaleniaInputError(Problem(str(source), "--organ/--disease", "a folder of .txt reports needs "
                                                                              "--organ or --disease"))
        return read_txt_folder(source, args.organ, args.disease, vocab, lookup)
    if source.suffix.lower() == ".csv":
        if not (args.organ or args.disease or args.organ_column or args.disease_column):
            raise MaleniaInputError(Problem(str(source), "--organ/--disease", "give --organ/--disease or "
                                                                              "--organ-column/--disease-column"))
        return read_csv_reports(source, args.case_column, args.report_column, args.organ, args.disease,
                                args.organ_column, args.disease_column, vocab, lookup)
    if source.suffix.lower() in (".xlsx", ".xlsm"):
        reports, problems = read_workbook_reports(source, vocab, lookup)
        for p in problems:
            print(f"note: {p}", file=sys.stderr)
        return reports
    if not source.exists():
        raise MaleniaInputError(Problem(str(source), "", "input not found"))
    raise MaleniaInputError(Problem(str(source), "", "expected a folder of .txt files, a .csv or an .xlsx file"))


def parse_inputs(reports: Sequence[ReportInput], label: Optional[str], coding_defaults: bool = True,
                 progress: bool = False, organ_vocabularies: Optional[Dict[str, OrganVocabulary]] = None) -> dict:
    """Parse every report; returns the output object (``cases`` + ``reports``)."""
    vocab = load_vocabulary()
    organ_vocabularies = organ_vocabularies or {}
    parser = ReportParser(vocab, coding_defaults=coding_defaults, organ_vocabularies=organ_vocabularies)
    extra_locations = {"location": [v for ov in organ_vocabularies.values() for v in ov.location_values]}
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
        problems += validate_parsed(record, item.report, item.where, vocab, extra_locations)
        entry = parsed.attribute_entry()
        if entry:
            cases.setdefault(item.case, {})[label_name] = entry
        details.setdefault(item.case, {})[label_name] = record
        record["source"] = item.where
        record["disease"] = item.disease
    if problems:
        raise MaleniaInputError(problems)
    return {"format_version": 1, "cases": cases, "reports": details}


def write_attributes(result: dict, target: Path, dataset_json: Optional[Path], case_ids: Optional[List[str]],
                     labels: Optional[List[str]], table, user_tables: List[Path], vocab) -> List[str]:
    """Merge the parsed cases into the attribute file ``target`` (created if absent), validated before writing.
    Returns the labels added to its labels section."""
    origin = {(case, label): rec["source"] for case, per in result["reports"].items() for label, rec in per.items()}
    if case_ids is not None:
        attribute_file.check_against_dataset(result["cases"], origin, case_ids, labels or [], dataset_json)
    diseases = attribute_file.label_diseases({(case, label): rec["disease"] for case, per in result["reports"].items()
                                              for label, rec in per.items()})
    merged, added = attribute_file.merge_parsed_cases(attribute_file.existing_attribute_file(target),
                                                      result["cases"], diseases, table, target, user_tables)
    attribute_file.validate_attribute_object(merged, target, dataset_json, case_ids, vocab)
    write_json_atomic(merged, target)
    return added


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
    ap.add_argument("-o", "--output", type=Path, help="output JSON file (cases, per-report details); optional with "
                                                       "-d/--attributes")
    ap.add_argument("-d", dest="dataset", metavar="DATASET_NAME_OR_ID",
                    help="nnU-Net raw dataset: merge the parsed cases into its malenia_attributes.json (created if "
                         "absent), after checking case ids and the label against it")
    ap.add_argument("--attributes", type=Path, metavar="FILE",
                    help="attribute file to create or merge into (default with -d: the dataset's); checked against a "
                         "dataset.json next to it")
    ap.add_argument("--knowledge-table", type=Path, action="append", default=[], metavar="FILE",
                    help="extra knowledge table (user diseases, optional report_vocabulary of their organs); "
                         "repeatable, later files win")
    ap.add_argument("--id-mapping", type=Path, metavar="FILE",
                    help="CSV (report id,case_id) or JSON object mapping report ids to nnU-Net case ids")
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
    if not (args.output or args.dataset or args.attributes):
        ap.error("give -o FILE, -d DATASET or --attributes FILE")
    added: List[str] = []
    try:
        # checked first: a directory or read-only -o used to fail only after every report was parsed
        raise_if_problems([p for path, flag in ((args.output, "-o"), (args.attributes, "--attributes"))
                           if path is not None for p in file_problems(path, flag)])
        vocab = load_vocabulary()
        target = args.attributes
        dataset_json, case_ids, labels = None, None, None
        if args.dataset:
            default_target, dataset_json, case_ids, labels = attribute_file.dataset_target(args.dataset)
            target = target or default_target
        elif target is not None:
            dataset_json = target.parent / "dataset.json"
        # the table the attribute file already names comes first, so its diseases need no --knowledge-table again
        tables = attribute_file.referenced_table(target) + list(args.knowledge_table)
        table = load_knowledge_table(tables, vocabulary=vocab)
        organ_vocabularies = load_organ_vocabularies(tables, vocab)
        lookup = Lookup(vocab, table, tuple(organ_vocabularies),
                        read_id_mapping(args.id_mapping) if args.id_mapping else None)
        reports = _inputs(args, vocab, lookup)
        result = parse_inputs(reports, args.label, coding_defaults=not args.no_defaults, progress=True,
                              organ_vocabularies=organ_vocabularies)
        if target is not None:
            added = write_attributes(result, target, dataset_json, case_ids, labels, table, tables, vocab)
        if args.output:
            write_json_atomic(result, args.output)
    except MaleniaInputError as e:
        exit_with_problems(e)
    print(_summary(result))
    if target is not None:
        for name in added:
            print(f"added label {name!r} to the labels section of {target}")
        print(f"merged {sum(len(v) for v in result['cases'].values())} case label(s) into {target}")
    if args.output:
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
