"""Accuracy of the rule-based report parser: report text (column I) in, codes of columns B-H out, against the
coded columns of the Malenia annotation spreadsheet.

    python benchmarks/bench_report_parser.py [--xlsx PATH] [--sheets 肝癌 胰腺癌] [--out res.json]

Per sheet and aspect: accuracy over rows whose code is valid (rows with a blank or invalid code are excluded and
counted), a confusion list of the wrong ones (gold codes -> predicted codes, "missing" when the parser found no
phrase), and the wrong rows themselves (sheet/row/report) for review. A multi-code cell such as ``1、2`` is valid
when every part is a code of the organ's table; the prediction must then give the same set.

Study protocol and figures (annotations_dev.xlsx, accuracy % per aspect enh/loc/shape/dens/var/surf/rel):
rules were written on the kidney sheets only, then measured once on liver and pancreas before any change:
    肝癌   before: 100 / 100 / 85.4 / 85.4 / 100 / 100 / 97.6     after: 100 on every aspect
    胰腺癌 before: 100 / 91.9 / 100 / 100 / 100 / 94.6 / 100     after: 100 / 97.3 / 100 / 100 / 100 / 94.6 / 100
    肾癌   (development sheet):  100 / 96.9 / 93.8 / 97.5 / 99.4 / 100 / 99.4
    肾囊肿 (development sheet):  100 / 97.0 / 97.0 / 100 / 100 / 97.0 / 100
The changes after seeing liver/pancreas were general phrasing rules ("a hypodense area" / "a patchy area of
decreased attenuation" is the lesion itself; "involving" is a relationship; coordinated locations "head and neck")
plus the flagged shape coding default (absent shape word -> irregular).

Text ceiling (second table): the share of rows whose report text states the gold code at all, found without any of
the parser's choices (``ReportParser.stated_values``: every non-negated phrase of the aspect). Where the parser
misses the 97 % goal it sits exactly at this ceiling: 肾癌 location 96.9 (5 rows name the other kidney), 肾癌 shape
93.8 (10 rows: "irregular" coded round-like or "round-like" coded irregular), 肾囊肿 location and shape 97.0 (64/66),
胰腺癌 surface 94.6 (rows 34/36 state no margin). The one cell below its ceiling is 肾囊肿 surface (64/66, ceiling
66/66): rows 35/41 read "well-defined margin from the renal parenchyma ... closely related to the psoas muscle with
indistinct boundaries" and are coded ill-defined, while rows 7/10/20, phrased the same way, are coded well-defined.
Run with --show-wrong to read every wrong row.

Paraphrase sets (tests/data/, written for this project, not taken from the spreadsheet; parsed without coding
defaults, so an unread statement is wrong). The first three cover the seven organ groups of the vocabulary (kidney, liver,
pancreas, colon, lung, gallbladder, spleen); the spreadsheet's reports, and so these, are English. The seen sheets'
303 reports parse exactly as before this work (every aspect's values compared, without coding defaults).
  report_paraphrases.tsv: 323 single statements, several wordings per value per aspect. Written first and measured
    on the parser as it was (73.5 / 98.3 / 92.1 / 69.4 / 87.2 / 82.1 / 78.9 over all organs), then the vocabulary was
    generalised against it (comparisons with a named reference tissue, study-type and lesion-enhancement forms,
    serosa/outer-wall margins, lung categories, lost fat planes ...): 100 on every aspect. It is a development set.
  report_paraphrases_holdout.tsv: 32 whole reports (colon, lung and pancreas-cyst register, phrasing translated from
    Chinese), written after that and measured once before any change for them:
    100 / 93.8 / 93.8 / 100 / 100 / 100 / 85.7 (the parser before this work: 90.6 / 93.8 / 81.2 / 64.5 / 100 / 90.6 /
    51.9). The misses ("thickened unevenly", "the fat space ... has disappeared", "surrounded by normal lung",
    "left lateral segment", "gallbladder fundus wall", plain wall thickening) were fixed as general wordings, one gold
    error (a relationship the text does not state) corrected: now 100 on every aspect.
  report_paraphrases_holdout2.tsv: 21 whole reports in mixed registers (the spreadsheet's, note style without verbs,
    American structured reports, "homogenous"/"heterogenous"), written after further vocabulary work (comparisons
    anchored on a named reference tissue, verbless margins, misspellings) and measured once:
    95.2 / 100 / 95.2 / 100 / 100 / 90.5 / 62.5. Relationship was the weak aspect: verbless "fat planes intact" /
    "perirenal fat clear", "no contact with", "separate from", "fat space ... not visible"; plus "Contrast CT",
    "sharply circumscribed", "margins poorly seen", and one gold error (a shape the text does not state). Fixed as
    general wordings: 100 on every aspect.
  report_paraphrases_holdout3.tsv: 15 whole reports for the three sheets kept out of the repository (colon, lung,
    pancreas cyst) in the spreadsheet's register, written after that and measured once:
    100 / 100 / 100 / 92.9 / 100 / 100 / 84.6. Misses: "soft-tissue mass, slightly hypodense compared with the bowel
    wall" (the soft-tissue inference outweighed the stated density; now weaker than any statement), and lung
    "no relationship to the pleura" / "not adjacent to the pleura" (phrases that state "not close" only when
    negated). Fixed: 100 on every aspect.
  report_paraphrases_holdout4.tsv: 14 whole reports for the same three organs, numbered findings and word-for-word
    translated order, written after that and measured once: 92.9 / 100 / 100 / 100 / 92.9 / 100 / 66.7. Misses:
    "Chest CT (no contrast)", verbless "density even", and lung/colon relationship in translated order ("with the left
    ureter boundary unclear", "adjacent pleura retracted", "adhering to the fissure", "away from the pleura"); one
    gold error (a surface the text does not state) corrected before measuring. Fixed: 100 on every aspect.
  report_paraphrases_holdout5.tsv: 11 whole reports for the same three organs, surface and relationship worded as
    unusually as the writer could ("crisp margins", "sharply outlined", "tethered to", "the interface between them
    cannot be identified", "the splenic vessels are free"), measured once: 100 / 100 / 100 / 100 / 90.9 / 72.7 /
    66.7. Fixed as general wordings: 100 on every aspect.
  report_paraphrases_holdout6.tsv: 14 whole reports for the same three organs, American and British registers,
    segment-level lung anatomy, protocol names for the phase ("CT pancreas protocol (arterial and venous phases)"),
    measured once: 100 / 100 / 92.9 / 78.6 / 92.9 / 92.9 / 78.6. Misses: "asymmetric mural thickening" (shape),
    "enhancing avidly, more than the adjacent normal colon", "a low-attenuation cystic focus" (an adjective between
    the density word and the lesion noun made it a part), a pancreatic "cystic lesion" with no density word (now a
    weak fluid inference in solid organs, like the hollow organs' soft-tissue one), "enhancing evenly", "radiating
    strands (corona radiata)", "no pleural contact", "clear lung parenchyma separates it from ...", "intimately
    applied to ... without a discernible plane". Fixed as general wordings (the seen sheets' 303 reports parse to
    the same values as before): 100 on every aspect. Across the six held-back sets, relationship, surface and
    density are where unseen wording costs most at first reading (62.5-85.7 %, 72.7-100 %, 78.6-100 %; every other
    aspect >= 90.9).
  report_paraphrases_holdout7.tsv: 18 whole reports for the same three organs, abbreviations (CECT, NCCT, MDCT, CTPA,
    RUL/LLL/RML/LUL), protocol and phase names, HU values, measured once: 88.9 / 100 / 100 / 94.4 / 61.1 / 88.9 /
    88.9. Density variation was the weak aspect this time: wordings without the word (in)homogeneous ("patchy
    internal enhancement", "mixed internal attenuation", "of variable attenuation", a cavity or bubbly lucencies in a
    lung lesion, septations or debris in a cyst; "without septa or mural nodules" reads as homogeneous). Also "Non-IV
    contrast CT", "CTPA", "brighter than the adjacent colonic mucosa", "smoothly marginated", a cyst's "smooth
    walls", "lies well clear of", "no fat plane is appreciable", "draped over". Fixed as general wordings (the seen
    sheets' 303 reports parse to the same values in every aspect, with and without coding defaults): 100 on every
    aspect.
  report_paraphrases_holdout8.tsv: 15 whole reports for the same three organs in the spreadsheet's register (Chinese
    reports translated word for word: "plain scan", "fat gap", "serous membrane", "burrs", "vacuole sign",
    "separation" for a septum), measured once: 100 / 100 / 100 / 100 / 93.3 / 86.7 / 46.7. Relationship fell
    furthest: "the boundary between the lesion and the left kidney is not clear" (a clear boundary negated in
    place), "no obvious connection between", "not close to", "not related to", "clearly demarcated from", "the fat
    space between them disappears" (present tense), "an indistinct fat layer", "wraps the splenic artery"; also "the
    serous membrane surface is rough" and "with separation inside". Fixed as general wordings (seen sheets' 303
    reports unchanged in every aspect): 100 on every aspect.
  report_paraphrases_holdout9.tsv: 15 whole reports in the same translated register, written to see whether those
    fixes carry, measured once: 100 / 100 / 100 / 93.3 / 100 / 93.3 / 46.7. They did not: relationship again at 46.7
    ("clings to the pleura", "adhesion with the small intestine", "presses closely against", "surrounds the
    artery", "a certain distance between the nodule and the pleura", "no abnormality of the adjacent pleura"). Each
    names the neighbour, so instead of more phrases a fallback reads the relationship from any clause that names a
    neighbouring structure (not the lesion's own organ) when no phrase is read: its first contact or separation
    word, flipped by a negation (``extract._relationship_by_neighbour``, confidence 0.6). It reads 6 of the set's
    15 relationships; two phrases ("less clear", "the boundary between them being unclear"), the colon's "penetrates
    the serous layer" and a weak "lung mass is solid" inference read the rest: 100 on every aspect; the seen
    sheets' 303 reports unchanged (the fallback fires on none of them).
  report_paraphrases_holdout10.tsv: 15 whole reports in the same register, written to measure that fallback on
    wording it was not built on, measured once: 100 / 93.3 / 93.3 / 100 / 93.3 / 93.3 / 40.0 (location after
    correcting one gold error: the text names two locations). The fallback read none of the new relationships: its
    word lists lacked them ("grows into", "sticks to", "is connected with", "embraced by", "compressed" bile duct,
    "lung tissue can be seen between", "there is fat tissue between", "a fat layer still exists between them").
    With the coding defaults the benchmark scores the spreadsheet with, the three not-close misses would have been
    right: 60 %. Fixed by widening the fallback's lists (neighbours: bile duct, bronchus, hilum, "between them";
    contact and separation words), plus "thickened in a ring shape", "evenly enhanced" and a mass's "smooth
    surface": 100 on every aspect; the seen sheets' 303 reports unchanged.
  report_paraphrases_holdout11.tsv: 15 whole reports in the same register, written in a later session without
    reading the rules, with relationship wordings no set used ("the fat plane ... has disappeared", "extends to ...
    without a clear interface", "lies against", "pulled and attached to", "presses on ... with no fat between",
    "runs at a distance from", "is not affected by"), measured once: 100 / 100 / 100 / 93.3 / 100 / 100 / 100.
    The first relationship reading at or above 90 % in this register: the fallback's word lists carried. The one
    miss was a pancreatic "cystic-solid lesion" with no density word, coded hypodense: the solid-organ inference
    "a cyst is hypodense unless stated" now covers mixed cystic-solid wordings too (100 on every aspect; the seen
    sheets' figures unchanged).
  Across the eleven held-back sets every aspect has read >= 88.9 % at first reading except relationship
  (40.0-100 %), surface (72.7-100 %), density (78.6-100 %) and density variation (61.1-100 %). In the
  spreadsheet's translated register relationship read 40.0-46.7 % at first reading in sets 8-10 and 100 % in set
  11, after set 10's fixes: one set of 15, so the held-out sheets' 90 % goal for it is plausible, not shown.

Sentence-encoder fallback (--encoder: the offline all-MiniLM-L6-v2, nearest vocabulary description per sentence).
Measured, not adopted: alone it reads 84.6 / 64.3 / 72.4 / 53.9 / 57.0 / 58.9 / 72.3 % of the four paraphrase sets
(negation and comparison direction barely move a sentence embedding: "no invasion" sits next to "invasion"); as a
fallback on the 87 paraphrase statements the parser before this work did not read, it was right on 53 (61 %), and a
similarity threshold does not buy precision (>= 0.5: 7 of 11 right). A missing aspect falls back to the label's
knowledge-table description, which beats a 40 % wrong guess; the current rules leave no paraphrase unread.

Library negation and sentence splitting (--negation-context: medspacy 1.3 ConText, default rules, PyRuSH sentences,
deciding negation for the parser's phrases). Measured, not adopted: seen sheets identical; paraphrase sets (all
four) 100 / 99.2 / 98.1 / 98.4 / 98.1 / 96.3 / 96.8 against the parser's own 100 everywhere. Most of its 14 misses
are one pattern: "Chest CT without contrast: a round solid nodule ..." -- the sentence splitter does not stop at the
colon, so "without" negates the whole finding. It also brings spaCy and ~270 MB of dependencies pinning numpy < 2
(the project runs numpy 2), which is not a small dependency for a cue list the parser already has.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_malenia.attributes.schema import ASPECTS, Vocabulary, load_vocabulary
from nnunetv2_malenia.reports.extract import CODING_DEFAULTS, ReportParser, key_to_code

CODED_ASPECTS = tuple(a for a in ASPECTS if a != "specific_features")      # columns B-H
DEFAULT_XLSX = Path(__file__).resolve().parents[2] / "shared" / "data" / "malenia_annotations" / "annotations_dev.xlsx"
DEFAULT_PARAPHRASES = Path(__file__).resolve().parents[1] / "tests" / "data" / "report_paraphrases.tsv"
DEFAULT_HOLDOUT = [Path(__file__).resolve().parents[1] / "tests" / "data" / f"report_paraphrases_holdout{n}.tsv"
                   for n in ("", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11")]


@dataclass(frozen=True)
class Row:
    sheet: str
    row: int
    organ: str
    codes: Dict[str, Tuple[str, ...]]   # aspect -> raw code strings as in the cell
    report: str


def _split_codes(cell) -> Tuple[str, ...]:
    """``2`` -> ('2',), ``'1、2'`` -> ('1', '2'); ``'12'`` stays one (invalid) code: no separator, no split."""
    if cell is None or str(cell).strip() == "":
        return ()
    text = str(cell).strip()
    if re.fullmatch(r"\d+\.0", text):
        text = text[:-2]
    return tuple(p for p in re.split(r"[^\d]+", text) if p)


def read_rows(xlsx: Path, vocab: Vocabulary) -> List[Row]:
    """Rows with a report, via the project's spreadsheet importer when present, else a direct openpyxl read."""
    try:
        from nnunetv2_malenia.attributes.import_annotations import read_annotation_workbook
    except ImportError:
        read_annotation_workbook = None
    rows = []
    if read_annotation_workbook is not None:
        annotation_rows, _ = read_annotation_workbook(xlsx, vocabulary=vocab)
        for r in annotation_rows:
            if r.report and str(r.report).strip():
                codes = {a: tuple(p for c in r.codes.get(a, ()) for p in _split_codes(c)) for a in CODED_ASPECTS}
                rows.append(Row(r.sheet, r.row, r.organ, codes, str(r.report).strip()))
        return rows
    import openpyxl

    workbook = openpyxl.load_workbook(xlsx, read_only=True, data_only=True)
    for sheet in workbook.worksheets:
        organ = vocab.spreadsheet_sheets.get(sheet.title, {}).get("organ")
        if organ is None:
            continue
        for i, values in enumerate(sheet.iter_rows(min_row=2, values_only=True), start=2):
            values = list(values) + [None] * 9
            report = values[8]
            if report is None or not str(report).strip():
                continue
            codes = {a: _split_codes(values[1 + k]) for k, a in enumerate(CODED_ASPECTS)}
            rows.append(Row(sheet.title, i, organ, codes, str(report).strip()))
    return rows


