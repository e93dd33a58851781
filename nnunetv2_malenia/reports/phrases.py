"""Radiology phrasing lexicons: which words in a report stand for which value key of each aspect.

Every entry is a ``Rule``: a case-insensitive regular expression, the value key(s) it stands for, a confidence, and
what the phrase means when it is negated ("no close relationship" -> not_close; "no calcification" -> dropped).
Location rules depend on the organ group (``kidney``, ``liver``, ...); density rules differ for the lung, whose
spreadsheet codes are ground-glass / soft tissue / mixed instead of hypo- / iso- / hyperdense.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Rule:
    pattern: str                          # regular expression, matched case-insensitively
    values: Tuple[str, ...]               # value keys the phrase stands for (two for "both kidneys")
    confidence: float = 0.95
    negated_values: Optional[Tuple[str, ...]] = None   # meaning under negation; None: a negated mention is dropped


def rule(pattern: str, *values: str, confidence: float = 0.95, negated: Optional[str] = None) -> Rule:
    return Rule(pattern, tuple(values), confidence, (negated,) if negated else None)


def block(pattern: str) -> Rule:
    """A phrase that looks like a statement of the aspect but is not one ("invading the serosa" is no neighbour
    organ): it takes part in the longest-match overlap like any phrase, then states nothing."""
    return Rule(pattern, ())


# --- shared word classes -------------------------------------------------------------------------------------------
ILL = (r"(?:ill[- ]?defined|indistinct|unclear|blurred|blurry|poorly[- ]defined|poorly[- ]demarcated|fuzzy|"
       r"obscured?|hazy|poorly[- ]marginated|poorly[- ]delineated|rough(?:ened)?|unsmooth|shaggy|jagged|burr(?:ed|y)?)")
WELL = (r"(?:well[- ]defined|well[- ]circumscribed|well[- ]demarcated|clearly[- ]defined|clear|sharp|smooth|distinct|"
        r"circumscribed|well[- ]marginated|well[- ]delineated|sharply[- ]marginated|sharply[- ]defined)")
# The lesion's outline: margins of solid organs' lesions, the serosa / outer contour of a hollow organ's wall.
EDGE = (r"(?:margins?|borders?|boundar(?:y|ies)|edges?|contours?|outlines?|demarcation|interface|serosa|"
        r"serosal (?:surface|layer|side)|outer (?:surface|wall))")
COPULA = r"(?:is|are|appears?|remains?|seems?|was|were)"
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
    rule(rf"\b(?:non[- ]?contrast(?:[- ]enhanced)?|unenhanced|non[- ]?enhanced|pre[- ]?contrast)"
         rf"(?:\s+(?:{_BODY}\s+){{0,2}}{_STUDY})?", "non_contrast"),
    rule(rf"\bplain(?:[- ]scan|\s+(?:{_BODY}\s+){{0,2}}{_STUDY})\b|\b{_STUDY} \(?plain(?: scan)?\b|\bNCCT\b",
         "non_contrast"),
    # "without" is itself a negation cue; the phrase keeps its meaning when the negation check sees it.
    Rule(r"\bwithout (?:(?:intravenous|IV|i\.v\.|oral) )?contrast(?: (?:medium|agent|material|administration))?\b|"
         r"\bno (?:(?:intravenous|IV) )?contrast (?:was |were )?(?:given|administered|used)\b", ("non_contrast",),
         0.95, ("non_contrast",)),
    rule(rf"{_NOT_NEGATED_ENH}\b(?:contrast[- ]enhanced|post[- ]?contrast|CECT|CTA)\b|"
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
    rule(rf"\birregular(?:ly shaped| shape| in shape)?\b(?!\s+(?:[\w-]+\s+)?{EDGE})", "irregular"),
    rule(r"\b(?:lobulated|lobular|lobulations?)\b", "lobulated"),
    rule(r"\b(?:patchy|flaky|strip[- ]like|infiltrative|wedge[- ]shaped|amorphous|stellate)\b", "irregular",
         confidence=0.8),
    # Hollow organs: wall thickening that is uneven, circumferential or annular is not round-like.
    rule(r"\b(?:uneven(?:ly)?|eccentric(?:ally)?|circumferential(?:ly)?|annular)\b(?=[\s,]+(?:[\w-]+\s+){0,3}?"
         r"(?:thicken\w*|mass|lesion|narrowing|stricture|constriction))|"
         r"\bthickened (?:unevenly|irregularly|eccentrically|circumferentially)\b", "irregular", confidence=0.75),
)
# The lung sheet codes a cavitating lesion as irregular whatever its outline ("如果有空洞也归为不规则").
SHAPE_BY_ORGAN: Dict[str, Tuple[Rule, ...]] = {
    "lung": (rule(r"\b(?:cavitary|cavitating|cavitation|cavity|cavities)\b", "irregular", confidence=0.97),),
    # A thickened segment of a hollow organ's wall is not round-like, the sheets' definition of irregular; weak,
    # so that a stated shape ("a round polypoid mass") wins.
    "colon": (rule(r"\bwall thickening\b|\bthicken\w* (?:of )?(?:the )?(?:[\w-]+ ){0,3}?wall\b|"
                   r"\bwall (?:is |was )?thickened\b", "irregular", confidence=0.6),),
    "gallbladder": (rule(r"\bwall thickening\b|\bthicken\w* (?:of )?(?:the )?(?:[\w-]+ ){0,3}?wall\b", "irregular",
                         confidence=0.6),),
}

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
_DENS = r"(?:density|attenuation|dens(?:e|ity)|attenuating)"
_LOWER = rf"(?:(?:lower|less|decreased|reduced|slightly lower)\s+(?:in\s+)?{_DENS}|less (?:dense|attenuating)|" \
         rf"{_DENS}\s+(?:is\s+)?(?:lower|less) than)"
_SIMILAR = rf"(?:(?:similar|equal|comparable|identical|same)\s+(?:in\s+)?{_DENS}|{_DENS}\s+(?:is\s+)?" \
           rf"(?:similar|equal|comparable|identical) (?:to|with)|indistinguishable in {_DENS}|" \
           rf"(?:same|similar) {_DENS} (?:as|to))"
_HIGHER = rf"(?:(?:higher|greater|increased|slightly higher)\s+(?:in\s+)?{_DENS}|denser|more (?:dense|attenuating)|" \
          rf"{_DENS}\s+(?:is\s+)?(?:higher|greater) than)"
_WATER = r"(?:(?:fluid|water|cystic)[- ](?:like )?(?:density|attenuation)|fluid[- ]attenuation|water[- ]like)"
_GENERIC_DENSITY = (
    rule(rf"\b{_HYPO}\b", "hypodense"),
    rule(rf"\b{_ISO}\b", "isodense"),
    rule(rf"\b{_HYPER}\b", "hyperdense"),
    rule(r"\b(?:markedly hyperdense|calcific density|calcified density)\b", "markedly_hyperdense"),
    rule(rf"\b{_LOWER}\b", "hypodense", confidence=0.9),
    rule(rf"\b{_SIMILAR}\b", "isodense", confidence=0.9),
    rule(rf"\b{_HIGHER}\b", "hyperdense", confidence=0.9),
    # Fluid is darker than every parenchyma and every bowel wall on CT ("similar to water" included); "higher than
    # water" says a cyst is complex, not how it compares with the parenchyma.
    rule(rf"\b{_WATER}\b|\b{_SIMILAR}\s+(?:that of\s+)?(?:the\s+)?(?:water|fluid)\b", "hypodense", confidence=0.8),
    block(rf"\b(?:{_HIGHER}|{_LOWER})\s+(?:than\s+)?(?:that of\s+)?(?:the\s+)?(?:water|fluid)\b"),
)
# Hollow organs: the reference is the wall, itself soft tissue, so a "soft-tissue density" thickening or mass is
# isodense to it; in a solid organ the phrase says nothing about the parenchyma and is not read.
_SOFT_TISSUE_IS_ISO = (rule(r"\bsoft[- ]tissue(?: (?:density|attenuation))?\b", "isodense", confidence=0.8),)
DENSITY: Dict[str, Tuple[Rule, ...]] = {
    "*": _GENERIC_DENSITY,
    "colon": _GENERIC_DENSITY + _SOFT_TISSUE_IS_ISO,
    "gallbladder": _GENERIC_DENSITY + _SOFT_TISSUE_IS_ISO,
    # Lung: categories relative to soft tissue. A lesion stated with both a ground-glass and a solid part is
    # "mixed" (code 4); ``extract._lung_density`` combines them.
    "lung": (
        rule(r"\b(?:pure )?ground[- ]glass(?: opacit(?:y|ies)| density| nodules?| attenuation)?\b|\bGGO?s?\b|"
             r"\bGGNs?\b|\bnon[- ]?solid\b", "ground_glass"),
        rule(r"\b(?:part[- ]solid|partially solid|partly solid|sub[- ]?solid|semi[- ]?solid|mixed ground[- ]glass(?: and solid)?|mixed density|"
             r"mixed GGOs?|mGGNs?)\b", "mixed_ground_glass_solid"),
        rule(r"\b(?:soft[- ]tissue(?: (?:density|attenuation))?|solid|consolidat\w*)\b", "soft_tissue"),
        rule(r"\b(?:calcified|calcific density|high[- ]density|hyperdense|markedly hyperdense)\b|"
             r"\b(?:brighter|denser) than (?:the )?(?:adjacent |surrounding )?(?:soft tissue|muscle)\b", "hyperdense",
             confidence=0.85),
    ),
}

# --- density variation --------------------------------------------------------------------------------------------
# Any wording of (in)homogeneity of density, attenuation or enhancement. "Uneven" describing wall thickening is a
# shape word (see SHAPE), not a density variation.
# ("uneven thickening", "uniformly thickened wall"; "uneven margins" / "uneven surface" are read by SURFACE)
_NOT_THICKENING = rf"(?![\s,]+(?:[\w-]+\s+){{0,2}}?thicken|\s+(?:{EDGE}|surface|lumen)\b)"
_EVEN_NOUNS = r"(?:density|attenuation|enhancement|signal|echo|dense|attenuating|enhancing)"
DENSITY_VARIATION = (
    rule(rf"\b(?:heterogeneous(?:ly)?|heterogeneity|inhomogeneous(?:ly)?|inhomogeneity|non[- ]?homogeneous|"
         rf"non[- ]?uniform(?:ly)?|uneven(?:ly)?|mottled|variegated|mixed (?:density|attenuation))\b{_NOT_THICKENING}",
         "heterogeneous"),
    rule(rf"\b(?:homogeneous(?:ly)?|homogeneity|uniform(?:ly)?|even(?:ly)? {_EVEN_NOUNS})\b{_NOT_THICKENING}",
         "homogeneous", negated="heterogeneous"),
    # "the attenuation of the lesion is even", "its density appears uneven"
    rule(rf"\b{_EVEN_NOUNS}\b[^.;]{{0,40}}?\b(?:is|are|was|appears?|remains?)\s+(?:\w+\s+)?even\b",
         "homogeneous", negated="heterogeneous"),
    # "the margin is uneven" describes the outline (SURFACE), not the density
    block(rf"\b{EDGE}\b[^.;]{{0,40}}?\b{COPULA}\s+(?:\w+\s+)?(?:uneven|non[- ]?uniform)\b"),
    # "mixed hyperdense lesion" implies parts of other density; weaker than an explicit statement.
    rule(r"\bmixed(?=\s+(?:hypo|hyper|iso))", "heterogeneous", confidence=0.6),
)

# --- surface ------------------------------------------------------------------------------------------------------
SURFACE = (
    rule(rf"\b{ILL}\s+(?:[\w-]+\s+){{0,2}}?{EDGE}\b", "ill_defined"),
    rule(rf"\b{EDGE}\b[^.;]{{0,60}}?\b{COPULA}\s+(?:\w+\s+)?{ILL}\b", "ill_defined"),
    rule(rf"\b{WELL}\s+(?:[\w-]+\s+){{0,2}}?{EDGE}\b", "well_defined", negated="ill_defined"),
    rule(rf"\b{EDGE}\b[^.;]{{0,60}}?\b{COPULA}\s+(?:\w+\s+)?{WELL}\b", "well_defined", negated="ill_defined"),
    rule(rf"\b(?:irregular|uneven)\s+{EDGE}\b|\b{EDGE}\b[^.;]{{0,40}}?\b{COPULA}\s+(?:\w+\s+)?(?:irregular|uneven)\b",
         "ill_defined", confidence=0.75),
    rule(r"\b(?:spiculated|spiculations?|spicules?|burrs?|spiky)\b", "spiculated"),
    rule(r"\b(?:ill[- ]?defined|poorly[- ]defined)\b", "ill_defined", confidence=0.8),
    rule(r"\b(?:well[- ]defined|well[- ]circumscribed)\b", "well_defined", confidence=0.8, negated="ill_defined"),
    # Participles that carry the margin themselves: "sharply demarcated", "poorly marginated", "blending into".
    rule(r"\b(?:sharply|clearly|well)[- ](?:demarcated|marginated|delineated|defined)\b", "well_defined",
         confidence=0.85, negated="ill_defined"),
    rule(r"\b(?:poorly|ill)[- ](?:demarcated|marginated|delineated)\b|\bblend(?:s|ing)? into\b", "ill_defined",
         confidence=0.85),
)

# Hollow organs: growth through the serosa, or blurred / stranded fat around the wall, is the tumour's outer surface
# being ill-defined (the colon sheet codes the surface of the tumour, "肠癌表面"); weaker than a stated margin.
_WALL_LAYER = (r"(?:sub)?serosa\w*(?:\s+(?:layer|surface))?|muscularis(?:\s+propria)?|(?:sub)?mucosa\w*|muscle layer|"
               r"(?:bowel|colonic|intestinal|rectal|gastric|gallbladder) wall")
_SURROUNDING_FAT = (r"(?:surrounding|peri[\w-]+|adjacent|regional|mesenteric|mesorectal)\s+fat(?:ty)?(?:\s+(?:planes?|"
                    r"spaces?|gaps?|tissues?|layers?))?")
_FAT_BLURRED = r"(?:blurred|blurry|hazy|fuzzy|indistinct|unclear|obscured|infiltrated|stranded|streaky|turbid|cloudy)"
SURFACE_BY_ORGAN: Dict[str, Tuple[Rule, ...]] = {
    "colon": (
        rule(r"\b(?:invad\w*|invasion of|infiltrat\w*|penetrat\w*|break\w* through|extend\w* (?:through|beyond))\s+"
             r"(?:the\s+)?(?:serosa\w*|subserosa\w*)", "ill_defined", confidence=0.75),
        rule(rf"\b{_SURROUNDING_FAT}[^.;]{{0,40}}?\b(?:is|are|appears?|was|were|has|have)\s+(?:been\s+)?(?:\w+\s+)?"
             rf"{_FAT_BLURRED}\b|\b(?:stranding|streaky)\b[^.;]{{0,25}}?\b{_SURROUNDING_FAT}|"
             rf"\b{_SURROUNDING_FAT}\s+(?:stranding|infiltration)\b", "ill_defined", confidence=0.7),
    ),
}

# --- relationship -------------------------------------------------------------------------------------------------
# An unclear interface with the lesion's own parenchyma is a surface statement; with anything else it is a
# relationship statement ("unclear demarcation from the adjacent bowel wall").
RELATIONSHIP = (
    rule(r"\bclose(?:ly)? relat(?:ed|ion(?:ship)?)(?: (?:to|with))?\b", "close_unclear_boundary",
         negated="not_close"),
    rule(r"\bclosely (?:abuts?|abutting|adher\w*|attached)\b", "close_unclear_boundary", negated="not_close"),
    rule(rf"\b{ILL}\s+(?:{EDGE}|{FAT_PLANE})\s+(?:with|from|between|to)\s+(?![\w\s-]{{0,25}}parenchyma)",
         "close_unclear_boundary"),
    # "the boundary with the bladder is unclear"; with the own parenchyma or unnamed tissue/fat it is the surface.
    rule(rf"\b{EDGE}\s+(?:with|from|to)\s+(?:the\s+)?(?![\w\s-]{{0,25}}(?:parenchyma|tissues?|fat)\b)"
         rf"[\w\s-]{{1,40}}?\b{COPULA}\s+(?:\w+\s+)?{ILL}\b", "close_unclear_boundary"),
    rule(r"\b(?:invad\w*|invasion|infiltrat\w*|encas\w*|involv\w*)\b", "close_unclear_boundary", confidence=0.8,
         negated="not_close"),
    # ... but growth into the lesion's own wall layers is depth, not a neighbour (see SURFACE_BY_ORGAN for the
    # serosa), and blurred surrounding fat names no organ: neither is a relationship statement.
    block(rf"\b(?:invad\w*|invasion of|infiltrat\w*|involv\w*|penetrat\w*|extend\w*)\s+(?:into\s+|through\s+|"
          rf"beyond\s+)?(?:the\s+)?{_WALL_LAYER}"),
    block(rf"\b{_SURROUNDING_FAT}[^.;]{{0,40}}?\b(?:is|are|appears?|was|were|has|have)\s+(?:been\s+)?(?:\w+\s+)?"
          rf"{_FAT_BLURRED}\b"),
    rule(rf"\b(?:clear|preserved|intact) {FAT_PLANE}\b|"
         rf"\b{FAT_PLANE}\b[^.;]{{0,40}}?\b(?:is|are) (?:clear|preserved|intact|maintained)\b",
         "not_close", negated="close_unclear_boundary"),
    rule(r"\bseparated from (?:the )?(?:adjacent|surrounding)\b", "not_close", confidence=0.85),
    # A lost fat plane, an inseparable neighbour, an unclear interface "between the lesion and <not parenchyma>".
    rule(rf"\b(?:loss|obliteration|effacement|disappearance) of (?:the )?(?:\w+ )?{FAT_PLANE}\b|"
         rf"\b{FAT_PLANE}\b[^.;]{{0,60}}?\b(?:is|are|was|were|has been|have been) (?:\w+ )?(?:lost|obliterated|"
         rf"effaced|disappeared|indistinct|unclear|blurred|blurry|fuzzy|hazy)\b|"
         rf"\b{FAT_PLANE}\b[^.;]{{0,60}}?\b(?:has |have )?(?:disappeared|vanished)\b|"
         r"\b(?:inseparable|indistinguishable) from\b|"
         r"\bcannot be (?:clearly )?(?:separated|distinguished) from\b", "close_unclear_boundary",
         negated="not_close"),
    rule(rf"\b{EDGE} between (?:the )?[\w\s-]{{0,40}}? and (?:the )?(?![\w\s-]{{0,25}}parenchyma)[\w\s-]{{1,40}}?"
         rf"\b{COPULA}\s+(?:\w+\s+)?{ILL}\b", "close_unclear_boundary"),
    rule(r"\b(?:abut(?:s|ting)?|adherent to|adheres to|in (?:close )?contact with|pleura[l]?[- ]based|"
         r"(?:pleural|fissural) (?:indentation|retraction|traction|depression|pulling|tags?|tail sign))\b", "close_unclear_boundary",
         confidence=0.75, negated="not_close"),
    # Clean surrounding fat, or a lung nodule surrounded only by lung.
    rule(r"\b(?:surrounding|peri[\w-]*|adjacent|regional) fat(?: planes?| tissue| spaces?| gaps?)?\b[^.;]{0,30}?\b(?:is|are|appears?|"
         r"remains?) (?:\w+ )?(?:clear|clean|preserved|intact|normal|unremarkable)\b|\bsurrounded by (?:normal |aerated )?"
         r"(?:lung|pulmonary parenchyma)\b", "not_close", confidence=0.85, negated="close_unclear_boundary"),
)

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

# --- location, per organ group ------------------------------------------------------------------------------------


def _lung_rules() -> Tuple[Rule, ...]:
    """Each of the five lobes in its usual phrasings: "right upper lobe", "upper lobe of the right lung",
    "right lung upper lobe", and the abbreviation (RUL); the lingula belongs to the left upper lobe."""
    lobes = (("left", "upper", "LUL"), ("left", "lower", "LLL"), ("right", "upper", "RUL"),
             ("right", "middle", "RML"), ("right", "lower", "RLL"))
    out = []
    for side, level, abbreviation in lobes:
        key = f"lung_{side}_{level}_lobe"
        out.append(rule(rf"\b{side} {level} lobe\b|\b{level} lobe of (?:the )?{side} lung\b|"
                        rf"\b{side} lung(?:'s|,)? {level} lobe\b|\b{abbreviation}\b", key))
        # "right upper lung (field)": a zone, not quite the lobe
        out.append(rule(rf"\b{side} {level} lung(?: field| zone)?\b", key, confidence=0.8))
    out.append(rule(r"\blingula(?:r)?\b", "lung_left_upper_lobe", confidence=0.85))
    out.append(rule(r"\bmiddle lobe\b", "lung_right_middle_lobe", confidence=0.9))   # only the right lung has one
    return tuple(out)


LOCATION: Dict[str, Tuple[Rule, ...]] = {
    "kidney": (
        rule(r"\bleft (?:kidney|renal)\b|\bkidney,? left\b", "left_kidney"),
        rule(r"\bright (?:kidney|renal)\b|\bkidney,? right\b", "right_kidney"),
        rule(r"\b(?:both|bilateral) (?:kidneys|renal)\b|\bkidneys bilaterally\b", "left_kidney", "right_kidney"),
    ),
    "liver": (
        rule(r"\bright (?:hepatic |liver )?lobe(?: of the liver)?\b|\bright liver\b|\bright hepatic\b",
             "liver_right_lobe"),
        rule(r"\bleft (?:hepatic |liver )?lobe(?: of the liver)?\b|\bleft liver\b|\bleft hepatic\b", "liver_left_lobe"),
        # Couinaud segments: II-IV form the functional left liver, V-VIII the right.
        rule(r"\b(?:segments? ?|S)(?:IV[ab]?|III|II|[234])\b", "liver_left_lobe", confidence=0.8),
        rule(r"\bleft (?:lateral|medial) (?:segments?|sections?|sectors?)\b", "liver_left_lobe", confidence=0.9),
        rule(r"\bright (?:anterior|posterior) (?:segments?|sections?|sectors?)\b", "liver_right_lobe", confidence=0.9),
        rule(r"\b(?:segments? ?|S)(?:VIII|VII|VI|V|[5-8])\b", "liver_right_lobe", confidence=0.8),
        rule(r"\b(?:intrahepatic|hepatic) vessels?\b|\balong the (?:portal|hepatic) veins?\b", "hepatic_vessels",
             confidence=0.8),
    ),
    "pancreas": (
        rule(r"\b(?:pancreatic )?head(?: of the pancreas)?\b|\buncinate(?: process)?\b", "pancreas_head"),
        rule(r"\b(?:pancreatic )?body(?: of the pancreas)?\b", "pancreas_body"),
        rule(r"\b(?:pancreatic )?neck(?: of the pancreas)?\b", "pancreas_body", confidence=0.8),
        rule(r"\b(?:pancreatic )?tail(?: of the pancreas)?\b", "pancreas_tail"),
    ),
    "colon": (
        rule(r"\bascending colon\b", "colon_ascending"),
        rule(r"\b(?:c(?:a)?ecum|c(?:a)?ecal|ileoc(?:a)?ecal)\b", "colon_ascending", confidence=0.75),
        rule(r"\bhepatic flexure\b", "colon_ascending", confidence=0.6),
        rule(r"\btransverse colon\b", "colon_transverse"),
        rule(r"\bdescending colon\b", "colon_descending"),
        rule(r"\bsplenic flexure\b", "colon_descending", confidence=0.6),
        rule(r"\bsigmoid(?: colon)?\b", "colon_sigmoid"),
        rule(r"\brectosigmoid\b", "colon_sigmoid", confidence=0.6),
        rule(r"\brect(?:um|al)\b", "rectum"),
    ),
    "lung": _lung_rules(),
    "gallbladder": (
        rule(r"\bgallbladder (?:(?:fundus|fundal|neck|body) )?wall\b|\bwall of the gallbladder\b", "gallbladder_wall"),
        rule(r"\bgallbladder(?: lumen)?\b", "gallbladder_lumen", confidence=0.8),
    ),
    "spleen": (rule(r"\b(?:spleen|splenic)\b", "spleen"),),
}

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
