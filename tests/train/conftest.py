"""Tiny tasks built in the test, so that training tests need no data module."""

from __future__ import annotations

import numpy as np
import pytest

from metricseg.data.task import Case, Task


def _disc_case(rng: np.random.Generator, shape: tuple[int, ...], case_id: str) -> Case:
    grid = np.indices(shape).astype(np.float32)
    centre = np.array([rng.uniform(s * 0.3, s * 0.7) for s in shape], np.float32)
    radius = rng.uniform(min(shape) * 0.12, min(shape) * 0.25)
    dist = np.sqrt(((grid - centre.reshape(-1, *[1] * len(shape))) ** 2).sum(0))
    label = (dist < radius).astype(np.int64)
    # a second class: the outer ring of the object
    label[(dist >= radius) & (dist < radius * 1.4)] = 2
    image = (label * 0.8 + rng.normal(0, 0.3, shape)).astype(np.float32)[None]
    return Case(case_id, image, label)


def make_task(spatial_dims: int = 2, n: tuple[int, int, int] = (12, 3, 4), seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    shape = (32, 32) if spatial_dims == 2 else (20, 20, 20)
    cases = [_disc_case(rng, shape, f"c{i:02d}") for i in range(sum(n))]
    a, b = n[0], n[0] + n[1]
    return Task(
        name=f"discs-{spatial_dims}d",
        spatial_dims=spatial_dims,
        num_classes=3,
        in_channels=1,
        class_names=["background", "disc", "ring"],
        train=cases[:a],
        val=cases[a:b],
        test=cases[b:],
        patch_size=(16, 16, 16) if spatial_dims == 3 else None,
    )


@pytest.fixture
def task2d() -> Task:
    return make_task(2)


@pytest.fixture
def task3d() -> Task:
    return make_task(3, n=(4, 2, 2))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks run fastest single-threaded, and two threads thrash on a busy 2-core CI box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