def evaluate(rows: Sequence[Row], vocab: Vocabulary, parser: Optional[ReportParser] = None) -> dict:
    parser = parser or ReportParser(vocab)
    per_sheet: Dict[str, Dict[str, dict]] = defaultdict(dict)
    for sheet in dict.fromkeys(r.sheet for r in rows):
        for aspect in CODED_ASPECTS:
            per_sheet[sheet][aspect] = {"correct": 0, "scored": 0, "excluded_blank": 0, "excluded_invalid": 0,
                                        "predicted_default": 0, "predicted_missing": 0, "text_supports": 0,
                                        "text_contradicts": 0, "text_silent": 0, "confusion": Counter(),
                                        "wrong_rows": []}
    for r in rows:
        parsed = parser.parse(r.report, r.organ)
        for aspect in CODED_ASPECTS:
            cell = per_sheet[r.sheet][aspect]
            gold = r.codes.get(aspect, ())
            group = vocab.organ_group(r.organ)
            tables = vocab.spreadsheet_codes[aspect]
            table = tables.get(group, tables.get("*", {}))
            if not gold:
                cell["excluded_blank"] += 1
                continue
            if any(c not in table for c in gold):
                cell["excluded_invalid"] += 1
                continue
            predicted = parsed.aspects[aspect].codes
            cell["scored"] += 1
            status = parsed.aspects[aspect].status
            if status in ("default", "missing"):
                cell[f"predicted_{status}"] += 1
            support = text_support(parser, vocab, r, aspect, gold)
            cell[f"text_{support}"] += 1
            if set(predicted) == set(gold):
                cell["correct"] += 1
            else:
                key = f"{'+'.join(sorted(gold))} -> {'+'.join(sorted(predicted)) or 'missing'}"
                cell["confusion"][key] += 1
                ev = parsed.aspects[aspect].evidence
                cell["wrong_rows"].append({"row": r.row, "gold": list(gold), "predicted": list(predicted),
                                           "text": support, "evidence": [e.text for e in ev], "report": r.report})
    out = {}
    for sheet, aspects in per_sheet.items():
        out[sheet] = {}
        for aspect, c in aspects.items():
            c["accuracy"] = c["correct"] / c["scored"] if c["scored"] else None
            # what a parser that reads only the text and never guesses can reach: rows whose code the text states
            c["text_ceiling"] = c["text_supports"] / c["scored"] if c["scored"] else None
            c["confusion"] = dict(c["confusion"])
            out[sheet][aspect] = c
    return out


