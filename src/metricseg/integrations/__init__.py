"""Integrations of metricseg's losses into other training frameworks (optional extras).

* :mod:`metricseg.integrations.nnunet` — nnU-Net v2 trainers, one per metricseg loss
  (``pip install 'metricseg[nnunet]'``).
"""
