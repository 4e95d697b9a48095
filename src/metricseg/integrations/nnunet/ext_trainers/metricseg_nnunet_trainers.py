"""The metricseg trainers, for nnU-Net's trainer lookup through ``nnUNet_extTrainer``.

nnU-Net imports this file as the top-level module ``metricseg_nnunet_trainers`` and
takes the class it was asked for from it. The classes are those of
:mod:`metricseg.integrations.nnunet.trainers` (the same objects), not copies.
"""

from metricseg.integrations.nnunet.trainers import *  # noqa: F403
from metricseg.integrations.nnunet.trainers import __all__  # noqa: F401