def text_support(parser: ReportParser, vocab: Vocabulary, row: Row, aspect: str, gold: Sequence[str]) -> str:
    """Does the report text itself state the gold code? Independent of the parser's choices: every non-negated
    phrase of the aspect anywhere in the text counts (``ReportParser.stated_values``).

    "supports": the text states every gold code, or says nothing and the gold code is the spreadsheet's coding
    convention for an unstated aspect (CODING_DEFAULTS: relationship "not close", shape "irregular");
    "contradicts": it states this aspect, but not the gold code (e.g. "an irregular lesion" coded round-like);
    "silent": it says nothing about the aspect and no convention gives the gold code."""
    stated = parser.stated_values(row.report, aspect, row.organ)
    codes = {key_to_code(vocab, aspect, row.organ, v) for v in stated} - {None}
    if set(gold) <= codes:
        return "supports"
    if codes:
        return "contradicts"
    convention = CODING_DEFAULTS.get(aspect) if parser.coding_defaults else None
    if convention is not None and set(gold) == {key_to_code(vocab, aspect, row.organ, convention)}:
        return "supports"
    return "silent"


SHORT_NAMES = {"enhancement_status": "enh", "location": "loc", "shape": "shape", "density": "dens",
               "density_variation": "var", "surface": "surf", "relationship": "rel"}


