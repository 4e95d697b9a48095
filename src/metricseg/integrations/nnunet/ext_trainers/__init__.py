"""The folder that ``nnUNet_extTrainer`` points to (see :func:`metricseg.integrations.nnunet.ext_trainer_path`).

nnU-Net imports every module of this folder as a top-level module while it looks for a
trainer class by name, so the folder holds exactly one module, with a name no other
package uses.
"""
