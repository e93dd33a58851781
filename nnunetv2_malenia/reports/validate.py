"""Check a parsed report given as JSON: the rule parser's ``ParsedReport.to_json()`` or an LLM's answer to the
prompt in ``llm_prompt.md``. Both must pass the same checks before their values enter a dataset attribute file.

Shape of the object (``PARSED_REPORT_SCHEMA`` is the JSON schema given to the LLM)::

    {"aspects": {"<aspect>": {"status": "found" | "default" | "missing",
                              "values": ["<value key>", ...],          # empty when missing
                              "confidence": 0.0-1.0,
                              "evidence": [{"start": int, "end": int, "text": "<exact quote>"}]}}}

``codes``, ``negated``, ``case``, ``organ``, ``report`` and ``missing`` may be present and are not checked here.
"""
from __future__ import annotations

from typing import Iterable, List, Mapping, Optional

from nnunetv2_malenia.attributes.schema import ASPECTS, Vocabulary, load_vocabulary
from nnunetv2_malenia.errors import Problem

STATUSES = ("found", "default", "missing")

PARSED_REPORT_SCHEMA = {
    "type": "object",
    "required": ["aspects"],
    "properties": {
        "aspects": {
            "type": "object",
            "required": list(ASPECTS),
            "additionalProperties": False,
            "properties": {a: {"$ref": "#/$defs/aspect"} for a in ASPECTS},
        }
    },
    "$defs": {
        "aspect": {
            "type": "object",
            "required": ["status", "values", "confidence", "evidence"],
            "properties": {
                "status": {"enum": list(STATUSES)},
                "values": {"type": "array", "items": {"type": "string"}},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "evidence": {"type": "array", "items": {
                    "type": "object", "required": ["start", "end", "text"],
                    "properties": {"start": {"type": "integer", "minimum": 0},
                                   "end": {"type": "integer", "minimum": 0},
                                   "text": {"type": "string"}}}},
            },
        }
    },
}


def validate_parsed(obj, report: Optional[str] = None, file: str = "", vocabulary: Optional[Vocabulary] = None,
                    extra_values: Optional[Mapping[str, Iterable[str]]] = None) -> List[Problem]:
    """Every problem of a parsed-report object (empty list when valid). With ``report``, evidence offsets must
    point at their quoted text; value keys must belong to the aspect's vocabulary, or to ``extra_values`` (the
    free-text locations a user knowledge table defines for its organs)."""
    extra = {a: set(v) for a, v in (extra_values or {}).items()}
    vocab = vocabulary or load_vocabulary()
    problems: List[Problem] = []
    if not isinstance(obj, dict) or not isinstance(obj.get("aspects"), dict):
        return [Problem(file, "aspects", "missing or not an object of aspect -> result")]
    aspects = obj["aspects"]
    for name in aspects:
        if name not in ASPECTS:
            problems.append(Problem(file, f"aspects.{name}", f"unknown aspect; known aspects: {', '.join(ASPECTS)}"))
    for aspect in ASPECTS:
        where = f"aspects.{aspect}"
        entry = aspects.get(aspect)
        if not isinstance(entry, dict):
            problems.append(Problem(file, where, "missing; report an aspect the text does not state as "
                                                 "status 'missing' with no values"))
            continue
        status = entry.get("status")
        if status not in STATUSES:
            problems.append(Problem(file, f"{where}.status", f"must be one of {', '.join(STATUSES)}, got {status!r}"))
        values = entry.get("values")
        if not isinstance(values, list):
            problems.append(Problem(file, f"{where}.values", "must be a list of value keys"))
            values = []
        for i, v in enumerate(values):
            if v not in vocab.values[aspect] and v not in extra.get(aspect, ()):
                problems.append(Problem(file, f"{where}.values[{i}]", f"{v!r} is not a {aspect} value key; known "
                                                                      f"keys: {', '.join(vocab.values[aspect])}"))
        if status == "missing" and values:
            problems.append(Problem(file, f"{where}.values", "a missing aspect has no values"))
        if status in ("found", "default") and not values:
            problems.append(Problem(file, f"{where}.values", f"status {status!r} needs at least one value"))
        confidence = entry.get("confidence")
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
            problems.append(Problem(file, f"{where}.confidence", f"must be a number in [0, 1], got {confidence!r}"))
        evidence = entry.get("evidence")
        if not isinstance(evidence, list):
            problems.append(Problem(file, f"{where}.evidence", "must be a list of {start, end, text}"))
            continue
        if status == "found" and not evidence:
            problems.append(Problem(file, f"{where}.evidence", "a found aspect needs the quoted text it came from"))
        for i, ev in enumerate(evidence):
            _check_evidence(ev, report, file, f"{where}.evidence[{i}]", problems)
    return problems


def _check_evidence(ev, report: Optional[str], file: str, where: str, problems: List[Problem]) -> None:
    if not isinstance(ev, dict):
        problems.append(Problem(file, where, "must be an object {start, end, text}"))
        return
    start, end, text = ev.get("start"), ev.get("end"), ev.get("text")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)) or not isinstance(text, str):
        problems.append(Problem(file, where, "needs integer start/end and a string text"))
        return
    if not 0 <= start < end:
        problems.append(Problem(file, where, f"start {start} / end {end} do not form a span"))
        return
    if report is not None and report[start:end] != text:
        hint = report.find(text)
        extra = f"; the quote occurs at {hint}" if hint >= 0 else "; the quote is not in the report"
        problems.append(Problem(file, where, f"report[{start}:{end}] is {report[start:end]!r}, not {text!r}{extra}"))
