"""One radiology report -> value keys per aspect, each with its evidence span in the text and a confidence.

Rules first (``phrases.py``; organ-dependent words in ``organ_phrases.py``), deterministic, no model. How a value is
chosen per aspect:

* every phrase of the aspect's lexicon is found; where phrases overlap the longest wins ("non-contrast CT" over
  "contrast", "non-homogeneous" over "homogeneous");
* a negation cue earlier in the same clause ("no", "without") flips or drops the phrase, see ``Rule.negated_values``;
* relationship statements are found first, and margin words inside them ("closely related to the liver with
  indistinct borders") are not read as the lesion's surface; when no relationship phrase is read, a clause that names
  a neighbouring structure gives it from its first contact or separation word (``_relationship_by_neighbour``);
* density words describing a part of the lesion ("hypodense areas", "foci of high attenuation") do not set the
  lesion's density; a density word on the lesion noun ("mixed hyperdense lesion") does;
* the single-valued aspects take the most confident phrase, the earliest on ties (reports describe the lesion first);
  location takes every location in the first sentence that names one ("both kidneys", "body and tail");
  specific features take every non-negated feature, or ``none`` when features are only mentioned negated.

Aspects without any phrase are reported ``missing``. Two exceptions follow the spreadsheet's coding conventions and
are flagged, never silent: an absent relationship statement gives ``not_close`` and an absent shape word gives
``irregular`` ("anything but round-like"), each with status ``default``, no evidence and confidence 0.5
(``CODING_DEFAULTS``; switch off with ``coding_defaults=False``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from nnunetv2_malenia.attributes.schema import ASPECTS, Vocabulary, load_vocabulary
from nnunetv2_malenia.reports import organ_phrases, phrases
from nnunetv2_malenia.reports.organ_vocabulary import OrganVocabulary
from nnunetv2_malenia.reports.phrases import Rule

FOUND, DEFAULT, MISSING = "found", "default", "missing"
DEFAULT_CONFIDENCE = 0.5
# The spreadsheet's coding conventions for statements a report leaves out: relationship code 1 is "not closely
# related" (reports mention neighbours only when close), and shape code 2 is "irregular: anything but round-like".
# Applied only with ``coding_defaults``; the result then has status "default", no evidence and a low confidence.
CODING_DEFAULTS: Dict[str, str] = {"relationship": "not_close", "shape": "irregular"}
_FLAGS = re.IGNORECASE

# Codes of keys that the spreadsheet's organ table has no code for: the nearest coded key (README: "2 irregular
# (anything else)"; lung "2 ill-defined margin, spiculation"; lung density 1 = lower (ground-glass), 2 = soft tissue).
CODE_FALLBACKS: Dict[str, str] = {
    "lobulated": "irregular", "markedly_hyperdense": "hyperdense", "necrotic_core": "heterogeneous",
    "spiculated": "ill_defined", "ill_defined": "spiculated", "hypodense": "ground_glass",
    "isodense": "soft_tissue", "soft_tissue": "isodense", "ground_glass": "hypodense",
}


@dataclass(frozen=True)
class Evidence:
    start: int          # character offsets into the report: report[start:end] == text
    end: int
    text: str

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class Mention:
    """One phrase of one aspect found in the report."""
    aspect: str
    values: Tuple[str, ...]
    start: int
    end: int
    confidence: float
    negated: bool = False
    hedged: bool = False


@dataclass(frozen=True)
class AspectResult:
    status: str                          # found | default | missing
    values: Tuple[str, ...] = ()         # vocabulary keys
    codes: Tuple[str, ...] = ()          # spreadsheet codes (columns B-H); empty for specific_features
    confidence: float = 0.0
    evidence: Tuple[Evidence, ...] = ()
    negated: Tuple[str, ...] = ()        # specific features mentioned as absent ("no duct dilatation")
    hedged: bool = False                 # "roughly round", "possibly invading": value kept, confidence lowered

    def to_json(self) -> dict:
        return {"status": self.status, "values": list(self.values), "codes": list(self.codes),
                "confidence": round(self.confidence, 3), "evidence": [e.to_json() for e in self.evidence],
                "negated": list(self.negated), "hedged": self.hedged}


@dataclass(frozen=True)
class ParsedReport:
    case: str
    organ: str
    text: str
    aspects: Dict[str, AspectResult] = field(default_factory=dict)

    @property
    def missing(self) -> List[str]:
        return [a for a in ASPECTS if self.aspects[a].status == MISSING]

    def attribute_entry(self) -> Dict[str, List[str]]:
        """The ``cases.<case>.<label>`` object of the dataset attribute file: aspect -> value keys.

        Only aspects the text states: a coding default must not override the label's knowledge-table description
        (a kidney cyst with no shape word is not thereby irregular); defaults show in ``codes`` and ``to_json``."""
        return {a: list(r.values) for a, r in self.aspects.items() if r.status == FOUND and r.values}

    def codes(self) -> Dict[str, List[str]]:
        return {a: list(r.codes) for a, r in self.aspects.items() if a != "specific_features"}

    def to_json(self) -> dict:
        return {"case": self.case, "organ": self.organ, "report": self.text,
                "aspects": {a: self.aspects[a].to_json() for a in ASPECTS}, "missing": self.missing}


# --- text helpers ------------------------------------------------------------------------------------------------

def _sentence_spans(text: str) -> List[Tuple[int, int]]:
    """[start, end) of each sentence; a period inside a number ("2.9 cm") does not end one."""
    spans, start = [], 0
    for m in re.finditer(r"(?<!\d)[.;](?!\d)|\n", text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _clause_start(text: str, pos: int) -> int:
    """Start of the clause holding ``pos``: just after the last clause break before it."""
    start = 0
    for m in re.finditer(phrases.CLAUSE_BREAK, text[:pos], _FLAGS):
        start = m.end()
    return start


def _clause_spans(text: str) -> List[Tuple[int, int]]:
    """[start, end) of each clause: sentences cut again at commas, colons and contrastive conjunctions (not at
    "and the", which joins the two sides of "between the nodule and the pleura")."""
    spans = []
    for s, e in _sentence_spans(text):
        start = s
        for m in re.finditer(r"[,:]|\b(?:but|however|while|whereas|although)\b", text[s:e], _FLAGS):
            if m.start() + s > start:
                spans.append((start, s + m.start()))
            start = s + m.end()
        if e > start:
            spans.append((start, e))
    return spans


def _relationship_by_neighbour(text: str, group: Optional[str]) -> List[Mention]:
    """Relationship from clauses that name a neighbouring structure (``phrases.NEIGHBOURS``, the lesion's own organ
    excluded), when no relationship phrase was read: the clause's first contact word means close, its first
    separation word not close, either flipped by a negation cue. One mention per such clause, at
    ``NEIGHBOUR_CONFIDENCE``, its evidence the whole clause."""
    own = phrases.OWN_ORGAN.get(group or "")
    out = []
    for start, end in _clause_spans(text):
        clause = re.sub(phrases.NOT_NEIGHBOUR_PHRASES, lambda m: " " * len(m.group()), text[start:end], flags=_FLAGS)
        if not any(own is None or not re.fullmatch(own, m.group(), _FLAGS)
                   for m in re.finditer(phrases.NEIGHBOURS, clause, _FLAGS)):
            continue
        cues = sorted([(m.start(), m.end(), "close_unclear_boundary")
                       for m in re.finditer(phrases.CONTACT_CUES, clause, _FLAGS)] +
                      [(m.start(), m.end(), "not_close") for m in re.finditer(phrases.SEPARATION_CUES, clause, _FLAGS)])
        if not cues:
            continue
        cue_start, cue_end, value = cues[0]
        if _is_negated(text, start + cue_start, start + cue_end):
            value = "not_close" if value == "close_unclear_boundary" else "close_unclear_boundary"
        out.append(Mention("relationship", (value,), start, end, phrases.NEIGHBOUR_CONFIDENCE))
    return out


def _is_negated(text: str, start: int, end: int) -> bool:
    """A cue before the phrase in its clause (or inside it: "margins are not well-defined"), at most
    ``NEGATION_MAX_WORDS`` words before it; across a comma only inside an "A, B or C" list, so that
    "no duct dilatation, clear fat plane" negates the dilatation alone."""
    clause_start = _clause_start(text, start)
    cues = list(re.finditer(phrases.NEGATION_CUES, text[clause_start:end], _FLAGS))
    if cues:
        cue_end = clause_start + cues[-1].end()
        gap = text[cue_end:start]
        near = len(re.findall(r"[\w-]+", gap)) <= phrases.NEGATION_MAX_WORDS
        if near and "," not in gap:
            return True
        if near:
            clause_end = re.search(phrases.CLAUSE_BREAK + r"|$", text[end:], _FLAGS).start() + end
            if re.search(r"\b(?:or|nor)\b", text[cue_end:clause_end], _FLAGS):
                return True
    return re.match(phrases.POST_NEGATION, text[end:end + 30], _FLAGS) is not None


def _hedge_factor(text: str, start: int) -> Tuple[float, bool]:
    factor, hedged = 1.0, False
    if re.search(phrases.APPROXIMATION_CUES, text[max(0, start - 30):start], _FLAGS):
        factor, hedged = factor * phrases.APPROXIMATION_FACTOR, True
    if re.search(phrases.UNCERTAINTY_CUES, text[_clause_start(text, start):start], _FLAGS):
        factor, hedged = factor * phrases.UNCERTAINTY_FACTOR, True
    return factor, hedged


def _find(text: str, aspect: str, rules: Sequence[Rule]) -> List[Mention]:
    """All phrases of ``rules``; overlapping ones resolved longest-first; negation and hedges applied."""
    raw = []
    for order, r in enumerate(rules):
        for m in re.finditer(r.pattern, text, _FLAGS):
            if m.end() > m.start():
                raw.append((m.start(), m.end(), order, r))
    raw.sort(key=lambda x: (-(x[1] - x[0]), x[2], x[0]))
    kept: List[Tuple[int, int, Rule]] = []
    for start, end, _, r in raw:
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, r))
    out = []
    for start, end, r in sorted(kept, key=lambda x: x[0]):
        if not r.values and not r.negated_values:     # a blocker: claimed its words, states nothing
            continue
        negated = _is_negated(text, start, end)
        values = r.values
        if negated:
            if r.negated_values is None:
                out.append(Mention(aspect, values, start, end, r.confidence, negated=True))
                continue
            values = r.negated_values
        elif not values:                              # a phrase that states something only when negated
            continue
        factor, hedged = _hedge_factor(text, start)
        out.append(Mention(aspect, values, start, end, r.confidence * factor, False, hedged))
    return out


def _inside(m: Mention, zones: Sequence[Tuple[int, int]]) -> bool:
    return any(s <= m.start < e for s, e in zones)


def _density_role(text: str, m: Mention) -> str:
    """'part' for "hypodense areas" / "areas of low attenuation", 'lesion' for "hypodense lesion" /
    "the lesion is hypodense", else 'other' ("linear hyperdensity is noted")."""
    after, before = text[m.end:m.end + 40], text[max(0, m.start - 40):m.start]
    article = r"\b(?:a|an)\s+(?:[\w-]+\s+){0,3}?"
    area = rf"^\s+(?:[\w-]+\s+)?{phrases.AREA_NOUNS}\b"          # "a low-attenuation cystic focus" too
    if re.search(rf"{article}$", before, _FLAGS) and re.match(area, after, _FLAGS) or \
            re.search(rf"{article}{phrases.AREA_NOUNS}\s+of\s+(?:[\w-]+\s+)?$", before, _FLAGS):
        return "lesion"
    if re.match(rf"^\s+(?:[\w-]+\s+)?{phrases.PART_NOUNS}\b", after, _FLAGS) or \
            re.search(rf"\b{phrases.PART_NOUNS}\s+of\s+(?:[\w-]+\s+)?$", before, _FLAGS):
        return "part"
    if re.match(rf"^\s+(?:[\w-]+\s+){{0,3}}?{phrases.LESION_NOUNS}\b", after, _FLAGS) or \
            re.search(rf"\b{phrases.LESION_NOUNS}\s+{phrases.COPULA}\s+(?:\w+\s+)?$", before, _FLAGS):
        return "lesion"
    return "other"


def _lung_mixed(mentions: Sequence[Mention], sentences: Sequence[Tuple[int, int]]) -> List[Mention]:
    """A ground-glass and a solid statement in one sentence ("a solid nodule with a ground-glass halo", "a
    ground-glass nodule with a solid component") describe one mixed lesion, the lung's code 4. Across sentences they
    may be different findings ("scattered ground-glass opacities in both lungs"), so they are not combined."""
    if any("mixed_ground_glass_solid" in m.values for m in mentions):
        return []
    for s, e in sentences:
        inside = [m for m in mentions if s <= m.start < e]
        glass = [m for m in inside if "ground_glass" in m.values]
        solid = [m for m in inside if "soft_tissue" in m.values and m.confidence > organ_phrases.LUNG_MASS_IS_SOLID]
        if glass and solid:
            pair = sorted([glass[0], solid[0]], key=lambda m: m.start)
            confidence = min(m.confidence for m in pair) * 0.9
            return [Mention("density", ("mixed_ground_glass_solid",), m.start, m.end, confidence, False, m.hedged)
                    for m in pair]
    return []


# aspects whose lexicon does not depend on the organ
_ASPECT_RULES: Dict[str, Sequence[Rule]] = {
    "enhancement_status": phrases.ENHANCEMENT, "shape": phrases.SHAPE, "density_variation": phrases.DENSITY_VARIATION,
    "surface": phrases.SURFACE, "relationship": phrases.RELATIONSHIP, "specific_features": phrases.SPECIFIC_FEATURES}


def _location_rules(group: Optional[str]) -> Sequence[Rule]:
    """The organ's location phrases; every organ's when the organ is unknown."""
    if group is not None:
        return organ_phrases.LOCATION.get(group, ())
    return tuple(r for g in organ_phrases.LOCATION.values() for r in g)


def _density_rules(group: Optional[str]) -> Sequence[Rule]:
    """Lung densities are relative to soft tissue (ground glass, solid), a hollow organ's to its wall, every other
    organ's to its parenchyma."""
    return organ_phrases.DENSITY.get(group or "*", organ_phrases.DENSITY["*"])


def _shape_rules(group: Optional[str]) -> Sequence[Rule]:
    return phrases.SHAPE + organ_phrases.SHAPE_BY_ORGAN.get(group or "", ())


def _surface_rules(group: Optional[str]) -> Sequence[Rule]:
    return phrases.SURFACE + organ_phrases.SURFACE_BY_ORGAN.get(group or "", ())


# --- the parser --------------------------------------------------------------------------------------------------

class ReportParser:
    """Parses report texts of one organ (or of any organ when ``organ`` is None: all location tables).

    ``organ_vocabularies`` (from a user knowledge table, see ``organ_vocabulary.py``) give organs the shipped
    lexicons do not know their location phrases and the known organ group whose wording they share."""

    def __init__(self, vocabulary: Optional[Vocabulary] = None, coding_defaults: bool = True,
                 organ_vocabularies: Optional[Mapping[str, OrganVocabulary]] = None):
        self.vocab = vocabulary or load_vocabulary()
        self.coding_defaults = coding_defaults
        self.organ_vocabularies = dict(organ_vocabularies or {})

    def _organ(self, organ: Optional[str]) -> Tuple[Optional[str], Sequence[Rule]]:
        """(organ group whose wording applies, location rules) of ``organ``. An organ neither shipped nor given a
        vocabulary reads no location: another organ's table would misread its words ("body", "head")."""
        if not organ:
            return None, _location_rules(None)
        if organ in self.organ_vocabularies:
            ov = self.organ_vocabularies[organ]
            return ov.like, ov.location
        group = self.vocab.organ_group(organ)
        return group, (_location_rules(group) if group else ())

    def parse(self, text: str, organ: Optional[str] = None, case: str = "") -> ParsedReport:
        group, location_rules = self._organ(organ)
        results: Dict[str, AspectResult] = {}

        relationship = _find(text, "relationship", _ASPECT_RULES["relationship"])
        # Margin words from a relationship phrase to its sentence end describe the neighbour, not the lesion.
        sentences = _sentence_spans(text)
        zones = [(m.start, next(e for s, e in sentences if s <= m.start < e)) for m in relationship
                 if not m.negated and "close_unclear_boundary" in m.values]

        results["enhancement_status"] = self._single(text, _find(text, "enhancement_status",
                                                                _ASPECT_RULES["enhancement_status"]))
        results["location"] = self._location(text, location_rules, zones, sentences)
        results["shape"] = self._single(text, _find(text, "shape", _shape_rules(group)))
        results["density"] = self._density(text, group)
        results["density_variation"] = self._single(text, _find(text, "density_variation",
                                                                _ASPECT_RULES["density_variation"]))
        surface = [m for m in _find(text, "surface", _surface_rules(group)) if not _inside(m, zones)]
        results["surface"] = self._single(text, surface)
        results["relationship"] = self._single(text, relationship)
        if results["relationship"].status == MISSING:
            results["relationship"] = self._single(text, _relationship_by_neighbour(text, group))
        if self.coding_defaults:
            for aspect, value in CODING_DEFAULTS.items():
                if results[aspect].status == MISSING:
                    results[aspect] = AspectResult(DEFAULT, (value,), confidence=DEFAULT_CONFIDENCE)
        results["specific_features"] = self._features(text)

        organ_name = organ or ""
        results = {a: self._with_codes(a, organ_name, results[a]) for a in ASPECTS}
        return ParsedReport(case=case, organ=organ_name, text=text, aspects=results)

    def stated_values(self, text: str, aspect: str, organ: Optional[str] = None) -> Tuple[str, ...]:
        """Every value key that some non-negated phrase of ``aspect`` states anywhere in ``text``, in text order.

        Unlike ``parse`` nothing is chosen (no role, zone or first-sentence rules), so this answers "does the text
        say X at all?": the parser benchmark uses it to tell a code the text contradicts from a parser miss."""
        group, location_rules = self._organ(organ)
        rules = {"location": lambda g: location_rules, "density": _density_rules, "shape": _shape_rules,
                 "surface": _surface_rules}.get(aspect, lambda g: _ASPECT_RULES[aspect])
        live = [m for m in _find(text, aspect, rules(group)) if not m.negated]
        if aspect == "density" and group == "lung":
            live += _lung_mixed(live, _sentence_spans(text))      # ground glass + solid in one sentence state "mixed"
        return tuple(dict.fromkeys(v for m in live for v in m.values))

    # --- aspect choosers ---------------------------------------------------------------------------------------

    @staticmethod
    def _result(text: str, chosen: Sequence[Mention]) -> AspectResult:
        values: List[str] = []
        for m in chosen:
            values += [v for v in m.values if v not in values]
        evidence = tuple(Evidence(m.start, m.end, text[m.start:m.end]) for m in chosen)
        return AspectResult(FOUND, tuple(values), confidence=min(m.confidence for m in chosen), evidence=evidence,
                            hedged=any(m.hedged for m in chosen))

    def _single(self, text: str, mentions: Sequence[Mention]) -> AspectResult:
        live = [m for m in mentions if not m.negated]
        if not live:
            return AspectResult(MISSING)
        best = max(live, key=lambda m: (round(m.confidence, 6), -m.start))
        return self._result(text, [best])

    def _density(self, text: str, group: Optional[str]) -> AspectResult:
        scored, parts = [], []
        for m in _find(text, "density", _density_rules(group)):
            if m.negated:
                continue
            role = _density_role(text, m)
            if role == "part":
                parts.append(m)
                continue
            weight = 1.0 if role == "lesion" else 0.8
            scored.append(Mention(m.aspect, m.values, m.start, m.end, m.confidence * weight, False, m.hedged))
        if group == "lung":
            mixed = _lung_mixed(sorted(scored + parts, key=lambda m: m.start), _sentence_spans(text))
            if mixed:
                return self._result(text, mixed)
        return self._single(text, scored)

    def _location(self, text: str, rules: Sequence[Rule], zones, sentences) -> AspectResult:
        mentions = [m for m in _find(text, "location", rules)
                    if not m.negated and not _inside(m, zones)]
        if not mentions:
            return AspectResult(MISSING)
        # The first location and those coordinated with it ("head and neck", "body and tail"); a later one
        # ("atrophy of the pancreatic tail") describes something else.
        chosen = [mentions[0]]
        for m in mentions[1:]:
            if not re.match(phrases.LOCATION_COORDINATION, text[chosen[-1].end:m.start], _FLAGS):
                break
            chosen.append(m)
        # A transition zone named with a main part ("head and neck") is that part: keep the surest phrases.
        best = max(m.confidence for m in chosen)
        return self._result(text, [m for m in chosen if m.confidence >= best - 1e-9])

    def _features(self, text: str) -> AspectResult:
        mentions = _find(text, "specific_features", _ASPECT_RULES["specific_features"])
        live = [m for m in mentions if not m.negated]
        negated = tuple(dict.fromkeys(v for m in mentions if m.negated for v in m.values))
        if live:
            result = self._result(text, live)
            return AspectResult(FOUND, result.values, confidence=result.confidence, evidence=result.evidence,
                                negated=tuple(v for v in negated if v not in result.values), hedged=result.hedged)
        if negated:
            # Only absent features were named: that is evidence for "none", not a silent guess.
            evidence = tuple(Evidence(m.start, m.end, text[m.start:m.end]) for m in mentions)
            return AspectResult(FOUND, ("none",), confidence=0.9, evidence=evidence, negated=negated)
        return AspectResult(MISSING)

    # --- codes -------------------------------------------------------------------------------------------------

    def _with_codes(self, aspect: str, organ: str, result: AspectResult) -> AspectResult:
        if aspect == "specific_features" or not result.values:
            return result
        codes = tuple(dict.fromkeys(c for v in result.values for c in [key_to_code(self.vocab, aspect, organ, v)]
                                    if c is not None))
        return AspectResult(result.status, result.values, codes, result.confidence, result.evidence, result.negated,
                            result.hedged)


def key_to_code(vocab: Vocabulary, aspect: str, organ: str, key: str) -> Optional[str]:
    """Invert ``Vocabulary.spreadsheet_codes`` for the organ: value key -> code of columns B-H (None if uncoded)."""
    tables = vocab.spreadsheet_codes.get(aspect, {})
    group = vocab.organ_group(organ) if organ else None
    table = tables.get(group) if group in tables else tables.get("*")
    if table is None:
        return None
    inverse = {k: c for c, k in table.items()}
    if key in inverse:
        return inverse[key]
    fallback = CODE_FALLBACKS.get(key)
    return inverse.get(fallback) if fallback else None


def parse_report(text: str, organ: Optional[str] = None, case: str = "", vocabulary: Optional[Vocabulary] = None,
                 coding_defaults: bool = True,
                 organ_vocabularies: Optional[Mapping[str, OrganVocabulary]] = None) -> ParsedReport:
    """Convenience wrapper: ``ReportParser(...).parse(text, organ, case)``."""
    return ReportParser(vocabulary, coding_defaults, organ_vocabularies).parse(text, organ, case)
