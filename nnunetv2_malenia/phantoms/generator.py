"""One phantom case: anatomy + scan phase + lesions -> (image HU, label map, per-label rendered attributes)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from nnunetv2_malenia.attributes.knowledge_table import Disease
from nnunetv2_malenia.phantoms.anatomy import LOCATION_KEYS, ORGAN_REGIONS, Anatomy, build_anatomy, render_anatomy
from nnunetv2_malenia.phantoms.lesion_render import choose_attributes, render_lesion
from nnunetv2_malenia.phantoms.phase import NOISE_SD_HU, PHASES


@dataclass(frozen=True)
class PhantomConfig:
    size: Tuple[int, int, int] = (64, 64, 64)
    spacing: Tuple[float, float, float] = (5.0, 5.0, 5.0)     # mm; 64 voxels * 5 mm covers chest + abdomen
    labelled: Tuple[str, ...] = ()                            # diseases that get a label (label = index + 1)
    unlabelled: Tuple[str, ...] = ()                          # diseases rendered but left as background
    organ_labels: bool = False
    seed: int = 0
    background: Optional[str] = None                          # real-anatomy mode: CT file ...
    organs: Optional[str] = None                              # ... and its organ mask folder
    # Smallest lesion radius in voxels. 1.5 renders stones and small lesions as they come (a few dozen voxels);
    # short CPU schedules need 3 (see README, "CPU regime"): at 7 mm a 1.5-voxel lesion is 27 voxels in 110,592.
    min_lesion_radius: float = 1.5
    # Lesions per case, drawn uniformly in [min, max]. The CPU regime uses (2, 4): at 40 cases of 1-3 lesions each
    # soft-tissue disease had 7-9 lesions in the whole training set (README, "CPU regime").
    lesions_per_case: Tuple[int, int] = (1, 3)


@dataclass
class PhantomCase:
    image: np.ndarray                       # [X, Y, Z] int16 HU
    label: np.ndarray                       # [X, Y, Z] uint8
    phase: str
    records: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)   # label -> aspect -> values
    lesions: List[Tuple[str, Tuple[int, int, int], Dict[str, str]]] = field(default_factory=list)
    geometry: Optional[Tuple[tuple, tuple, tuple]] = None     # (spacing, origin, direction) of a real background
    # [X, Y, Z] uint8: LOCATION_KEYS index + 1 of the sub-region each voxel lies in, 0 = none (fat, bone, air...).
    # What an organ segmentation of the scan would give (lesions lie inside their region), for --location-maps.
    locations: Optional[np.ndarray] = None


def location_map(anatomy: Anatomy) -> np.ndarray:
    """[X, Y, Z] uint8 location map of an anatomy: LOCATION_KEYS index + 1 per voxel, 0 outside every location."""
    lookup = np.zeros(len(anatomy.region_names), np.uint8)                  # region index -> location label
    for index, name in enumerate(anatomy.region_names):
        if name in LOCATION_KEYS:
            lookup[index] = LOCATION_KEYS.index(name) + 1
    return lookup[anatomy.region_map]


def label_names(config: PhantomConfig) -> List[str]:
    names = list(config.labelled)
    if config.organ_labels:
        names += list(ORGAN_REGIONS)
    return names


def _union(records: Dict[str, Dict[str, List[str]]], name: str, attrs: Mapping[str, str]) -> None:
    per = records.setdefault(name, {})
    for aspect, value in attrs.items():
        values = per.setdefault(aspect, [])
        if value not in values:
            values.append(value)


def generate_case(diseases: Mapping[str, Disease], config: PhantomConfig, case_index: int) -> PhantomCase:
    # one Generator per case, derived from (seed, case index): any case is reproducible alone and in parallel
    rng = np.random.default_rng([config.seed, case_index])
    pool = list(config.labelled) + list(config.unlabelled)
    geometry, allowed_locations = None, None
    if config.background:
        from nnunetv2_malenia.phantoms.real_anatomy import cached_real_anatomy, present_regions, scan_phase

        ct, anatomy, ref, _ = cached_real_anatomy(config.background, config.organs)
        phase = scan_phase(anatomy)          # a real scan has its own phase; lesions are recorded with it
        allowed_locations = set(present_regions(anatomy))
        geometry = (ref.GetSpacing(), ref.GetOrigin(), ref.GetDirection())
        image = ct.copy()
        compatible = pool
        first = None
    else:
        anatomy = build_anatomy(config.size, rng)
        # The first lesion's disease first, then a phase it accepts: every labelled disease leads the same share
        # of cases. (Phase first would put half the cases in a phase only a few diseases accept: non-contrast
        # scans of the seen split can hold lung tumours and gallstones only.)
        leaders = [n for n in (config.labelled or pool) if diseases[n].value_keys["enhancement_status"]]
        first = leaders[int(rng.integers(len(leaders)))]
        phases = diseases[first].value_keys["enhancement_status"]
        phase = phases[int(rng.integers(len(phases)))]
        compatible = [n for n in pool if phase in diseases[n].value_keys["enhancement_status"]]
        image = render_anatomy(anatomy, phase)
    labelled_ok = [n for n in compatible if n in config.labelled] or compatible
    low, high = config.lesions_per_case
    n_lesions = int(rng.integers(low, high + 1))
    chosen = [first or labelled_ok[int(rng.integers(len(labelled_ok)))]]
    chosen += [compatible[int(rng.integers(len(compatible)))] for _ in range(n_lesions - 1)]
    label = np.zeros(image.shape, np.uint8)
    names = label_names(config)
    if config.organ_labels:
        for organ in ORGAN_REGIONS:
            label[anatomy.organ_mask(organ)] = names.index(organ) + 1
    case = PhantomCase(image=None, label=label, phase=phase, geometry=geometry, locations=location_map(anatomy))
    min_dim = min(config.size) if geometry is None else 220.0 / min(geometry[0])  # real CT: radii 7-20 mm
    for name in chosen:
        attrs = choose_attributes(diseases[name], phase, rng, allowed_locations)
        # varied sizes incl. small: radius 1.5 .. 9 % of the volume (about 2-6 voxels at 64^3)
        radius = float(rng.uniform(0.03, 0.09)) * min_dim
        if attrs["location"] == "gallbladder_lumen" or attrs["density"] == "markedly_hyperdense":
            radius = min(radius, 0.04 * min_dim)      # stones are small
        lesion = render_lesion(image, anatomy, diseases[name], attrs, max(radius, config.min_lesion_radius), rng)
        case.lesions.append((name, lesion.center, lesion.attributes))
        if name in config.labelled:
            label[lesion.label_mask] = names.index(name) + 1
            _union(case.records, name, lesion.attributes)
    if geometry is None:      # a real CT already has its own noise
        image += rng.normal(0.0, NOISE_SD_HU, image.shape).astype(np.float32)
    case.image = np.clip(np.round(image), -1024, 3071).astype(np.int16)
    return case
