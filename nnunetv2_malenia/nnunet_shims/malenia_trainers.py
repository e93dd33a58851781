# Shim for nnU-Net's trainer lookup (nnUNet_extTrainer points at this folder, see README.md).
# nnU-Net imports this file as a top-level module and later drops it from sys.modules, so the classes must live in
# nnunetv2_malenia.training: re-exported here, they keep an importable, picklable home.
from nnunetv2_malenia.training.baselines import *  # noqa: F401,F403
from nnunetv2_malenia.training.trainer import nnUNetTrainerMalenia  # noqa: F401
from nnunetv2_malenia.training.variants import *  # noqa: F401,F403
