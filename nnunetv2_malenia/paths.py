"""Where the shipped attribute tables live and where nnU-Net keeps datasets."""
from __future__ import annotations

import os
from pathlib import Path

from nnunetv2_malenia.errors import MaleniaInputError

_PACKAGE_DIR = Path(__file__).resolve().parent

# Name of the dataset attribute file that sits next to an nnU-Net raw dataset's dataset.json.
DATASET_ATTRIBUTES_FILENAME = "malenia_attributes.json"


def tables_dir() -> Path:
    """The ``attribute_tables`` folder: installed inside the package, or beside it in a source checkout."""
    for candidate in (_PACKAGE_DIR / "attribute_tables", _PACKAGE_DIR.parent / "attribute_tables"):
        if (candidate / "aspects.json").is_file():
            return candidate
    raise FileNotFoundError(f"attribute_tables/aspects.json not found next to {_PACKAGE_DIR}; reinstall the package")


def default_aspects_file() -> Path:
    return tables_dir() / "aspects.json"


def default_knowledge_table_file() -> Path:
    return tables_dir() / "knowledge_table.json"


def nnunet_folder(variable: str) -> Path:
    """An nnU-Net base folder from its environment variable, with a clear error when unset."""
    value = os.environ.get(variable)
    if not value:
        raise MaleniaInputError(f"environment variable {variable} is not set; nnU-Net needs nnUNet_raw, "
                                f"nnUNet_preprocessed and nnUNet_results (see README.md)")
    return Path(value)


def raw_dataset_folder(dataset_name_or_id: str) -> Path:
    """Resolve ``DATASET_NAME_OR_ID`` like nnU-Net's CLI does, in ``nnUNet_raw``."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    raw = nnunet_folder("nnUNet_raw")
    try:
        name = maybe_convert_to_dataset_name(dataset_name_or_id)
    except RuntimeError:
        # nnU-Net's message for two folders of one id also says "could not find"; name the folders instead
        from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets

        names = list(find_candidate_datasets(int(dataset_name_or_id)))
        if len(names) > 1:
            places = {v: os.environ.get(v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
            found = [f"{Path(p) / n}" for p in places.values() if p for n in names if (Path(p) / n).is_dir()]
            raise MaleniaInputError(f"dataset id {int(dataset_name_or_id)} is used by more than one dataset name: "
                                    f"{', '.join(names)} ({'; '.join(found)}). nnU-Net cannot tell them apart: "
                                    f"rename or remove all but one") from None
        raise MaleniaInputError(f"dataset {dataset_name_or_id!r} not found: no Dataset"
                                f"{int(dataset_name_or_id):03d}_* folder in nnUNet_raw={raw}, nnUNet_preprocessed="
                                f"{os.environ.get('nnUNet_preprocessed')}, nnUNet_results="
                                f"{os.environ.get('nnUNet_results')}") from None
    except ValueError:   # nnU-Net's answer to a name that is neither an id nor DatasetXXX_Name
        raise MaleniaInputError(f"{dataset_name_or_id!r}: give a dataset id (e.g. 501) or a name such as "
                                f"Dataset501_Kidney") from None
    return raw / name
