"""NIfTI writing with SimpleITK. Arrays are [X, Y, Z]; SimpleITK wants [Z, Y, X]."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunetv2_malenia.utils.atomic_io import atomic_path


def write_nifti(array_xyz: np.ndarray, spacing: Sequence[float], target: Path, origin=(0.0, 0.0, 0.0),
                direction=None) -> None:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))   # [Z, Y, X]
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        img.SetDirection(tuple(float(d) for d in direction))
    with atomic_path(target) as tmp:
        # the temporary name must keep .nii.gz so ITK picks the gzip NIfTI writer
        tmp_nii = tmp.with_name(tmp.name + ".nii.gz")
        try:
            sitk.WriteImage(img, str(tmp_nii), useCompression=True)
            tmp_nii.replace(tmp)
        finally:
            if tmp_nii.exists():
                tmp_nii.unlink()
