"""Radiology phrasing lexicons: which words in a report stand for which value key of each aspect.

Every entry is a ``Rule``: a case-insensitive regular expression, the value key(s) it stands for, a confidence, and
what the phrase means when it is negated ("no close relationship" -> not_close; "no calcification" -> dropped).
This module holds the organ-independent lexicons and the word classes they share; locations and the words whose
meaning depends on the organ's reference tissue (lung densities, a hollow organ's wall) are in ``organ_phrases``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Rule:
    pattern: str                          # regular expression, matched case-insensitively
    values: Tuple[str, ...]               # value keys the phrase stands for (two for "both kidneys")
    confidence: float = 0.95
    negated_values: Optional[Tuple[str, ...]] = None   # meaning under negation; None: a negated mention is dropped


def rule(pattern: str, *values: str, confidence: float = 0.95, negated: Optional[str] = None) -> Rule:
    return Rule(pattern, tuple(values), confidence, (negated,) if negated else None)


def only_negated(pattern: str, value: str, confidence: float = 0.95) -> Rule:
    """A phrase that states ``value`` only when negated: "not adjacent to the pleura" is not close, while
    "adjacent to the pleura" says nothing certain about the boundary."""
    return Rule(pattern, (), confidence, (value,))


def block(pattern: str) -> Rule:
    """A phrase that looks like a statement of the aspect but is not one ("invading the serosa" is no neighbour
    organ): it takes part in the longest-match overlap like any phrase, then states nothing."""
    return Rule(pattern, ())


# --- shared word classes -------------------------------------------------------------------------------------------
ILL = (r"(?:ill[- ]?defined|indistinct|unclear|blurred|blurry|poorly[- ]defined|poorly[- ]demarcated|fuzzy|"
       r"obscured?|hazy|poorly[- ]marginated|poorly[- ]delineated|rough(?:ened)?|unsmooth|shaggy|jagged|burr(?:ed|y)?|"
       r"coarse|hairy|poorly (?:seen|visuali[sz]ed))")
WELL = (r"(?:well[- ]defined|well[- ]circumscribed|well[- ]demarcated|clearly[- ]defined|clear|sharp|smooth|distinct|"
        r"circumscribed|well[- ]marginated|well[- ]delineated|sharply[- ]marginated|sharply[- ]defined|crisp|"
        r"well[- ]preserved)")
# The lesion's outline: margins of solid organs' lesions, the serosa / outer contour of a hollow organ's wall.
EDGE = (r"(?:margins?|borders?|boundar(?:y|ies)|edges?|contours?|outlines?|demarcation|interface|serosa|"
        r"serosal? (?:surface|layer|side)|serous (?:membrane|coat|layer|surface)(?: surface)?|"
        r"outer (?:surface|wall|membrane|layer)|adventitia)")
COPULA = r"(?:is|are|appears?|remains?|seems?|was|were)"
# ILL, or a clear boundary negated in place: "the boundary between the lesion and the kidney is not clear"
UNCLEAR = (rf"(?:{ILL}|less\s+clear|not\s+(?:very\s+|so\s+|quite\s+)?(?:clear(?:ly (?:seen|visible|defined))?|"
           rf"distinct|sharp|well[- ]defined|visible|seen))")
# "fat plane"; reports translated from Chinese say "fat space" / "fat gap" (脂肪间隙)
FAT_PLANE = r"fat (?:planes?|spaces?|gaps?|intervals?|layers?|clefts?)"
# Words after a density term that make it describe a part of the lesion, not the lesion as a whole.
PART_NOUNS = r"(?:areas?|foci|focus|regions?|components?|spots?|portions?|parts?|zones?|septa|rim|strands?)"
# ... except a single "area" introduced by an article: "a hypodense area is seen", "a patchy area of low attenuation"
# name the lesion itself.
AREA_NOUNS = r"(?:area|region|zone|focus)"
# Locations joined to the first one ("head and neck", "body and tail") belong to the same lesion.
LOCATION_COORDINATION = r"^\s*(?:,|and|or|/|-|to|as well as)\s*(?:the\s+)?(?:pancreatic\s+)?$"
LESION_NOUNS = (r"(?:lesions?|mass(?:es)?|nodules?|tumou?rs?|cysts?|shadows?|opacit(?:y|ies)|thickening|"
                r"neoplasms?|masses)")

# --- enhancement status -------------------------------------------------------------------------------------------
# The study type is stated in many forms ("plain chest CT", "CT without contrast", "enhanced CT of the abdomen"); a
# report that only describes how the lesion enhances ("shows heterogeneous enhancement", "no enhancement after
# contrast") implies a contrast study whether or not the lesion enhances, so its negation keeps the value.
_STUDY = r"(?:CT|scans?|computed tomography|images?|study|examination)"
_BODY = r"(?:chest|thorax|thoracic|lung|abdominal|abdomen|pelvic|abdominopelvic|upper abdominal|renal|liver|hepatic|" \
        r"pancreatic|multiphase|multiphasic|triphasic|biphasic|dual[- ]phase|low[- ]dose|helical|spiral)"
_NOT_NEGATED_ENH = r"(?<!non-)(?<!non)(?<!un)"
ENHANCEMENT = (
    rule(rf"\b(?:non[- ]?(?:(?:IV|i\.v\.|intravenous)[- ])?contrast(?:[- ]enhanced)?|unenhanced|non[- ]?enhanced|"
         rf"pre[- ]?contrast)"
         rf"(?:\s+(?:{_BODY}\s+){{0,2}}{_STUDY})?", "non_contrast"),
    rule(rf"\bplain(?:[- ]scan|\s+(?:{_BODY}\s+){{0,2}}{_STUDY})\b|\b{_STUDY} \(?plain(?: scan)?\b|\bNCCT\b",
         "non_contrast"),
    # "without" is itself a negation cue; the phrase keeps its meaning when the negation check sees it.
    # ... but "no contrast enhancement" / "without contrast uptake" describe the lesion on a contrast study.
    Rule(r"\b(?:without|no) (?:(?:intravenous|IV|i\.v\.|oral) )?contrast(?: (?:medium|agent|material|administration)|"
         r" (?:was |were )?(?:given|administered|used))?\b(?![\s-]*(?:enhanc|uptake|extravasat|fill|opacif))",
         ("non_contrast",), 0.95, ("non_contrast",)),
    rule(rf"{_NOT_NEGATED_ENH}\b(?:contrast[- ]enhanced|post[- ]?contrast|CECT|CTA|CTPA|CTU)\b|"
         r"\bCT (?:pulmonary |coronary |mesenteric |abdominal |renal )?(?:angiogra(?:m|phy)|urogra(?:m|phy))\b|"
         rf"(?<!non-)(?<!non )\bcontrast\s+(?:{_BODY}\s+){{0,2}}{_STUDY}\b|"
         rf"{_NOT_NEGATED_ENH}\benhanced\s+(?:{_BODY}\s+){{0,2}}{_STUDY}\b|"
         r"\b(?:with|after|following|post) (?:the )?(?:(?:intravenous|IV|i\.v\.) )?(?:administration of )?contrast\b",
         "contrast_enhanced"),
    rule(r"\b(?:(?:late |early |hepatic )?arterial|portal[- ]?venous|venous|delayed|nephrographic|corticomedullary|"
         r"pancreatic|excretory|equilibrium|parenchymal|enhanced|contrast) phases?\b|\bwash[- ]?out\b",
         "contrast_enhanced", confidence=0.85),
    Rule(rf"{_NOT_NEGATED_ENH}\b(?:enhanc(?:es|ed|ing|ement)|(?:hyper|hypo|rim[- ]?|peripheral(?:ly)? )enhanc\w*)\b",
         ("contrast_enhanced",), 0.8, ("contrast_enhanced",)),
)

# --- shape --------------------------------------------------------------------------------------------------------
SHAPE = (
    rule(r"\b(?:round[- ]like|round(?:ed|ish)?|oval|ovoid|spherical|circular|quasi[- ]round|nodular)\b", "round_like"),
    # "irregular margins" is a surface statement, not a shape.
    rule(rf"\birregular(?:ly)?(?:[- ]shaped| shape| in shape)?\b(?!\s+(?:[\w-]+\s+)?{EDGE})", "irregular"),
    rule(r"\b(?:lobulated|lobular|lobulations?)\b", "lobulated"),
    # ("patchy enhancement" is a density variation, not a shape)
    rule(r"\b(?:patchy|flaky|strip[- ]like|infiltrative|wedge[- ]shaped|amorphous|stellate)\b"
         r"(?!\s+(?:[\w-]+\s+)?enhanc)",
         "irregular", confidence=0.8),
    # Hollow organs: wall thickening that is uneven, circumferential or annular is not round-like.
    rule(r"\b(?:uneven(?:ly)?|eccentric(?:ally)?|circumferential(?:ly)?|annular|asymmetric(?:al)?(?:ly)?|segmental)\b"
         r"(?=[\s,]+(?:[\w-]+\s+){0,3}?"
         r"(?:thicken\w*|mass|lesion|narrowing|stricture|constriction))|"
         r"\bthickened (?:unevenly|irregularly|eccentrically|circumferentially)\b|"
         r"\bthicken\w*[^.;,]{0,20}?\bring[- ](?:shaped?|like)\b|\bring[- ](?:shaped?|like)\s+thicken\w*",
         "irregular", confidence=0.75),
)
# The lung sheet codes a cavitating lesion as irregular whatever its outline ("如果有空洞也归为不规则").
# --- density ------------------------------------------------------------------------------------------------------
_HYPO = (r"(?:hypo[- ]?dens(?:e|ity)|hypo[- ]?attenuat(?:ing|ion)|low(?:er)?[- ](?:attenuation|density)|"
         r"low[- ]attenuating|decreased (?:attenuation|density))")
_ISO = (r"(?:iso[- ]?dens(?:e|ity)|iso[- ]?attenuat(?:ing|ion)|similar (?:density|attenuation)|"
        r"equal (?:density|attenuation))")
_HYPER = (r"(?:hyper[- ]?dens(?:e|ity)|hyper[- ]?attenuat(?:ing|ion)|high(?:er)?[- ](?:attenuation|density)|"
          r"high[- ]attenuating|increased (?:attenuation|density))")
# Comparisons with whatever reference the report names ("lower density than the adjacent bowel wall", "attenuation
# similar to that of the normal liver", "denser than the spleen"): the direction is the value. Reports compare with
# the organ's own reference tissue (parenchyma, bowel wall), which is what the codes are relative to.
# The spreadsheet's own word is brightness (亮度), which translated reports keep.
_DENS = r"(?:density|attenuation|dens(?:e|ity)|attenuating|brightness|signal)"
# Reference tissues a report compares with; naming one anchors a comparison without a density word ("slightly lower
# than the adjacent bowel wall", "similar to the normal liver parenchyma").
REFERENCE_TISSUE = (r"(?:(?:that of|those of)\s+)?(?:the\s+)?(?:(?:adjacent|surrounding|neighbou?ring|normal|"
                    r"background|remaining|residual|unaffected|nearby)\s+)*(?:(?:bowel|intestinal|colonic|rectal|"
                    r"gastric|gallbladder)\s+wall|wall|(?:(?:bowel|intestinal|colonic|rectal|gastric)\s+)?mucosa|"
                    r"(?:(?:renal|hepatic|liver|pancreatic|splenic)\s+)?parenchyma|"
                    r"liver|kidneys?|renal cortex|cortex|pancreas|gland|spleen|muscles?|soft tissue|colon|bowel|"
                    r"rectum|stomach)\b")
_LOWER = rf"(?:(?:lower|less|decreased|reduced|slightly lower)\s+(?:in\s+)?{_DENS}|less (?:dense|attenuating)|" \
         rf"{_DENS}\s+(?:is\s+)?(?:lower|less) than)"
_SIMILAR = rf"(?:(?:similar|equal|comparable|identical|same)\s+(?:in\s+)?{_DENS}|{_DENS}\s+(?:is\s+)?" \
           rf"(?:similar|equal|comparable|identical) (?:to|with)|indistinguishable in {_DENS}|" \
           rf"(?:same|similar) {_DENS} (?:as|to))"
_HIGHER = rf"(?:(?:higher|greater|increased|slightly higher)\s+(?:in\s+)?{_DENS}|denser|more (?:dense|attenuating)|" \
          rf"{_DENS}\s+(?:is\s+)?(?:higher|greater) than)"
_WATER = r"(?:(?:fluid|water|cystic)[- ](?:like )?(?:density|attenuation)|fluid[- ]attenuation|water[- ]like)"
_SLIGHTLY = r"(?:(?:slightly|mildly|markedly|significantly|much|somewhat)\s+)?"
DENSITY = (
    rule(rf"\b{_HYPO}\b", "hypodense"),
    rule(rf"\b{_ISO}\b", "isodense"),
    rule(rf"\b{_HYPER}\b", "hyperdense"),
    rule(r"\b(?:markedly hyperdense|calcific density|calcified density)\b", "markedly_hyperdense"),
    rule(rf"\b{_LOWER}\b", "hypodense", confidence=0.9),
    rule(rf"\b{_SIMILAR}\b", "isodense", confidence=0.9),
    rule(rf"\b{_HIGHER}\b", "hyperdense", confidence=0.9),
    rule(rf"\b{_SLIGHTLY}(?:lower|less|darker)\s+than\s+{REFERENCE_TISSUE}", "hypodense", confidence=0.85),
    rule(rf"\b(?:similar|equal|comparable|identical)\s+(?:to|with)\s+{REFERENCE_TISSUE}", "isodense", confidence=0.85),
    rule(rf"\b{_SLIGHTLY}(?:higher|greater|brighter|more)\s+than\s+{REFERENCE_TISSUE}", "hyperdense", confidence=0.85),
    # Fluid is darker than every parenchyma and every bowel wall on CT ("similar to water" included); "higher than
    # water" says a cyst is complex, not how it compares with the parenchyma.
    rule(rf"\b{_WATER}\b|\b{_SIMILAR}\s+(?:that of\s+)?(?:the\s+)?(?:water|fluid)\b", "hypodense", confidence=0.8),
    block(rf"\b(?:{_HIGHER}|{_LOWER})\s+(?:than\s+)?(?:that of\s+)?(?:the\s+)?(?:water|fluid)\b"),
)
# --- density variation --------------------------------------------------------------------------------------------
# Any wording of (in)homogeneity of density, attenuation or enhancement. "Uneven" describing wall thickening is a
# shape word (see SHAPE), not a density variation.
# ("uneven thickening", "uniformly thickened wall"; "uneven margins" / "uneven surface" are read by SURFACE)
_NOT_THICKENING = rf"(?![\s,]+(?:[\w-]+\s+){{0,2}}?thicken|\s+(?:{EDGE}|surface|lumen)\b)"
_EVEN_NOUNS = r"(?:density|attenuation|enhancement|signal|echo|dense|attenuating|enhancing|enhanced)"
DENSITY_VARIATION = (
    # "homogenous" / "heterogenous": the common spellings without the second e are accepted
    rule(rf"\b(?:heterogene?ous(?:ly)?|heterogeneity|inhomogene?ous(?:ly)?|inhomogeneity|non[- ]?homogene?ous|"
         rf"non[- ]?uniform(?:ly)?|uneven(?:ly)?|mottled|variegated|"
         rf"mixed[- ](?:(?:internal|inner|intrinsic)\s+)?(?:density|attenuation)|"
         rf"(?:variable|varying)\s+(?:{_EVEN_NOUNS}))\b"
         rf"{_NOT_THICKENING}", "heterogeneous"),
    rule(rf"\b(?:homogene?ous(?:ly)?|homogeneity|uniform(?:ly)?|even(?:ly)? {_EVEN_NOUNS})\b{_NOT_THICKENING}",
         "homogeneous", negated="heterogeneous"),
    # "the attenuation of the lesion is even", "its density appears uneven"
    rule(rf"\b{_EVEN_NOUNS}\b[^.;]{{0,40}}?\b(?:is|are|was|appears?|remains?)\s+(?:\w+\s+)?even\b|"
         rf"\b{_EVEN_NOUNS}\s+(?:not\s+)?even(?:ly)?\b", "homogeneous", negated="heterogeneous"),
    rule(r"\b(?:patchy|mottled|nodular|blotchy)\s+(?:(?:internal|inner|intralesional)\s+)?enhancement\b",
         "heterogeneous", confidence=0.85),
    # Contents that make a lesion's density uneven without the word: air in a solid lesion, compartments, debris or
    # solid parts in a cyst. Weaker than an explicit statement; "without septa or mural nodules" (and a unilocular or
    # simple cyst) reads as homogeneous.
    rule(r"\b(?:cavitat\w*|cavitary|cavit(?:y|ies)|bubbl(?:y|es?|e-like)|air bronchograms?|vacuol\w*|"
         r"multilocul\w*|septat\w*|septa|(?:internal )?debris|mural nodules?|solid (?:components?|portions?)|"
         r"separations?(?!\s+(?:from|between|of|planes?)\b))\b",
         "heterogeneous", confidence=0.7, negated="homogeneous"),
    rule(r"\b(?:unilocular|simple(?:[- ]appearing)?(?= cyst))\b", "homogeneous", confidence=0.6),
    # "the margin is uneven" describes the outline (SURFACE), not the density
    block(rf"\b{EDGE}\b[^.;]{{0,40}}?\b{COPULA}\s+(?:\w+\s+)?(?:uneven|non[- ]?uniform)\b"),
    # "mixed hyperdense lesion" implies parts of other density; weaker than an explicit statement.
    rule(r"\bmixed(?=\s+(?:hypo|hyper|iso))", "heterogeneous", confidence=0.6),
)

# --- surface ------------------------------------------------------------------------------------------------------
_OTHER_SURFACE = r"(?<!pleural )(?<!peritoneal )(?<!liver )(?<!hepatic )"     # "the pleural surface is smooth"
SURFACE = (
    rule(rf"\b{ILL}\s+(?:[\w-]+\s+){{0,2}}?{EDGE}\b", "ill_defined"),
    rule(rf"\b{EDGE}\b[^.;]{{0,60}}?\b{COPULA}\s+(?:\w+\s+)?{ILL}\b", "ill_defined"),
    rule(rf"\b{WELL}\s+(?:[\w-]+\s+){{0,2}}?{EDGE}\b", "well_defined", negated="ill_defined"),
    rule(rf"\b{EDGE}\b[^.;]{{0,60}}?\b{COPULA}\s+(?:\w+\s+)?{WELL}\b", "well_defined", negated="ill_defined"),
    # without a verb, as notes and translated reports write it: "margins unclear", "boundary not clear"
    rule(rf"\b{EDGE}\s+{ILL}\b", "ill_defined", confidence=0.9),
    rule(rf"\b{EDGE}\s+(?:not\s+)?{WELL}\b", "well_defined", confidence=0.9, negated="ill_defined"),
    rule(rf"\b(?:irregular|uneven)\s+{EDGE}\b|\b{EDGE}\b[^.;]{{0,40}}?\b{COPULA}\s+(?:\w+\s+)?(?:irregular|uneven)\b",
         "ill_defined", confidence=0.75),
    rule(r"\b(?:spiculated|spiculations?|spicules?|burrs?|spiky|corona radiata|sunburst)\b|"
         r"\bradiating (?:strands|lines|striations|spicules|bands)\b", "spiculated"),
    rule(r"\b(?:ill[- ]?defined|poorly[- ]defined)\b", "ill_defined", confidence=0.8),
    rule(r"\b(?:well[- ]defined|well[- ]circumscribed)\b", "well_defined", confidence=0.8, negated="ill_defined"),
    # Participles that carry the margin themselves: "sharply demarcated", "poorly marginated", "blending into".
    rule(r"\b(?:sharply|clearly|well|smoothly)[- ](?:demarcated|marginated|delineated|defined|circumscribed|"
         r"outlined)\b",
         "well_defined",
         confidence=0.85, negated="ill_defined"),
    rule(r"\b(?:poorly|ill)[- ](?:demarcated|marginated|delineated)\b|\bblend(?:s|ing)? into\b", "ill_defined",
         confidence=0.85),
    # a mass's or polyp's "surface" is its outline ("a smooth surface"); the pleural or liver surface is not
    rule(rf"\b{WELL}\s+surface\b|{_OTHER_SURFACE}\bsurface\s+{COPULA}\s+(?:\w+\s+)?{WELL}\b", "well_defined",
         confidence=0.8, negated="ill_defined"),
    rule(rf"\b{ILL}\s+surface\b|{_OTHER_SURFACE}\bsurface\s+{COPULA}\s+(?:\w+\s+)?{ILL}\b", "ill_defined",
         confidence=0.8),
    # a cyst's wall is its outline ("smooth walls", "smooth-walled"); smooth wall thickening is a shape
    rule(r"\bsmooth(?:ly)?(?:[- ]walled\b|\s+(?:inner\s+|outer\s+)?walls?\b(?!\s+thicken))", "well_defined",
         confidence=0.8),
)

# Words of a hollow organ's own wall and of the fat around a lesion (RELATIONSHIP blocks them; for the colon they are
# the tumour's surface, see organ_phrases.SURFACE_BY_ORGAN).
WALL_LAYER = (r"(?:(?:sub)?serosa\w*(?:\s+(?:layer|surface))?|serous (?:membrane|coat|layer)|"
              r"muscularis(?:\s+propria)?|(?:sub)?mucosa\w*|"
              r"muscle layer|(?:bowel|colonic|intestinal|rectal|gastric|gallbladder) wall)")
SURROUNDING_FAT = (r"(?:surrounding|peri[\w-]+|adjacent|regional|mesenteric|mesorectal)\s+fat(?:ty)?(?:\s+(?:planes?|"
                    r"spaces?|gaps?|tissues?|layers?))?")
FAT_BLURRED = r"(?:blurred|blurry|hazy|fuzzy|indistinct|unclear|obscured|infiltrated|stranded|streaky|turbid|cloudy)"

# --- relationship -------------------------------------------------------------------------------------------------
# An unclear interface with the lesion's own parenchyma is a surface statement; with anything else it is a
# relationship statement ("unclear demarcation from the adjacent bowel wall").
RELATIONSHIP = (
    rule(r"\b(?:close|intimate|tight)(?:ly)? relat(?:ed|ion(?:ship)?)(?: (?:to|with))?\b", "close_unclear_boundary",
         negated="not_close"),
    # merged into a neighbour, or growing into it; "in close proximity" says less than "closely related"
    rule(r"\b(?:merg\w*|fus\w*|continuous) with\b|\bextend(?:s|ing|ed)?\s+(?:in)?to\b", "close_unclear_boundary",
         confidence=0.75, negated="not_close"),
    rule(r"\b(?:in )?close proximity (?:to|with)\b", "close_unclear_boundary", confidence=0.7, negated="not_close"),
    rule(r"\b(?:closely|intimately) (?:abuts?|abutting|adher\w*|attached|applied|apposed)\b", "close_unclear_boundary",
         negated="not_close"),
    # "without a discernible plane" carries its own negation: the value is the same either way
    Rule(rf"\b(?:without|no) (?:a |any )?(?:discernible|visible|definite|clear|identifiable|separating|intervening) "
         rf"(?:{FAT_PLANE}|(?:cleavage |tissue )?planes?)\b", ("close_unclear_boundary",), 0.9,
         ("close_unclear_boundary",)),
    rule(rf"\b{ILL}\s+(?:{EDGE}|{FAT_PLANE})\s+(?:with|from|between|to)\s+(?![\w\s-]{{0,25}}parenchyma)",
         "close_unclear_boundary"),
    # "the boundary with the bladder is unclear"; with the own parenchyma or unnamed tissue/fat it is the surface.
    # (UNCLEAR may be "not clear": the phrase carries its own negation, so the value is the same either way)
    Rule(rf"\b{EDGE}\s+(?:with|from|to)\s+(?:the\s+)?(?![\w\s-]{{0,25}}(?:parenchyma|tissues?|fat)\b)"
         rf"[\w\s-]{{1,40}}?\b{COPULA}\s+(?:\w+\s+)?{UNCLEAR}\b", ("close_unclear_boundary",), 0.95,
         ("close_unclear_boundary",)),
    # ... and "the boundary with the bladder is clear" / "a clear boundary with the bladder" is not close (the
    # surface rules still read the same words as the lesion's margin)
    rule(rf"\b{EDGE}\s+(?:with|from|to)\s+(?:the\s+)?(?![\w\s-]{{0,25}}(?:parenchyma|tissues?|fat)\b)"
         rf"[\w\s-]{{1,40}}?\b{COPULA}\s+(?:(?!less\b|not\b)\w+\s+)?"      # not "is less clear", "is not clear"
         rf"(?:clear|distinct|sharp|preserved|well[- ]defined)\b|"
         rf"\b(?:clear|distinct|sharp|well[- ]defined)\s+{EDGE}\s+(?:with|from)\s+(?:the\s+)?"
         rf"(?![\w\s-]{{0,25}}(?:parenchyma|tissues?|fat)\b)(?:adjacent|surrounding|neighbou?ring)?\s*[\w-]+",
         "not_close", confidence=0.85, negated="close_unclear_boundary"),
    rule(r"\b(?:invad\w*|invasion|infiltrat\w*|encas\w*|involv\w*|wrap(?:s|ped|ping)?(?: around)?)\b",
         "close_unclear_boundary", confidence=0.8,
         negated="not_close"),
    # ... but growth into the lesion's own wall layers is depth, not a neighbour (see SURFACE_BY_ORGAN for the
    # serosa), and blurred surrounding fat names no organ: neither is a relationship statement.
    block(rf"\b(?:invad\w*|invasion of|infiltrat\w*|involv\w*|penetrat\w*|extend\w*)\s+(?:into\s+|through\s+|"
          rf"beyond\s+)?(?:the\s+)?{WALL_LAYER}"),
    block(rf"\b{SURROUNDING_FAT}[^.;]{{0,40}}?\b(?:is|are|appears?|was|were|has|have)\s+(?:been\s+)?(?:\w+\s+)?"
          rf"{FAT_BLURRED}\b|\b{SURROUNDING_FAT}\s+{FAT_BLURRED}\b"),
    # A preserved fat plane, with or without a verb ("fat planes intact"), or a visible one: "fat space ... not
    # visible" is its negation, a lost plane.
    rule(rf"\b(?:clear|preserved|intact) {FAT_PLANE}\b|"
         rf"\b{FAT_PLANE}\b[^.;]{{0,40}}?\b(?:(?:is|are|remains?|appears?)\s+)?(?:\w+\s+)?(?:clear|clean|preserved|"
         rf"intact|maintained|visible|seen|identified|present|appreciable|appreciated|discernible|demonstrable|"
         rf"definable)\b",
         "not_close", negated="close_unclear_boundary"),
    rule(r"\bseparat(?:ed?|es|ing)\s+(?:it|them|the (?:lesion|mass|nodule|tumou?r|cyst))?\s*from\b|"
         r"\b(?:away|distant|remote) from\b|\bat a distance from\b|"
         r"\b(?:clearly|well|sharply|distinctly)[- ](?:demarcated|separated|delineated) from\b|"
         r"\b(?:well |widely )?clear of\b", "not_close",
         confidence=0.8, negated="close_unclear_boundary"),
    # Word-for-word translations put the neighbour first: "with the left ureter boundary unclear"
    # (与左输尿管分界不清); "not clear" carries its own negation, so the value is the same either way.
    Rule(rf"\bwith\s+(?:the\s+)?(?![\w\s-]{{0,25}}(?:parenchyma|tissues?|fat)\b)[\w-]+(?:\s+[\w-]+){{0,3}}?\s+"
         rf"(?:{EDGE}|{FAT_PLANE})\s+(?:(?:is|are)\s+)?(?:not\s+(?:clear|visible|seen)|{ILL})\b",
         ("close_unclear_boundary",), 0.9, ("close_unclear_boundary",)),
    # A lost fat plane, an inseparable neighbour, an unclear interface "between the lesion and <not parenchyma>".
    rule(rf"\b(?:loss|obliteration|effacement|disappearance) of (?:the )?(?:\w+ )?{FAT_PLANE}\b|"
         rf"\b{FAT_PLANE}\b[^.;]{{0,60}}?\b(?:is|are|was|were|has been|have been) (?:\w+ )?(?:lost|obliterated|"
         rf"effaced|disappeared|indistinct|unclear|blurred|blurry|fuzzy|hazy)\b|"
         rf"\b{FAT_PLANE}\b[^.;]{{0,60}}?\b(?:has |have )?(?:disappear(?:s|ed)?|vanish(?:es|ed)?)\b|"
         rf"\b{ILL}\s+(?:intervening\s+)?{FAT_PLANE}\b(?!\s+(?:around|surrounding))|"
         r"\b(?:obliterated|effaced|lost|absent)\s+fat(?:\s+(?:planes?|spaces?|gaps?))?\s+between\b|"
         r"\b(?:inseparable|indistinguishable) from\b|"
         r"\bcannot be (?:clearly )?(?:separated|distinguished) from\b", "close_unclear_boundary",
         negated="not_close"),
    Rule(rf"\b{EDGE} between (?:the )?[\w\s-]{{0,40}}? and (?:the )?(?![\w\s-]{{0,25}}parenchyma)[\w\s-]{{1,40}}?"
         rf"\b(?:{COPULA}|has|have)\s+(?:\w+\s+)?(?:{UNCLEAR}|disappeared|lost|vanished|obliterated)\b|"
         rf"\b{EDGE}\s+between\s+them\s+(?:{COPULA}|being)\s+(?:\w+\s+)?{UNCLEAR}\b|"
         rf"\b{EDGE}\s+between\s+[\w\s-]{{1,40}}?\bcannot be (?:clearly\s+)?(?:identified|seen|distinguished|"
         rf"delineated|defined)\b", ("close_unclear_boundary",), 0.95,
         ("close_unclear_boundary",)),
    rule(r"\b(?:abut(?:s|ting)?|adher(?:ent|es|ing|ed) to|draped (?:over|around)|(?:in )?(?:close |direct )?"
         r"contact with|pleura[l]?[- ]based|"
         r"(?:pleural|fissural) (?:indentation|retraction|traction|depression|pulling|tags?|tail sign)|"
         r"pleura\s+(?:is\s+|was\s+)?(?:retracted|pulled|indented|tethered|drawn in)|tether(?:ed|ing|s)? to)\b",
         "close_unclear_boundary", confidence=0.75, negated="not_close"),
    rule(r"\b(?:vessels?|organs?|structures?|viscera|bowel loops?)\s+(?:are|is|remain)\s+free\b", "not_close",
         confidence=0.8),
    # weaker than any positive statement: "no lymph nodes adjacent to the mass" shares the cue
    only_negated(r"\b(?:adjacent to|next to|close to|related (?:to|with))\b|"
                 r"\b(?:relationship|relation|contact|connection)\s+(?:with|to|between)\b|"
                 r"\b(?:pleural|fissural|mediastinal|chest wall|vascular|serosal) (?:contact|abutment|attachment)\b",
                 "not_close", confidence=0.7),
    # Clean surrounding fat, or a lung nodule surrounded only by lung.
    rule(r"\b(?:surrounding|peri[\w-]*|adjacent|regional) fat(?: planes?| tissue| spaces?| gaps?)?\b[^.;]{0,30}?"
         r"\b(?:(?:is|are|appears?|remains?)\s+)?(?:\w+\s+)?(?:clear|clean|preserved|intact|normal|unremarkable)\b|"
         r"\bsurrounded by (?:normal |aerated )?(?:lung|pulmonary parenchyma)\b", "not_close", confidence=0.85,
         negated="close_unclear_boundary"),
)

# --- relationship read from a clause that names a neighbour (fallback) ----------------------------------------------
# Used only when no relationship phrase above is read (``extract._relationship_by_neighbour``): reports state the
# relationship in many more verbs than any list of phrases holds ("clings to the pleura", "adhesion with the small
# intestine", "a certain distance between the nodule and the pleura"), but nearly always in a clause that names the
# neighbouring structure. In such a clause the first contact or separation word gives the value, flipped when it is
# negated ("no abnormality of the adjacent pleura" is not close; "no fat gap" is close).
NEIGHBOURS = (r"\b(?:pleura\w*|diaphragm\w*|chest wall|mediastin\w*|pericardi\w*|fissures?|stomach|gastric|"
              r"duodenum|duodenal|jejun\w*|ile(?:um|al)|small (?:intestine|bowel)|bladder|prostate|seminal vesicles?|"
              r"uter(?:us|ine)|ovar(?:y|ies)|ureters?|kidneys?|renal|liver|hepatic|spleen|splenic|pancrea\w*|"
              r"gallbladder|(?:abdominal|pelvic) wall|psoas|iliopsoas|muscles?|aorta|arter(?:y|ies)|veins?|vessels?|"
              r"vena cava|IVC|SMA|SMV|mesenter\w*|omentum|peritone\w*|colon|bowel|rectum|sacrum|vertebra\w*|ribs?|"
              r"(?:common )?bile ducts?|CBD|bronch(?:us|i)|hil(?:um|ar)|between them|between the two)\b")
# The lesion's own organ is no neighbour (per organ group; a hollow organ's flexures are locations).
OWN_ORGAN = {"lung": r"lung|pulmonary", "colon": r"colon\w*|bowel|intestin\w*|rect\w*",
             "pancreas": r"pancrea\w*", "kidney": r"kidneys?|renal", "liver": r"liver|hepatic",
             "spleen": r"spleen|splenic", "gallbladder": r"gallbladder"}
NOT_NEIGHBOUR_PHRASES = r"\b(?:hepatic|splenic) flexure\b"
# (invasion, encasement, abutment and wrapping are phrases above: a clause holding one never gets here, and a
# blocked one, "invading the serosa", must stay unread)
CONTACT_CUES = (r"\b(?:cling\w*|adhe(?:sion|sions|rent|res|red|ring)|press(?:es|ed|ing)?|compress\w*|surround(?:s|ing)|"
                r"attach\w*|contact\w*|against|touch\w*|penetrat\w*|"
                r"pull\w*|retract\w*|indent\w*|tether\w*|abnormal\w*|affected|adjoin\w*|"
                r"less clear|connect(?:s|ed|ing)|embrac\w*|encircl\w*|grow\w* (?:into|along)|stick\w* to|"
                r"close(?:ly)?(?: to)?)\b")
SEPARATION_CUES = (r"\b(?:distance|distant|separat\w*|apart|clear(?:ly)?|normal|unremarkable|intact|preserved|spared|"
                   r"free|distinct|fat(?:ty)? (?:gaps?|spaces?|planes?|layers?|tissue)|"
                   r"(?:lung|pulmonary) (?:tissue|parenchyma))\b")
NEIGHBOUR_CONFIDENCE = 0.6          # above the coding default (0.5), below every phrase above


# --- specific features (multi-valued) ---------------------------------------------------------------------------
SPECIFIC_FEATURES = (
    rule(r"\bpancreatic duct(?:al)? (?:\w+ ){0,3}?dilat\w*|\bdilat\w* (?:of )?(?:the )?(?:main )?pancreatic duct\b|"
         r"\b(?:MPD|main pancreatic duct) (?:\w+ )?dilat\w*|\bpancreatic duct (?:is |was )?(?:dilated|widened)",
         "pancreatic_duct_dilatation"),
    rule(r"\b(?:bile|biliary|hepatic|common bile) ducts? (?:\w+ ){0,3}?dilat\w*|\bbiliary dilatation\b|"
         r"\bdilat\w* (?:of )?(?:the )?(?:intrahepatic |extrahepatic |common )?bile ducts?\b", "bile_duct_dilatation"),
    rule(r"\b(?:calcifications?|calcified|calcific|calcium)\b", "calcification"),
    rule(r"\b(?:septa|septum|septations?|septal|septated)\b", "septation"),
    rule(r"\bwall thickening\b|\bthicken\w* (?:of )?(?:the )?(?:\w+ )?wall\b|\bthickened (?:\w+ )?wall\b",
         "wall_thickening"),
    rule(r"\bpleural (?:traction|retraction|indentation|tags?)\b|\bspiculat\w*", "spiculation"),
    rule(r"\bcystic (?:degeneration|changes?|components?|areas?|portions?)\b|\bnecros[ie]s\b|\bnecrotic\b|"
         r"\bliquefaction\b", "cystic_degeneration"),
    rule(r"\b(?:fluid|water)[- ](?:density|attenuation)\b", "fluid_density"),
    rule(r"\b(?:fat )?stranding\b|\bexudat\w*", "perilesional_stranding"),
    rule(r"\batroph\w*", "parenchymal_atrophy"),
    rule(r"\bhydronephrosis\b|\bdilat\w* of the (?:left |right )?renal pelvis\b|\brenal pelvis (?:is |was )?dilated\b|"
         r"\bpelvicalyceal (?:system )?dilat\w*|\bpelvicaliectasis\b", "hydronephrosis"),
)

# --- negation and hedges ------------------------------------------------------------------------------------------
# A cue negates the phrases after it up to the end of its clause ("No pancreatic ductal dilatation is observed").
NEGATION_CUES = r"\b(?:no|not|without|absence of|absent|free of|negative for|nor|lack of|lacks?)\b"
# Clause ends: the scope of a negation cue stops here.
CLAUSE_BREAK = (r"[.;:]|\bbut\b|\bhowever\b|\bwhile\b|\bwhereas\b|\balthough\b|,\s+(?:with|and|which|showing)\b|"
                r"\band (?:it|the|there|this|its)\b")
NEGATION_MAX_WORDS = 8
# Cues after the phrase ("calcification is not seen").
POST_NEGATION = r"^\s*(?:is|are|was|were)\s+(?:not|absent)\b"
# Approximation hedges keep the value but say it is not clear-cut; uncertainty hedges say it may be wrong.
APPROXIMATION_CUES = r"\b(?:roughly|approximately|nearly|almost|relatively|somewhat|slightly|mostly|predominantly|" \
                     r"largely|mildly|quasi)\W*$"
UNCERTAINTY_CUES = r"\b(?:possibl[ey]|probabl[ey]|suspect(?:ed)?|suspicious(?: for| of)?|may|might|questionable|" \
                   r"likely|equivocal|cannot be excluded)\b"
APPROXIMATION_FACTOR = 0.95
UNCERTAINTY_FACTOR = 0.7
