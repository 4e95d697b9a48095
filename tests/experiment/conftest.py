from __future__ import annotations

import pytest

from metricseg.experiment.spec import RunSpec

from ..train.conftest import _one_torch_thread  # noqa: F401 - autouse fixture, shared

#: a synthetic task small enough to train in a fraction of a second
TINY_2D = {"num_train": 4, "num_val": 2, "num_test": 3, "image_size": 32}
TINY_3D = {"num_train": 2, "num_val": 1, "num_test": 2, "image_size": 16}
TINY_TRAIN = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "channels": [4, 8]}


@pytest.fixture
def tiny_spec() -> RunSpec:
    return RunSpec("large-organ", "soft_dice", seed=0, task_options=TINY_2D, train=TINY_TRAIN)
