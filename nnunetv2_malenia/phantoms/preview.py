"""PNG mid-slices through each lesion (axial, radiological orientation) with the label outlined."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_preview(image_xyz: np.ndarray, label_xyz: np.ndarray, lesions, target_dir: Path, case_id: str,
                  direction=None) -> list:
    """``direction``: the image's direction cosines; axes whose index runs against LPS are flipped for display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (name, center, attrs) in enumerate(lesions):
        z = center[2]
        # transpose [X, Y] -> rows = y (anterior at top), columns = x (patient left on image right)
        sl = image_xyz[:, :, z].T
        lab = label_xyz[:, :, z].T
        cx, cy = center[0], center[1]
        if direction is not None and direction[0] < 0:     # index x runs to patient right: flip to radiological
            sl, lab, cx = sl[:, ::-1], lab[:, ::-1], sl.shape[1] - 1 - cx
        if direction is not None and direction[4] < 0:     # index y runs anterior: flip so anterior is on top
            sl, lab, cy = sl[::-1], lab[::-1], sl.shape[0] - 1 - cy
        fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
        ax.imshow(np.clip(sl, -200, 300), cmap="gray", vmin=-200, vmax=300)
        if lab.any():
            ax.contour(lab > 0, levels=[0.5], colors="r", linewidths=0.8)
        ax.plot(cx, cy, "y+", ms=6)
        ax.set_title(f"{name} z={z}\n{attrs.get('location')} {attrs.get('density')} {attrs.get('enhancement_status')}",
                     fontsize=7)
        ax.text(1, sl.shape[0] - 2, "R", color="w", fontsize=8)
        ax.text(sl.shape[1] - 5, sl.shape[0] - 2, "L", color="w", fontsize=8)
        ax.axis("off")
        path = target_dir / f"{case_id}_lesion{k}.png"
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
