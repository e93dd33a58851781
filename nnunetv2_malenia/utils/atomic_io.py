"""Write-then-rename helpers: a crash or a bad input never leaves a half-written file behind."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


def current_umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(path: PathLike, folder: bool = False) -> None:
    """Give a mkstemp/mkdtemp result the mode a plain ``open``/``mkdir`` would have given it. mkstemp creates
    0600 and mkdtemp 0700 (right for secrets, wrong for a dataset that colleagues and nnU-Net jobs of other users
    read): without this every file written through here ended up private, unlike the NIfTI files beside it."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    normal_mode(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json_atomic(obj, target: PathLike, indent: int = 2) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent, ensure_ascii=False)
            f.write("\n")


def write_text_atomic(text: str, target: PathLike) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_image_atomic(image, target: PathLike, file_ending: str) -> None:
    """Write a SimpleITK image (compressed) through a temporary file renamed onto ``target``. The temporary name
    keeps ``file_ending`` (".nii.gz", ".mha", ...) because ITK picks the writer by it."""
    import SimpleITK as sitk

    with atomic_path(target) as tmp:
        tmp_image = tmp.with_name(tmp.name + file_ending)
        try:
            sitk.WriteImage(image, str(tmp_image), useCompression=True)
            tmp_image.replace(tmp)
        finally:
            if tmp_image.exists():
                tmp_image.unlink()
