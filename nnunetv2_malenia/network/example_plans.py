"""Hand-written nnU-Net plans for tests and benchmarks (same layout as a planned ``nnUNetPlans.json``)."""
from __future__ import annotations

from typing import Sequence, Tuple

from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

ARCHITECTURES = {
    "PlainConvUNet": ("dynamic_network_architectures.architectures.unet.PlainConvUNet", "n_conv_per_stage"),
    "ResidualEncoderUNet": ("dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
                            "n_blocks_per_stage"),
}


def unet_plans(patch_size: Sequence[int], strides: Sequence[Sequence[int]], features: Sequence[int], *,
               architecture: str = "PlainConvUNet", batch_size: int = 2, configuration: str = "3d_fullres"
               ) -> Tuple[PlansManager, ConfigurationManager]:
    """One configuration with the architecture entry nnU-Net's planner writes (kernels 3, 2 convs per stage,
    instance norm, LeakyReLU); 2D or 3D follows ``len(patch_size)``."""
    dim = len(patch_size)
    n = len(strides)
    assert len(features) == n and all(len(s) == dim for s in strides), (
        f"need one stride of {dim} values and one feature count per stage; got strides={strides}, "
        f"features={features}")
    class_name, blocks_key = ARCHITECTURES[architecture]
    arch_kwargs = {
        "n_stages": n, "features_per_stage": list(features), "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
        "kernel_sizes": [[3] * dim for _ in range(n)], "strides": [list(s) for s in strides], blocks_key: [2] * n,
        "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
    }
    plans = {"dataset_name": "Dataset999_Example", "plans_name": "nnUNetPlans",
             "configurations": {configuration: {
                 "data_identifier": "nnUNetPlans_example", "preprocessor_name": "DefaultPreprocessor",
                 "batch_size": batch_size, "patch_size": list(patch_size),
                 "architecture": {"network_class_name": class_name, "arch_kwargs": arch_kwargs,
                                  "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}}}
    manager = PlansManager(plans)
    return manager, manager.get_configuration(configuration)


def reference_plan_96() -> Tuple[PlansManager, ConfigurationManager]:
    """nnU-Net's typical 3d_fullres plan at 96^3 (paper Table 9 setting): 6 stages, 32..320 features."""
    return unet_plans([96, 96, 96], [[1, 1, 1]] + [[2, 2, 2]] * 5, [32, 64, 128, 256, 320, 320])


def tiny_plan_48() -> Tuple[PlansManager, ConfigurationManager]:
    """The tiny CPU plan of the integration notes: 48^3, 4 stages, 32..256 features."""
    return unet_plans([48, 48, 48], [[1, 1, 1]] + [[2, 2, 2]] * 3, [32, 64, 128, 256])


def cpu_plan_48() -> Tuple[PlansManager, ConfigurationManager]:
    """The CPU regime's plan: tiny_plan_48 with every width halved (nnUNetv2_malenia_cpu_plans' ``3d_cpu``)."""
    from nnunetv2_malenia.training.cpu_plans import WIDTH_DIVISOR

    return unet_plans([48, 48, 48], [[1, 1, 1]] + [[2, 2, 2]] * 3, [f // WIDTH_DIVISOR for f in (32, 64, 128, 256)])
