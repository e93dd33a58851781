"""``python -m nnunetv2_malenia.trainer_path`` prints the folder to put in ``nnUNet_extTrainer``.

    export nnUNet_extTrainer=$(python -m nnunetv2_malenia.trainer_path)
"""
from pathlib import Path

SHIM_FOLDER = Path(__file__).resolve().parent / "nnunet_shims"

if __name__ == "__main__":
    print(SHIM_FOLDER)
