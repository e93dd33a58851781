"""NIfTI writing with SimpleITK. Arrays are [X, Y, Z]; SimpleITK wants [Z, Y, X]."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunetv2_malenia.utils.atomic_io import write_image_atomic


def write_nifti(array_xyz: np.ndarray, spacing: Sequence[float], target: Path, origin=(0.0, 0.0, 0.0),
                direction=None) -> None:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))   # [Z, Y, X]
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        img.SetDirection(tuple(float(d) for d in direction))
    write_image_atomic(img, target, ".nii.gz")
