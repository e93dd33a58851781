"""Attributes -> rendering. Every vocabulary value of every aspect either maps to a rendering rule here or is
declared non-renderable (absent from RENDERABLE); a disease using a non-renderable value is rejected up front."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

import numpy as np
from scipy import ndimage

from nnunetv2_malenia.attributes.knowledge_table import Disease
from nnunetv2_malenia.attributes.schema import ASPECTS
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.phantoms.anatomy import ORGAN_REGIONS, REGION_ORGAN, Anatomy
from nnunetv2_malenia.phantoms.phase import CALCIUM_HU, FLUID_HU, PHASES

# Density relative to the surrounding parenchyma (HU offset) or absolute HU for lung / calcium values.
DENSITY_OFFSET = {"hypodense": -45.0, "isodense": 0.0, "hyperdense": 45.0}
DENSITY_ABSOLUTE = {"markedly_hyperdense": CALCIUM_HU, "ground_glass": -600.0, "soft_tissue": 40.0,
                    "mixed_ground_glass_solid": -600.0}   # mixed: solid core added below
# Density is judged against the tissue a radiologist compares the lesion with: its organ's parenchyma, not the
# structure it lies in or abuts. Stones in bile against the gallbladder wall; a tumour along the hepatic vessels
# against the liver: judged against the contrast-filled vessels (160 HU), a "hypodense" one was painted at 115 HU
# inside a 110 HU liver, isodense with everything around it but the thin vessel it replaced.
DENSITY_REFERENCE = {"gallbladder_lumen": "gallbladder_wall", "hepatic_vessels": "liver_right_lobe"}
# Structures a lesion abuts but never replaces, besides the other organs: it grows into the fat around its organ, not
# into the aorta or a vertebra. The bowel lumen belongs to the colon (a colon tumour narrows it).
NEVER_REPLACED = ("spine", "aorta", "ivc")
LUMEN_ORGAN = {"bowel_lumen": "colon"}
# Share of the lesion's HU an "unclear boundary" leaves in the neighbour's first voxel layer: the interface is
# blurred, but the neighbour is not labelled and keeps most of its own density.
UNCLEAR_BOUNDARY_BLEED = 0.5
MARGIN_WIDTH = {"well_defined": 0.04, "ill_defined": 0.35, "spiculated": 0.08}   # in units of the lesion radius
SPECIFIC_FEATURES = ("none", "calcification", "septation", "pancreatic_duct_dilatation", "bile_duct_dilatation",
                     "wall_thickening", "spiculation", "cystic_degeneration", "fluid_density",
                     "perilesional_stranding", "parenchymal_atrophy", "hydronephrosis")
RENDERABLE: Dict[str, Tuple[str, ...]] = {
    "enhancement_status": PHASES,
    "location": tuple(REGION_ORGAN),
    "shape": ("round_like", "irregular", "lobulated"),
    "density": tuple(DENSITY_OFFSET) + tuple(DENSITY_ABSOLUTE),
    "density_variation": ("homogeneous", "heterogeneous", "necrotic_core"),
    "surface": tuple(MARGIN_WIDTH),
    "relationship": ("not_close", "close_unclear_boundary"),
    "specific_features": SPECIFIC_FEATURES,
}


def check_renderable(diseases: Mapping[str, Disease]) -> None:
    """MaleniaInputError listing, per aspect, the renderable values, for every unrenderable value used."""
    problems = []
    for name, d in diseases.items():
        src = d.source.split(":")[0] if d.source else "knowledge table"
        if d.organ not in ORGAN_REGIONS:
            problems.append(Problem(src, f"diseases.{name}.organ", f"organ {d.organ!r} has no phantom anatomy; "
                                    f"renderable organs: {', '.join(ORGAN_REGIONS)}"))
        for aspect in ASPECTS:
            for value in d.value_keys.get(aspect, ()):
                if value not in RENDERABLE[aspect]:
                    problems.append(Problem(src, f"diseases.{name}.attributes.{aspect}",
                                            f"value {value!r} cannot be rendered; renderable values: "
                                            f"{', '.join(RENDERABLE[aspect])}"))
            if aspect == "location":
                bad = [v for v in d.value_keys.get(aspect, ()) if REGION_ORGAN.get(v, d.organ) != d.organ]
                if bad:
                    problems.append(Problem(src, f"diseases.{name}.attributes.location",
                                            f"{', '.join(bad)} not inside organ {d.organ!r}"))
    if problems:
        raise MaleniaInputError(problems)


def choose_attributes(disease: Disease, phase: str, rng: np.random.Generator,
                      allowed_locations=None) -> Dict[str, str]:
    """One allowed value per aspect (the scan's phase for enhancement_status; locations present in the scan)."""
    out = {"enhancement_status": phase}
    for aspect in ASPECTS:
        if aspect == "enhancement_status":
            continue
        options = disease.value_keys[aspect]
        if aspect == "location" and allowed_locations is not None:
            options = tuple(o for o in options if o in allowed_locations)
        out[aspect] = options[int(rng.integers(len(options)))]
    return out


@dataclass
class RenderedLesion:
    label_mask: np.ndarray      # [X, Y, Z] bool, voxels labelled as this lesion
    center: Tuple[int, int, int]
    attributes: Dict[str, str]


def _pick_center(region_mask: np.ndarray, radius_vox: float, close: bool, rng) -> Tuple[int, int, int]:
    # distance to the region's border decides "not_close" (deep inside) vs "close" (straddling the border)
    edt = ndimage.distance_transform_edt(region_mask)
    if close:
        cand = (edt >= 1) & (edt <= max(1.5, 0.5 * radius_vox))
    else:
        cand = edt >= min(radius_vox * 1.1, edt.max())
    idx = np.argwhere(cand)
    if len(idx) == 0:
        idx = np.argwhere(region_mask)
    return tuple(int(c) for c in idx[int(rng.integers(len(idx)))])


def _shape_distance(offsets, radius, shape, spiculated, rng) -> np.ndarray:
    """Normalised distance d (d < 1 inside) of box voxels [x, y, z] from a lesion of the given shape."""
    ox, oy, oz = offsets                                   # each [bx, 1, 1] / [1, by, 1] / [1, 1, bz] voxels
    r = np.sqrt(ox ** 2 + oy ** 2 + oz ** 2) + 1e-6
    ax = rng.uniform(0.85, 1.15, 3)
    d = np.sqrt((ox / ax[0]) ** 2 + (oy / ax[1]) ** 2 + (oz / ax[2]) ** 2) / radius
    if shape == "irregular":
        # radius varies with direction: low-order angular harmonics of random phase
        k = rng.normal(size=(4, 3))
        wob = sum(np.cos(3 * (k[i, 0] * ox + k[i, 1] * oy + k[i, 2] * oz) / r + rng.uniform(0, 6.3)) for i in range(4))
        d = d / (1 + 0.12 * wob)
    elif shape == "lobulated":
        for _ in range(3):
            c = rng.normal(size=3)
            c = 0.6 * radius * c / np.linalg.norm(c)
            lobe = np.sqrt((ox - c[0]) ** 2 + (oy - c[1]) ** 2 + (oz - c[2]) ** 2) / (0.6 * radius)
            d = np.minimum(d, lobe)
    if spiculated:
        dirs = rng.normal(size=(8, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        for dx, dy, dz in dirs:
            along = ox * dx + oy * dy + oz * dz
            perp = np.sqrt(np.maximum(r ** 2 - along ** 2, 0))
            spike = (along > 0) & (perp < 0.9) & (along < 1.8 * radius)
            d = np.where(spike, np.minimum(d, 0.9), d)
    return d


def render_lesion(image: np.ndarray, anatomy: Anatomy, disease: Disease, attrs: Mapping[str, str],
                  radius_vox: float, rng: np.random.Generator) -> RenderedLesion:
    """Paint one lesion into ``image`` [X, Y, Z] (in place); return its label mask and what was rendered."""
    phase = attrs["enhancement_status"]
    region = attrs["location"]
    region_mask = anatomy.mask(region)
    close = attrs["relationship"] == "close_unclear_boundary"
    if attrs["specific_features"] == "wall_thickening":
        radius_vox = max(radius_vox, 3.0)
    c = _pick_center(region_mask, radius_vox, close, rng)
    pad = int(np.ceil(radius_vox * 2.2)) + 2
    lo = [max(0, ci - pad) for ci in c]
    hi = [min(s, ci + pad + 1) for ci, s in zip(c, image.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    offsets = (np.arange(lo[0], hi[0])[:, None, None] - c[0], np.arange(lo[1], hi[1])[None, :, None] - c[1],
               np.arange(lo[2], hi[2])[None, None, :] - c[2])
    d = _shape_distance(offsets, radius_vox, attrs["shape"],
                        attrs["surface"] == "spiculated" or attrs["specific_features"] == "spiculation", rng)
    if region == "gallbladder_lumen":     # stones lie in bile, never in the wall
        d = np.where(region_mask[box], d, np.inf)
    # A lesion of one organ never paints over another: drawn as a blob of >= 21 mm over the anatomy, gallbladder and
    # pancreas tumours had about 40 % of their voxels in the liver, bowel or vessels on average, labelled as lesion
    # yet painted relative to the wrong tissue (a gallbladder tumour isodense to the wall is 30 HU below the liver),
    # and an organ map then placed them in the neighbour (README, CPU regime table).
    foreign = np.isin(anatomy.region_map[box], _foreign_regions(anatomy, disease.organ))   # [bx, by, bz]
    unblocked = d
    d = np.where(foreign, np.inf, d)
    # margin: smoothstep ramp over d in [1 - width, 1 + width]; ill-defined widens it, an unclear boundary
    # with the neighbour blurs it further. Lesion HU is fully reached inside 1 - width.
    width = MARGIN_WIDTH[attrs["surface"]] + (0.15 if close else 0.0)
    weight = _margin_weight(d, width)                                      # [bx, by, bz] in [0, 1]
    if close:     # the unclear boundary blurs into the neighbour's first layer of voxels, unlabelled
        touching = foreign & ndimage.binary_dilation(d < 1.0)
        weight = np.where(touching, UNCLEAR_BOUNDARY_BLEED * _margin_weight(unblocked, width), weight)
    base = anatomy.parenchyma(DENSITY_REFERENCE.get(region, region), phase)   # HU the density is relative to
    density = attrs["density"]
    hu = np.full(d.shape, DENSITY_ABSOLUTE.get(density, base + DENSITY_OFFSET.get(density, 0.0)), np.float32)
    if density == "mixed_ground_glass_solid":
        hu[d < 0.5] = 40.0
    feature = attrs["specific_features"]
    if feature == "fluid_density":
        hu[:] = FLUID_HU
    variation = attrs["density_variation"]
    if variation == "heterogeneous":
        hu += 30.0 * ndimage.gaussian_filter(rng.normal(size=d.shape), 1.0).astype(np.float32) * 2.5
    elif variation == "necrotic_core":
        hu[d < 0.5] = 15.0
    if feature == "cystic_degeneration":
        pockets = ndimage.gaussian_filter(rng.normal(size=d.shape), 1.2) > 0.25
        hu[pockets & (d < 0.7)] = FLUID_HU
    if feature == "calcification" and density != "markedly_hyperdense":
        hu[d < 0.25] = CALCIUM_HU
    if feature == "septation":
        plane = np.abs(offsets[0] * 0.7 + offsets[1] * 0.7) < 0.6
        hu[plane & (d < 0.95)] = base + 40.0
    # findings around the lesion first, so the lesion itself is painted on top of them
    _render_secondary_feature(image, anatomy, feature, c, box, d, phase)
    sub = image[box]
    sub[:] = sub * (1 - weight) + hu * weight
    label = np.zeros(image.shape, bool)
    label[box] = d < 1.0
    return RenderedLesion(label, c, dict(attrs))


def _margin_weight(d: np.ndarray, width: float) -> np.ndarray:
    """Lesion weight per voxel from its normalised distance d: 1 inside 1 - width, a smoothstep to 0 at 1 + width."""
    t = np.clip((d - (1.0 - width)) / (2.0 * width), 0.0, 1.0)
    return (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _foreign_regions(anatomy: Anatomy, organ: str) -> List[int]:
    """Region indices (of ``anatomy.region_map``) a lesion of ``organ`` never covers: another organ's regions (its
    lumen included) and the structures no lesion replaces."""
    return [i for i, name in enumerate(anatomy.region_names)
            if REGION_ORGAN.get(name, LUMEN_ORGAN.get(name, organ)) != organ or name in NEVER_REPLACED]


def _render_secondary_feature(image, anatomy: Anatomy, feature: str, c, box, d, phase: str) -> None:
    """Findings outside the lesion (not labelled): dilated ducts, stranding, atrophy, hydronephrosis."""
    if feature == "pancreatic_duct_dilatation":
        panc = anatomy.organ_mask("pancreas")
        # duct: thin fluid band along the gland's centre line (the eroded core of the pancreas)
        core = ndimage.binary_erosion(panc, iterations=2)
        image[core] = FLUID_HU
    elif feature == "bile_duct_dilatation":
        image[ndimage.binary_erosion(anatomy.mask("hepatic_vessels"), iterations=1)] = FLUID_HU
    elif feature == "perilesional_stranding":
        sub = image[box]
        near = (d > 1.0) & (d < 2.0) & (sub < -50)
        sub[near] = -40.0      # fat stranding: fat gets denser
    elif feature == "parenchymal_atrophy":
        tail = anatomy.mask("pancreas_tail")
        rim = tail & ~ndimage.binary_erosion(tail, iterations=1)
        image[rim] = -100.0    # thinned gland: its outer rim replaced by fat
    elif feature == "hydronephrosis":
        side = "left_kidney" if c[0] >= image.shape[0] // 2 else "right_kidney"
        kidney = anatomy.mask(side)
        pelvis = ndimage.binary_erosion(kidney, iterations=2)
        image[pelvis & (image < 300)] = FLUID_HU
