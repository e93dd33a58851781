"""Real-anatomy mode: a real CT plus TotalSegmentator-style organ masks become an ``Anatomy``.

Sub-regions are derived geometrically in LPS world coordinates (+x = patient left, +z = head):
liver left lobe = the liver's most patient-left 30 % (by world x), pancreas head/body/tail = thirds along its main
(PCA) axis with the head at the patient-right end, gallbladder wall = 1-voxel rim, colon segments by world x/z.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.phantoms.anatomy import REGION_TISSUE, Anatomy

# organ mask file stem -> region (regions of anatomy.py); liver/pancreas/gallbladder/colon are split below
_DIRECT = {"kidney_left": "left_kidney", "kidney_right": "right_kidney", "spleen": "spleen", "aorta": "aorta",
           "inferior_vena_cava": "ivc", "lung_upper_lobe_left": "lung_left_upper_lobe",
           "lung_lower_lobe_left": "lung_left_lower_lobe", "lung_upper_lobe_right": "lung_right_upper_lobe",
           "lung_middle_lobe_right": "lung_right_middle_lobe", "lung_lower_lobe_right": "lung_right_lower_lobe"}


def _read_xyz(path: Path) -> Tuple[np.ndarray, sitk.Image]:
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0), img     # [Z, Y, X] -> [X, Y, Z]


def _world(img: sitk.Image, idx: np.ndarray) -> np.ndarray:
    """Voxel indices [N, 3] (x, y, z) -> LPS world coordinates [N, 3]."""
    d = np.array(img.GetDirection()).reshape(3, 3)
    return (idx * np.array(img.GetSpacing())) @ d.T + np.array(img.GetOrigin())


def _assign_by(mask: np.ndarray, values: np.ndarray, edges, names, rmap, region_names) -> None:
    idx = np.nonzero(mask)
    for name, lo, hi in zip(names, edges[:-1], edges[1:]):
        sel = (values >= lo) & (values <= hi)
        rmap[tuple(i[sel] for i in idx)] = region_names.index(name)


def load_real_anatomy(ct_file: Path, organs_dir: Path) -> Tuple[np.ndarray, Anatomy, sitk.Image, List[str]]:
    """(CT HU [X, Y, Z] float32, anatomy, reference image, missing organ files)."""
    ct_file, organs_dir = Path(ct_file), Path(organs_dir)
    problems = []
    if not ct_file.is_file():
        problems.append(Problem(str(ct_file), "--background", "CT file not found"))
    if not organs_dir.is_dir():
        problems.append(Problem(str(organs_dir), "--organs", "organ mask folder not found"))
    if problems:
        raise MaleniaInputError(problems)
    ct, ref = _read_xyz(ct_file)
    names = ("outside",) + tuple(REGION_TISSUE)
    rmap = np.zeros(ct.shape, np.int16)
    missing = []

    def load(stem):
        f = organs_dir / f"{stem}.nii.gz"
        if not f.is_file():
            missing.append(stem)
            return None
        m, img = _read_xyz(f)
        if m.shape != ct.shape:
            raise MaleniaInputError(Problem(str(f), "", f"mask shape {m.shape} differs from the CT's {ct.shape}"))
        return m > 0

    for stem, region in _DIRECT.items():
        m = load(stem)
        if m is not None:
            rmap[m] = names.index(region)
    liver = load("liver")
    if liver is not None:
        wx = _world(ref, np.argwhere(liver))[:, 0]
        split = np.percentile(wx, 70)
        _assign_by(liver, wx, [-np.inf, split, np.inf], ["liver_right_lobe", "liver_left_lobe"], rmap, names)
    panc = load("pancreas")
    if panc is not None:
        pts = _world(ref, np.argwhere(panc))
        centred = pts - pts.mean(0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]
        if axis[0] < 0:            # orient head (patient right, low x) -> tail
            axis = -axis
        t = centred @ axis
        q = np.percentile(t, [100 / 3, 200 / 3])
        _assign_by(panc, t, [-np.inf, q[0], q[1], np.inf], ["pancreas_head", "pancreas_body", "pancreas_tail"],
                   rmap, names)
    gb = load("gallbladder")
    if gb is not None:
        rmap[gb] = names.index("gallbladder_wall")
        rmap[ndimage.binary_erosion(gb)] = names.index("gallbladder_lumen")
    colon = load("colon")
    if colon is not None:
        pts = _world(ref, np.argwhere(colon))
        x, z = pts[:, 0], pts[:, 2]
        x1, x2 = np.percentile(x, [30, 70])
        zmid, zlow = np.percentile(z, [50, 8])
        seg = np.where(x < x1, "colon_ascending", np.where(x > x2, "colon_descending",
                       np.where(z >= zmid, "colon_transverse", np.where(z < zlow, "rectum", "colon_sigmoid"))))
        idx = np.nonzero(colon)
        for name in np.unique(seg):
            sel = seg == name
            rmap[tuple(i[sel] for i in idx)] = names.index(str(name))
    # parenchyma HU: soft-tissue voxels only, so bowel gas / fat inside a mask does not drag the reference down
    measured = {}
    for i, n in enumerate(names):
        vals = ct[rmap == i]
        if i and vals.size:
            soft = vals if n.startswith("lung") else vals[(vals > -200) & (vals < 400)]
            measured[n] = float(np.median(soft if soft.size else vals))
    u = v = w = None
    return ct.astype(np.float32), Anatomy(rmap, names, (u, v, w), measured_hu=measured), ref, missing


def scan_phase(anatomy: Anatomy) -> str:
    """The paper's rule: mean HU of aorta and IVC below 80 means a non-contrast scan."""
    hu = [anatomy.measured_hu[r] for r in ("aorta", "ivc") if r in anatomy.measured_hu]
    if not hu:
        return "contrast_enhanced"
    return "non_contrast" if np.mean(hu) < 80 else "contrast_enhanced"


def present_regions(anatomy: Anatomy) -> List[str]:
    return [n for i, n in enumerate(anatomy.region_names) if i and (anatomy.region_map == i).any()]


_CACHE: Dict[Tuple[str, str], tuple] = {}


def cached_real_anatomy(ct_file: str, organs_dir: str) -> tuple:
    """Load once per process: every case of a dataset reuses the same background."""
    key = (str(ct_file), str(organs_dir))
    if key not in _CACHE:
        _CACHE[key] = load_real_anatomy(Path(ct_file), Path(organs_dir))
    return _CACHE[key]
