"""``--overlay``: one PNG per lesion, its central axial slice with the lesion outlined and its top description."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunetv2_malenia.evaluation.lesions import lesion_components
from nnunetv2_malenia.utils.atomic_io import atomic_path

# Abdominal soft-tissue window (W 400, L 40), what a radiologist would look at these lesions with.
WINDOW = (-160.0, 240.0)


def write_overlays(report: dict, image_file: str, seg_file: str, folder: Path) -> None:
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetArrayFromImage(sitk.ReadImage(image_file)).astype(np.float32)      # [Z, Y, X]
    components = lesion_components(sitk.GetArrayFromImage(sitk.ReadImage(seg_file)))
    for lesion, comp in zip(report["lesions"], components):
        full = np.zeros(image.shape, dtype=bool)
        full[comp.slices] = comp.mask
        z = int(round(np.argwhere(full)[:, 0].mean()))
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.imshow(np.clip(image[z], *WINDOW), cmap="gray")        # row 0 on top: anterior up for LPS scans
        ax.contour(full[z].astype(float), levels=[0.5], colors="red", linewidths=1.5)
        top = lesion["diseases"][0] if lesion.get("diseases") else {"name": lesion["disease"], "score": float("nan")}
        ax.set_title(f"{report['case']} lesion {lesion['id']}: {top['name']} ({top['score']:.2f})\n"
                     f"{lesion['volume_ml']:.1f} ml, slice z={z}", fontsize=9)
        ax.axis("off")
        with atomic_path(folder / f"{report['case']}_lesion{lesion['id']}.png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
        plt.close(fig)
