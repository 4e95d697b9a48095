"""metricseg: Dice- and Jaccard-aware losses, metrics and theory for segmentation.

The core (``counts``, ``metrics``, ``losses``, ``theory``) needs only torch and
numpy; ``data``, ``train`` and ``experiment`` need the extras
(``pip install metricseg[train]``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("metricseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