def _print_grid(results: dict, share_key: str, detail) -> None:
    """One row per sheet, one column per aspect: ``share_key`` as a percentage, then ``detail(cell)``."""
    print(f"{'sheet':<8}" + "".join(f"{SHORT_NAMES[a]:>14}" for a in CODED_ASPECTS))
    for sheet, aspects in results.items():
        cells = []
        for a in CODED_ASPECTS:
            share = aspects[a][share_key]
            cells.append(f"{'-' if share is None else f'{100 * share:.1f}'} ({detail(aspects[a])})")
        print(f"{sheet:<8}" + "".join(f"{x:>14}" for x in cells))


def print_table(results: dict) -> None:
    _print_grid(results, "accuracy", lambda c: f"{c['correct']}/{c['scored']}")
    print("\ntext ceiling: share of scored rows whose report text states the gold code (no parser choices involved);"
          "\na row below it is coded against its own text (contradicts) or its text is silent on the aspect")
    _print_grid(results, "text_ceiling", lambda c: f"{c['text_contradicts']}c/{c['text_silent']}s")
    print("\nexcluded rows (blank / invalid code), coding defaults used, and confusions (gold -> predicted):")
    for sheet, aspects in results.items():
        for a in CODED_ASPECTS:
            c = aspects[a]
            if c["excluded_blank"] or c["excluded_invalid"] or c["confusion"] or c["predicted_default"]:
                rows = ", ".join(f"{w['row']}{'' if w['text'] == 'supports' else '*'}" for w in c["wrong_rows"])
                print(f"  {sheet} {a}: excluded {c['excluded_blank']}/{c['excluded_invalid']}; "
                      f"coding defaults used {c['predicted_default']}; wrong {c['confusion']} rows [{rows}] "
                      f"(* = the text contradicts the code or is silent)")


