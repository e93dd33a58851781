"""Shim modules for nnU-Net's nnUNet_extTrainer lookup only; import nothing from here."""
