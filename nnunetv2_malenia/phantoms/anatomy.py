"""Analytic abdominal/thoracic anatomy on a voxel grid.

Axis convention (same as SimpleITK/ITK LPS world space): array index ``[x, y, z]`` where x grows towards the
patient's LEFT, y towards POSTERIOR, z towards SUPERIOR. Written with identity direction, so an axial slice shown
with x to the right (``preview.py``) is in radiological orientation: patient left on image right.
Normalised coordinates: u = x in [-1, 1], v = y in [-1, 1], w = z in [0, 1] (feet -> head). Abdomen occupies
w < 0.7, lungs w >= 0.7.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

# region name -> tissue used for its HU (phase.py). Order = painting order (later wins).
REGION_TISSUE = {
    "body_fat": "fat", "muscle": "muscle", "visceral_fat": "fat", "spine": "bone", "aorta": "aorta", "ivc": "ivc",
    "lung_left_upper_lobe": "lung", "lung_left_lower_lobe": "lung", "lung_right_upper_lobe": "lung",
    "lung_right_middle_lobe": "lung", "lung_right_lower_lobe": "lung",
    "liver_right_lobe": "liver", "liver_left_lobe": "liver", "hepatic_vessels": "hepatic_vessels",
    "spleen": "spleen", "right_kidney": "kidney", "left_kidney": "kidney",
    "pancreas_head": "pancreas", "pancreas_body": "pancreas", "pancreas_tail": "pancreas",
    "gallbladder_wall": "gallbladder_wall", "gallbladder_lumen": "bile",
    "colon_ascending": "colon_wall", "colon_transverse": "colon_wall", "colon_descending": "colon_wall",
    "colon_sigmoid": "colon_wall", "rectum": "colon_wall", "bowel_lumen": "bowel_gas",
}
# organ (knowledge-table 'organ') -> its sub-regions (vocabulary location keys)
ORGAN_REGIONS = {
    "liver": ("liver_left_lobe", "liver_right_lobe", "hepatic_vessels"),
    "kidney": ("left_kidney", "right_kidney"),
    "pancreas": ("pancreas_head", "pancreas_body", "pancreas_tail"),
    "gallbladder": ("gallbladder_lumen", "gallbladder_wall"),
    "spleen": ("spleen",),
    "colon": ("colon_ascending", "colon_transverse", "colon_descending", "colon_sigmoid", "rectum"),
    "lung": ("lung_left_upper_lobe", "lung_left_lower_lobe", "lung_right_upper_lobe", "lung_right_middle_lobe",
             "lung_right_lower_lobe"),
}
REGION_ORGAN = {r: o for o, rs in ORGAN_REGIONS.items() for r in rs}
LOCATION_KEYS = tuple(REGION_ORGAN)      # the sub-regions a lesion's location can name, in a fixed order


@dataclass
class Anatomy:
    region_map: np.ndarray              # [X, Y, Z] int16, index into region_names (0 = outside body)
    region_names: Tuple[str, ...]       # ("outside", *REGION_TISSUE)
    coords: Tuple[np.ndarray, ...]      # u, v, w each [X, Y, Z] float32 (broadcast views)
    measured_hu: Optional[Dict[str, float]] = None   # real CT: region -> median HU, replaces the phase table

    def parenchyma(self, region: str, phase: str) -> float:
        if self.measured_hu is not None and region in self.measured_hu:
            return self.measured_hu[region]
        return parenchyma_hu(region, phase)

    def mask(self, region: str) -> np.ndarray:
        return self.region_map == self.region_names.index(region)

    def organ_mask(self, organ: str) -> np.ndarray:
        ids = [self.region_names.index(r) for r in ORGAN_REGIONS[organ] if r in self.region_names]
        return np.isin(self.region_map, ids)


def _grid(shape: Tuple[int, int, int]):
    u = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None, None]   # [X, 1, 1]
    v = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :, None]   # [1, Y, 1]
    w = np.linspace(0, 1, shape[2], dtype=np.float32)[None, None, :]    # [1, 1, Z]
    return u, v, w


class _Jitter:
    """Per-case random shifts/scales plus a smooth low-frequency wobble of each surface."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def ellipsoid(self, coords, center, radii, wobble=0.08):
        u, v, w = coords
        c = np.asarray(center) + self.rng.uniform(-0.03, 0.03, 3)
        r = np.asarray(radii) * self.rng.uniform(0.9, 1.1, 3)
        q = ((u - c[0]) / r[0]) ** 2 + ((v - c[1]) / r[1]) ** 2 + ((w - c[2]) / r[2]) ** 2
        k = self.rng.uniform(2, 5, 3)
        ph = self.rng.uniform(0, 2 * np.pi, 3)
        bump = wobble * (np.sin(k[0] * u + ph[0]) + np.sin(k[1] * v + ph[1]) + np.sin(k[2] * w * 2 + ph[2])) / 3
        return q < (1 + bump) ** 2

    def tube(self, coords, p0, p1, radius):
        """Points within ``radius`` of segment p0-p1 (returns mask and position t in [0, 1] along it)."""
        u, v, w = coords
        p0 = np.asarray(p0) + self.rng.uniform(-0.02, 0.02, 3)
        p1 = np.asarray(p1) + self.rng.uniform(-0.02, 0.02, 3)
        d = p1 - p0
        t = ((u - p0[0]) * d[0] + (v - p0[1]) * d[1] + (w - p0[2]) * d[2]) / float(d @ d)
        t = np.clip(t, 0, 1)
        dist2 = (u - p0[0] - t * d[0]) ** 2 + (v - p0[1] - t * d[1]) ** 2 + (w - p0[2] - t * d[2]) ** 2
        return dist2 < radius ** 2, t


