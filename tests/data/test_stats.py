"""Task statistics against a slow flood-fill reference and hand-derived cases."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from metricseg.data.stats import summarise, task_statistics
from metricseg.data.task import Case, Task


def _flood_fill_sizes(mask: np.ndarray) -> list[int]:
    """Component sizes with face connectivity by breadth-first search (independent of scipy)."""
    seen = np.zeros_like(mask, dtype=bool)
    sizes = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        queue, size = deque([start]), 0
        while queue:
            p = queue.popleft()
            size += 1
            for axis in range(mask.ndim):
                for step in (-1, 1):
                    q = list(p)
                    q[axis] += step
                    q = tuple(q)
                    if 0 <= q[axis] < mask.shape[axis] and mask[q] and not seen[q]:
                        seen[q] = True
                        queue.append(q)
        sizes.append(size)
    return sorted(sizes, reverse=True)


def _case(label: np.ndarray, case_id: str = "c") -> Case:
    return Case(case_id, label[None].astype(np.float32), label.astype(np.int64))


@settings(max_examples=40, deadline=None)
@given(arrays(np.int64, st.sampled_from([(7, 9), (4, 5, 6)]), elements=st.integers(0, 2)))
def test_matches_flood_fill_reference(label):
    stats = task_statistics([_case(label)], 3)[0]
    np.testing.assert_allclose(stats.foreground_ratio, [(label == k).mean() for k in range(3)])
    for k in (1, 2):
        assert stats.component_sizes[k].tolist() == _flood_fill_sizes(label == k)
    assert stats.component_sizes[0].size == 0
    assert stats.num_objects.tolist() == [0, *(len(_flood_fill_sizes(label == k)) for k in (1, 2))]


def test_diagonal_pixels_join_only_with_full_connectivity():
    label = np.eye(4, dtype=np.int64)
    face = task_statistics([_case(label)], 2)[0]
    full = task_statistics([_case(label)], 2, connectivity=2)[0]
    assert face.component_sizes[1].tolist() == [1, 1, 1, 1]
    assert full.component_sizes[1].tolist() == [4]


def test_task_input_keeps_split_order_and_names():
    lab = np.zeros((4, 4), dtype=np.int64)
    lab[:2, :2] = 1
    task = Task(
        "t", 2, 2, 1, ["bg", "fg"], [_case(lab, "a")], [_case(lab, "b")], [_case(0 * lab, "c")]
    )
    stats = task_statistics(task)
    assert [(s.case_id, s.split) for s in stats] == [("a", "train"), ("b", "val"), ("c", "test")]
    row = summarise(stats, task.class_names)[0]
    assert row["present_in"] == 2 and row["cases"] == 3
    assert row["mean_ratio"] == pytest.approx(2 * 0.25 / 3)
    assert row["size_p50"] == 4.0 and row["objects_per_case"] == pytest.approx(2 / 3)


def test_errors_name_the_problem():
    lab = np.array([[0, 3]])
    with pytest.raises(ValueError, match="label value 3"):
        task_statistics([_case(lab, "bad")], 2)
    with pytest.raises(ValueError, match="num_classes"):
        task_statistics([_case(lab)])
    with pytest.raises(ValueError, match="connectivity"):
        task_statistics([_case(lab)], 4, connectivity=0)
