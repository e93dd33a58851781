"""Converters from the public datasets the Malenia paper trained on (MSD lesion tasks, KiTS23) to nnU-Net raw
datasets with lesion labels named by knowledge-table disease and a filled ``malenia_attributes.json``."""