# --- paraphrase set ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Paraphrase:
    line: int
    organ: str
    aspect: str
    key: str            # expected value key
    text: str


def read_paraphrases(path: Path, vocab: Vocabulary) -> List[Paraphrase]:
    """Either ``organ<TAB>aspect<TAB>key<TAB>text`` (one scored aspect per line) or whole reports
    ``organ<TAB>key of each of the 7 coded aspects ('-': not stated)<TAB>text``; '#' starts a comment.
    A bad line stops the benchmark."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) == 4:
            organ, text, pairs = parts[0], parts[3], [(parts[1], parts[2])]
        elif len(parts) == 2 + len(CODED_ASPECTS):
            organ, text = parts[0], parts[-1]
            pairs = [(a, k) for a, k in zip(CODED_ASPECTS, parts[1:-1]) if k != "-"]
        else:
            raise ValueError(f"{path} line {i}: expected 4 or {2 + len(CODED_ASPECTS)} tab-separated fields, "
                             f"got {len(parts)}")
        for aspect, key in pairs:
            if aspect not in CODED_ASPECTS or key not in vocab.values[aspect] or vocab.organ_group(organ) is None:
                raise ValueError(f"{path} line {i}: unknown organ/aspect/key {organ!r}/{aspect!r}/{key!r}")
            out.append(Paraphrase(i, organ, aspect, key, text))
    return out


def _code_or_key(vocab: Vocabulary, aspect: str, organ: str, key: str) -> str:
    """Spreadsheet code where the organ has a code table (so lobulated == irregular == '2'), else the key."""
    code = key_to_code(vocab, aspect, organ, key)
    return code if code is not None else key


def evaluate_paraphrases(items: Sequence[Paraphrase], vocab: Vocabulary, parser: ReportParser) -> dict:
    """Per organ and aspect: share of lines whose single stated value the parser reads. Parsed without coding
    defaults: every line states its value, so a default would hide a miss."""
    out: Dict[str, Dict[str, dict]] = defaultdict(dict)
    for p in items:
        cell = out[p.organ].setdefault(p.aspect, {"correct": 0, "scored": 0, "wrong_rows": []})
        result = parser.parse(p.text, p.organ).aspects[p.aspect]
        predicted = {_code_or_key(vocab, p.aspect, p.organ, v) for v in result.values if result.status == "found"}
        cell["scored"] += 1
        if predicted == {_code_or_key(vocab, p.aspect, p.organ, p.key)}:
            cell["correct"] += 1
        else:
            cell["wrong_rows"].append({"row": p.line, "gold": [p.key], "predicted": list(result.values),
                                       "text": result.status, "evidence": [e.text for e in result.evidence],
                                       "report": p.text})
    total = {}
    for organ, aspects in out.items():
        for aspect, c in aspects.items():
            c["accuracy"] = c["correct"] / c["scored"]
            t = total.setdefault(aspect, {"correct": 0, "scored": 0, "wrong_rows": []})
            t["correct"] += c["correct"]
            t["scored"] += c["scored"]
    for t in total.values():
        t["accuracy"] = t["correct"] / t["scored"]
    out["all organs"] = total
    return dict(out)


def print_paraphrase_table(results: dict, title: str) -> None:
    print(f"\n{title}")
    print(f"{'organ':<12}" + "".join(f"{SHORT_NAMES[a]:>14}" for a in CODED_ASPECTS))
    for organ, aspects in results.items():
        cells = []
        for a in CODED_ASPECTS:
            c = aspects.get(a)
            cells.append("-" if c is None else f"{100 * c['accuracy']:.1f} ({c['correct']}/{c['scored']})")
        print(f"{organ:<12}" + "".join(f"{x:>14}" for x in cells))


# --- sentence-encoder fallback (measured, not used by the parser) -----------------------------------------------

def encoder_answers(items: Sequence[Paraphrase], vocab: Vocabulary) -> List[Tuple[str, float]]:
    """Zero-shot answer of the offline sentence encoder (the project's default text encoder) per item: the value
    whose vocabulary description is nearest (cosine) to any sentence of the report, and that similarity. Candidate
    values are the organ's coded ones (or the keys naming the organ group, where it has no code table)."""
    import torch

    from nnunetv2_malenia.reports.extract import _sentence_spans
    from nnunetv2_malenia.text_bank.encoder import TextEncoder

    encoder = TextEncoder(batch_size=64)
    texts = sorted({p.text[s:e].strip() for p in items for s, e in _sentence_spans(p.text) if p.text[s:e].strip()}
                   | {t for a in CODED_ASPECTS for t in vocab.values[a].values()})
    rows = dict(zip(texts, encoder.encode(texts, progress=False)))            # text -> [D], L2-normalised
    out = []
    for p in items:
        group = vocab.organ_group(p.organ)
        tables = vocab.spreadsheet_codes[p.aspect]
        table = tables.get(group) or tables.get("*")
        candidates = list(table.values()) if table else [k for k in vocab.values[p.aspect] if group and group in k]
        sentences = [p.text[s:e].strip() for s, e in _sentence_spans(p.text) if p.text[s:e].strip()]
        sim = torch.stack([rows[t] for t in sentences]) @ torch.stack(
            [rows[vocab.values[p.aspect][v]] for v in candidates]).T           # [S, V]
        best = sim.max(0).values                                                # [V]
        out.append((candidates[int(best.argmax())], float(best.max())))
    return out


def print_encoder_table(items: Sequence[Paraphrase], vocab: Vocabulary, parser: ReportParser) -> None:
    answers = encoder_answers(items, vocab)
    right: Counter = Counter()
    total: Counter = Counter()
    fallback = []                       # the encoder's answers where the rules state nothing
    for p, (key, sim) in zip(items, answers):
        ok = _code_or_key(vocab, p.aspect, p.organ, key) == _code_or_key(vocab, p.aspect, p.organ, p.key)
        right[p.aspect] += ok
        total[p.aspect] += 1
        if parser.parse(p.text, p.organ).aspects[p.aspect].status == "missing":
            fallback.append((ok, sim))
    print("\nsentence encoder alone (nearest vocabulary description, all paraphrase sets):")
    print("".join(f"{SHORT_NAMES[a]:>14}" for a in CODED_ASPECTS))
    print("".join(f"{f'{100 * right[a] / total[a]:.1f} ({right[a]}/{total[a]})':>14}" for a in CODED_ASPECTS))
    print(f"as a fallback where the rules state nothing: {sum(ok for ok, _ in fallback)}/{len(fallback)} right")


# --- library negation (measured, not used by the parser) ---------------------------------------------------------

def context_negation():
    """A replacement for ``extract._is_negated`` that asks medspacy's ConText (default rules, PyRuSH sentences)
    whether the phrase at [start, end) is negated. medspacy is not a dependency: ``pip install --target DIR medspacy``
    and put DIR on PYTHONPATH for this measurement."""
    import functools

    import medspacy
    from nnunetv2_malenia.reports import extract

    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_context"])
    context = nlp.get_pipe("medspacy_context")
    own = extract._is_negated

    @functools.lru_cache(maxsize=None)
    def sentences(text):
        doc = nlp.make_doc(text)
        for name, component in nlp.pipeline:
            if name != "medspacy_context":
                doc = component(doc)
        return doc

    def negated(text: str, start: int, end: int) -> bool:
        doc = sentences(text).copy()
        span = doc.char_span(start, end, label="FINDING", alignment_mode="expand")
        if span is None:
            return own(text, start, end)
        doc.ents = [span]
        return bool(context(doc).ents[0]._.is_negated)

    return negated


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xlsx", type=Path, default=DEFAULT_XLSX, help="annotation spreadsheet (default: %(default)s)")
    ap.add_argument("--sheets", nargs="*", help="only these sheets (default: every sheet with rows)")
    ap.add_argument("--out", type=Path, help="write the full results (incl. wrong rows) as JSON here")
    ap.add_argument("--no-defaults", action="store_true",
                    help="score without the coding defaults (absent relationship/shape then count as wrong)")
    ap.add_argument("--show-wrong", action="store_true", help="print the report text of every wrong row")
    ap.add_argument("--paraphrases", type=Path, default=DEFAULT_PARAPHRASES,
                    help="paraphrase set to score as well (default: %(default)s)")
    ap.add_argument("--holdout", type=Path, nargs="+", default=DEFAULT_HOLDOUT,
                    help="held-back paraphrase report sets to score as well, each on its own (default: %(default)s)")
    ap.add_argument("--encoder", action="store_true",
                    help="also measure the offline sentence encoder as a zero-shot reader of the paraphrase sets "
                         "(loads the model; about a minute on 2 CPU cores)")
    ap.add_argument("--negation-context", action="store_true",
                    help="let medspacy's ConText decide negation instead of the parser's rules (needs medspacy on "
                         "PYTHONPATH; a measurement, not a mode of the parser)")
    args = ap.parse_args(argv)
    if args.negation_context:
        from nnunetv2_malenia.reports import extract

        extract._is_negated = context_negation()
    if not args.xlsx.is_file():
        print(f"spreadsheet not found: {args.xlsx}", file=sys.stderr)
        return 2
    vocab = load_vocabulary()
    rows = read_rows(args.xlsx, vocab)
    if args.sheets:
        rows = [r for r in rows if r.sheet in args.sheets]
    results = evaluate(rows, vocab, ReportParser(vocab, coding_defaults=not args.no_defaults))
    print_table(results)
    no_defaults = ReportParser(vocab, coding_defaults=False)
    paraphrases = evaluate_paraphrases(read_paraphrases(args.paraphrases, vocab), vocab, no_defaults)
    print_paraphrase_table(paraphrases, f"paraphrase set ({args.paraphrases.name}: one statement per line, written for "
                                        f"this project, not from the spreadsheet; no coding defaults)")
    holdouts = {}
    for path in args.holdout:
        holdouts[path.name] = evaluate_paraphrases(read_paraphrases(path, vocab), vocab, no_defaults)
        print_paraphrase_table(holdouts[path.name], f"held-back paraphrase reports ({path.name}: whole reports, "
                                                    f"stated aspects scored; no coding defaults)")
    if args.encoder:
        items = read_paraphrases(args.paraphrases, vocab)
        for path in args.holdout:
            items += read_paraphrases(path, vocab)
        print_encoder_table(items, vocab, no_defaults)
    if args.show_wrong:
        extra = [(f"{name} {o}", a) for name, res in [("paraphrases", paraphrases)] + list(holdouts.items())
                 for o, a in res.items() if o != "all organs"]
        for sheet, aspects in list(results.items()) + extra:
            for a, c in aspects.items():
                for w in c["wrong_rows"]:
                    print(f"\n[{sheet} row {w['row']} {a}] gold {w['gold']} pred {w['predicted']} text {w['text']} "
                          f"evidence {w['evidence']}\n  {w['report']}")
    if args.out:
        from nnunetv2_malenia.utils.atomic_io import write_json_atomic

        write_json_atomic({"xlsx": str(args.xlsx), "rows": len(rows), "per_sheet": results,
                           "paraphrases": paraphrases, "holdout": holdouts}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
