"""Organ-dependent report phrasing: locations, and the density, shape and surface words whose meaning depends on the
organ's reference tissue (a solid organ's parenchyma, a hollow organ's wall, the lung's soft tissue).

Keys are organ groups of ``attribute_tables/aspects.json``; ``extract`` adds these to the organ-independent
lexicons of ``phrases``. An organ the shipped vocabulary does not know gets its words from a user knowledge table
(``organ_vocabulary``).
"""
from __future__ import annotations

from typing import Dict, Tuple

from nnunetv2_malenia.reports.phrases import (DENSITY as DENSITY_GENERIC, FAT_BLURRED, SURROUNDING_FAT, Rule,
                                              rule)

# --- shape -------------------------------------------------------------------------------------------------------
SHAPE_BY_ORGAN: Dict[str, Tuple[Rule, ...]] = {
    "lung": (rule(r"\b(?:cavitary|cavitating|cavitation|cavity|cavities)\b", "irregular", confidence=0.97),),
    # A thickened segment of a hollow organ's wall is not round-like, the sheets' definition of irregular; weak,
    # so that a stated shape ("a round polypoid mass") wins.
    "colon": (rule(r"\bwall thickening\b|\bthicken\w* (?:of )?(?:the )?(?:[\w-]+ ){0,3}?wall\b|"
                   r"\bwall (?:is |was )?thickened\b", "irregular", confidence=0.6),),
    "gallbladder": (rule(r"\bwall thickening\b|\bthicken\w* (?:of )?(?:the )?(?:[\w-]+ ){0,3}?wall\b", "irregular",
                         confidence=0.6),),
}


# --- density -----------------------------------------------------------------------------------------------------
# Hollow organs: the reference is the wall, itself soft tissue, so a "soft-tissue density" thickening or mass is
# isodense to it; in a solid organ the phrase says nothing about the parenchyma and is not read.
# An inference, so any stated density ("slightly hypodense compared with the bowel wall") outweighs it.
_SOFT_TISSUE_IS_ISO = (rule(r"\bsoft[- ]tissue(?: (?:density|attenuation))?\b", "isodense", confidence=0.55),)
# Solid organs: a cyst holds fluid, darker than every parenchyma; an inference like the one above (a haemorrhagic
# "hyperdense cyst" states its density and outweighs it). A mixed "cystic-solid" / "solid and cystic" lesion is
# coded by its fluid part too: the solid part is at most isodense in these organs unless the report says otherwise.
_CYSTIC = r"(?:(?:solid|mixed)[- ](?:and[- ])?)?cystic(?:[- ](?:and[- ])?solid)?"
_CYST_IS_HYPO = (rule(rf"\b(?:cysts?|{_CYSTIC} (?:lesions?|mass(?:es)?|foc(?:us|i)|nodules?|tumou?rs?|neoplasms?))\b",
                      "hypodense", confidence=0.55),)
LUNG_MASS_IS_SOLID = 0.5          # confidence of the inference, below any stated category
DENSITY: Dict[str, Tuple[Rule, ...]] = {
    "*": DENSITY_GENERIC + _CYST_IS_HYPO,
    "colon": DENSITY_GENERIC + _SOFT_TISSUE_IS_ISO,
    "gallbladder": DENSITY_GENERIC + _SOFT_TISSUE_IS_ISO,
    # Lung: categories relative to soft tissue; "mixed ground-glass nodule" is longer than its "ground-glass nodule",
    # so it wins the overlap. A lesion stated with both a ground-glass and a solid part is
    # "mixed" (code 4) when both are in one sentence; ``extract._lung_mixed`` combines them.
    "lung": (
        rule(r"\b(?:pure )?ground[- ]glass(?: opacit(?:y|ies)| density| nodules?| attenuation)?\b|\bGGO?s?\b|"
             r"\bGGNs?\b|\bnon[- ]?solid\b", "ground_glass"),
        rule(r"\b(?:part[- ]solid|partially solid|partly solid|sub[- ]?solid|semi[- ]?solid|"
             r"mixed ground[- ]glass(?: and solid)?(?: opacit(?:y|ies)| density| nodules?| attenuation)?|"
             r"mixed[- ]density|mixed GGOs?|mGGNs?)\b", "mixed_ground_glass_solid"),
        rule(r"\b(?:soft[- ]tissue(?: (?:density|attenuation))?|solid|consolidat\w*)\b", "soft_tissue"),
        # a lung "mass" (over 3 cm) is solid unless the report says ground glass: an inference, weaker than any
        # stated category, and not a solid part ("a ground-glass mass" is not mixed: extract._lung_mixed)
        rule(r"\bmass(?:es)?\b", "soft_tissue", confidence=LUNG_MASS_IS_SOLID),
        rule(r"\b(?:calcified|calcific density|high[- ]density|hyperdense|markedly hyperdense)\b|"
             r"\b(?:brighter|denser) than (?:the )?(?:adjacent |surrounding )?(?:soft tissue|muscle)\b", "hyperdense",
             confidence=0.85),
    ),
}


# --- surface -----------------------------------------------------------------------------------------------------
# Hollow organs: growth through the serosa, or blurred / stranded fat around the wall, is the tumour's outer surface
# being ill-defined (the colon sheet codes the surface of the tumour, "肠癌表面"); weaker than a stated margin.
SURFACE_BY_ORGAN: Dict[str, Tuple[Rule, ...]] = {
    "colon": (
        rule(r"\b(?:invad\w*|invasion of|infiltrat\w*|penetrat\w*|break\w* through|extend\w* (?:through|beyond))\s+"
             r"(?:the\s+)?(?:serosa\w*|subserosa\w*|serous (?:membrane|layer|coat))", "ill_defined", confidence=0.75),
        rule(rf"\b{SURROUNDING_FAT}[^.;]{{0,40}}?\b(?:is|are|appears?|was|were|has|have)\s+(?:been\s+)?(?:\w+\s+)?"
             rf"{FAT_BLURRED}\b|\b{SURROUNDING_FAT}\s+{FAT_BLURRED}\b|\b(?:stranding|streaky)\b[^.;]{{0,25}}?"
             rf"\b{SURROUNDING_FAT}|"
             rf"\b{SURROUNDING_FAT}\s+(?:stranding|infiltration)\b", "ill_defined", confidence=0.7),
    ),
}


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