def build_anatomy(shape: Tuple[int, int, int], rng: np.random.Generator) -> Anatomy:
    coords = _grid(shape)
    u, v, w = coords
    j = _Jitter(rng)
    full = np.ones(shape, bool)
    names = ("outside",) + tuple(REGION_TISSUE)
    rmap = np.zeros(shape, np.int16)

    def paint(region, mask):
        rmap[mask & full] = names.index(region)

    ab = rng.uniform(0.88, 0.95), rng.uniform(0.66, 0.74)
    body = (u / ab[0]) ** 2 + (v / ab[1]) ** 2 < 1
    inner = (u / (ab[0] - 0.08)) ** 2 + (v / (ab[1] - 0.08)) ** 2 < 1
    cavity = (u / (ab[0] - 0.15)) ** 2 + (v / (ab[1] - 0.14)) ** 2 < 1
    paint("body_fat", body)
    paint("muscle", inner)
    paint("visceral_fat", cavity)
    paint("spine", ((u / 0.12) ** 2 + ((v - 0.45) / 0.11) ** 2 < 1) & full)
    thorax = w >= 0.7
    # lungs: two half-ellipsoids beside the mediastinum, split into lobes by oblique fissures
    for side, sgn in (("left", 1), ("right", -1)):
        lung = j.ellipsoid(coords, (sgn * 0.42, 0.0, 0.92), (0.33, 0.5, 0.3), wobble=0.04) & thorax & cavity
        fissure = w - 0.25 * v  # oblique: upper lobe anterior-superior
        upper = lung & (fissure > 0.86)
        paint(f"lung_{side}_lower_lobe", lung & ~upper)
        if side == "right":
            middle = upper & (fissure < 0.93) & (v < -0.1)
            paint("lung_right_upper_lobe", upper & ~middle)
            paint("lung_right_middle_lobe", middle)
        else:
            paint("lung_left_upper_lobe", upper)
    abdomen = w < 0.7
    liver = j.ellipsoid(coords, (-0.3, -0.05, 0.57), (0.45, 0.45, 0.16)) & abdomen & cavity
    split_u = -0.05 + rng.uniform(-0.04, 0.04)   # falciform plane: left lobe lies to the patient's left
    paint("liver_right_lobe", liver & (u < split_u))
    paint("liver_left_lobe", liver & (u >= split_u))
    vessel, _ = j.tube(coords, (-0.05, 0.15, 0.56), (-0.55, -0.1, 0.6), 0.045)
    paint("hepatic_vessels", vessel & liver)
    paint("spleen", j.ellipsoid(coords, (0.52, 0.28, 0.55), (0.16, 0.22, 0.13)) & cavity)
    paint("right_kidney", j.ellipsoid(coords, (-0.4, 0.33, 0.36), (0.12, 0.13, 0.13)) & cavity)
    paint("left_kidney", j.ellipsoid(coords, (0.4, 0.33, 0.4), (0.12, 0.13, 0.13)) & cavity)
    panc, t = j.tube(coords, (-0.12, -0.02, 0.46), (0.42, 0.18, 0.5), 0.065)
    paint("pancreas_head", panc & (t < 1 / 3))
    paint("pancreas_body", panc & (t >= 1 / 3) & (t < 2 / 3))
    paint("pancreas_tail", panc & (t >= 2 / 3))
    paint("aorta", ((u - 0.08) / 0.065) ** 2 + ((v - 0.22) / 0.065) ** 2 < 1)
    paint("ivc", ((u + 0.14) / 0.07) ** 2 + ((v - 0.18) / 0.06) ** 2 < 1)
    # gallbladder under the liver, clear of the transverse colon: lumen about 3 x 4 x 7 cm (a normal adult
    # gallbladder). Smaller and lower, the colon cut it down to 12-43 voxels at 48^3, too small for a stone.
    gb_center = (-0.34, -0.28, 0.52)
    gb = j.ellipsoid(coords, gb_center, (0.13, 0.15, 0.13), wobble=0.02) & cavity
    gb_lumen = j.ellipsoid(coords, gb_center, (0.095, 0.115, 0.1), wobble=0.0) & gb
    paint("gallbladder_wall", gb)
    paint("gallbladder_lumen", gb_lumen)
    segments = {
        "colon_ascending": ((-0.62, -0.05, 0.12), (-0.62, -0.1, 0.42)),
        "colon_transverse": ((-0.6, -0.45, 0.4), (0.6, -0.45, 0.42)),
        "colon_descending": ((0.62, 0.0, 0.42), (0.62, 0.0, 0.14)),
        "colon_sigmoid": ((0.58, 0.0, 0.13), (0.05, 0.2, 0.07)),
        "rectum": ((0.0, 0.35, 0.08), (0.0, 0.4, 0.0)),
    }
    for region, (p0, p1) in segments.items():
        tube, _ = j.tube(coords, p0, p1, 0.085)
        lumen, _ = j.tube(coords, p0, p1, 0.05)
        paint(region, tube & cavity & abdomen)
        paint("bowel_lumen", lumen & cavity & abdomen)
    return Anatomy(rmap, names, coords)


def render_anatomy(anatomy: Anatomy, phase: str) -> np.ndarray:
    """Noise-free HU image [X, Y, Z] float32 for the given phase."""
    from nnunetv2_malenia.phantoms.phase import tissue_hu

    lut = np.array([tissue_hu("air", phase)] + [tissue_hu(REGION_TISSUE[n], phase) for n in anatomy.region_names[1:]],
                   np.float32)
    return lut[anatomy.region_map]


def parenchyma_hu(region: str, phase: str) -> float:
    from nnunetv2_malenia.phantoms.phase import tissue_hu

    return tissue_hu(REGION_TISSUE[region], phase)
