"""Lovász-Softmax and Lovász hinge against a slow per-image, per-class reference."""

import pytest
import torch

from metricseg.losses import LovaszHingeLoss, lovasz_hinge_loss, lovasz_softmax_loss


def _ref_lovasz_grad(gt_sorted):
    """Algorithm 1 of Berman et al. 2018: gradient of the Lovász extension of Jaccard."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def _ref_softmax_flat(probas, labels, classes, weights):
    """probas (P, C), labels (P,): a Python loop over classes, autograd through sort."""
    c = probas.shape[1]
    losses, ws = [], []
    for k in range(c):
        fg = (labels == k).to(probas.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        if isinstance(classes, list) and k not in classes:
            continue
        if probas.shape[0] == 0:
            continue
        errors = (fg - probas[:, k]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        losses.append(torch.dot(errors_sorted, _ref_lovasz_grad(fg[perm])))
        ws.append(1.0 if weights is None else weights[k])
    if not losses:
        return probas.sum() * 0.0
    w = torch.tensor(ws, dtype=probas.dtype)
    return (torch.stack(losses) * w).sum() / w.sum()


def _ref_softmax(logits, labels, per_image, classes, ignore_index, weights):
    probs = torch.softmax(logits, 1)
    b, c = probs.shape[:2]
    p = probs.reshape(b, c, -1).transpose(1, 2)  # (B, P, C)
    y = labels.reshape(b, -1)
    if per_image:
        out = []
        for i in range(b):
            keep = (
                y[i] != ignore_index
                if ignore_index is not None
                else torch.ones_like(y[i], dtype=torch.bool)
            )
            out.append(_ref_softmax_flat(p[i][keep], y[i][keep], classes, weights))
        return torch.stack(out).mean()
    p, y = p.reshape(-1, c), y.reshape(-1)
    if ignore_index is not None:
        keep = y != ignore_index
        p, y = p[keep], y[keep]
    return _ref_softmax_flat(p, y, classes, weights)


@pytest.mark.parametrize("num_classes", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("classes", ["present", "all", "list"])
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_softmax_values_and_gradients_equal_slow_reference(
    num_classes, classes, per_image, ignore_index
):
    b, shape = 3, (5, 7)
    logits = torch.randn(b, num_classes, *shape, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, num_classes, (b, *shape))
    labels[1] = labels[1].clamp_max(num_classes - 2)  # a class absent from image 1
    if ignore_index is not None:
        labels[0, :2] = ignore_index
        labels[2] = ignore_index  # an image with no valid voxel
        labels[2, 0, 0] = 0
    cls = [0, num_classes - 1] if classes == "list" else classes
    weights = torch.rand(num_classes, dtype=torch.float64) + 0.5
    got = lovasz_softmax_loss(
        logits, labels, per_image=per_image, classes=cls, ignore_index=ignore_index,
        class_weights=weights,
    )  # fmt: skip
    ref = _ref_softmax(logits, labels, per_image, cls, ignore_index, weights)
    torch.testing.assert_close(got, ref)
    (g_got,) = torch.autograd.grad(got, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_got, g_ref)


def test_softmax_3d_and_unweighted_reference():
    logits = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 4, 5, 6))
    got = lovasz_softmax_loss(logits, labels, per_image=True)
    ref = _ref_softmax(logits, labels, True, "present", None, None)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(
        torch.autograd.grad(got, logits)[0], torch.autograd.grad(ref, logits)[0]
    )


def test_per_image_equals_mean_of_single_image_calls_and_reduction_none():
    logits = torch.randn(4, 3, 6, 6)
    labels = torch.randint(0, 3, (4, 6, 6))
    labels[2] = 0
    single = torch.stack(
        [lovasz_softmax_loss(logits[i : i + 1], labels[i : i + 1]) for i in range(4)]
    )
    torch.testing.assert_close(lovasz_softmax_loss(logits, labels, per_image=True), single.mean())
    torch.testing.assert_close(
        lovasz_softmax_loss(logits, labels, per_image=True, reduction="none"), single
    )


def test_one_hot_target_equals_label_map_and_soft_target_is_refused():
    logits = torch.randn(2, 4, 5, 5)
    labels = torch.randint(0, 4, (2, 5, 5))
    onehot = torch.nn.functional.one_hot(labels, 4).movedim(-1, 1)
    torch.testing.assert_close(
        lovasz_softmax_loss(logits, onehot), lovasz_softmax_loss(logits, labels)
    )
    with pytest.raises(ValueError, match="one-hot"):
        lovasz_softmax_loss(logits, onehot * 0.5)


def test_perfect_prediction_has_zero_loss():
    labels = torch.randint(0, 3, (2, 8, 8))
    probs = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).float()
    assert float(lovasz_softmax_loss(probs, labels, activation=None)) == 0.0


def _ref_hinge_flat(logits, labels):
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    return torch.dot(torch.relu(errors_sorted), _ref_lovasz_grad(labels[perm]))


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore_index", [None, -1])
@pytest.mark.parametrize("spatial", [(6, 7), (3, 4, 5)])
def test_hinge_binary_equals_reference(per_image, ignore_index, spatial):
    logits = torch.randn(3, 1, *spatial, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 2, (3, *spatial))
    if ignore_index is not None:
        labels[0, 0] = ignore_index
    x, y = logits.reshape(3, -1), labels.reshape(3, -1).double()
    keep = (
        labels.reshape(3, -1) != ignore_index
        if ignore_index is not None
        else torch.ones_like(y, dtype=torch.bool)
    )
    if per_image:
        ref = torch.stack([_ref_hinge_flat(x[i][keep[i]], y[i][keep[i]]) for i in range(3)]).mean()
    else:
        ref = _ref_hinge_flat(x[keep], y[keep])
    got = lovasz_hinge_loss(logits, labels, per_image=per_image, ignore_index=ignore_index)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(
        torch.autograd.grad(got, logits)[0], torch.autograd.grad(ref, logits)[0]
    )


def test_hinge_multilabel_is_mean_of_channels():
    logits = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    masks = torch.rand(2, 3, 5, 5) > 0.6
    got = LovaszHingeLoss(per_image=True)(logits, masks)
    ref = torch.stack(
        [
            torch.stack(
                [
                    _ref_hinge_flat(logits[i, k].reshape(-1), masks[i, k].reshape(-1).double())
                    for k in range(3)
                ]
            ).mean()
            for i in range(2)
        ]
    ).mean()
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("spatial", [(3, 4), (2, 3, 2)])
def test_gradcheck(spatial):
    logits = torch.randn(2, 3, *spatial, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, *spatial))
    labels.view(-1)[0] = 9
    binary = (labels == 1).long()
    for per_image in (True, False):
        assert torch.autograd.gradcheck(
            lambda x, p=per_image: lovasz_softmax_loss(x, labels, per_image=p, ignore_index=9),
            (logits,),
            fast_mode=True,
        )
        assert torch.autograd.gradcheck(
            lambda x, p=per_image: lovasz_hinge_loss(x[:, :1], binary, per_image=p),
            (logits,),
            fast_mode=True,
        )


def test_input_errors():
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(ValueError, match="lovasz_hinge_loss"):
        lovasz_softmax_loss(logits, labels, activation="sigmoid")
    with pytest.raises(ValueError, match="C = 1 channel"):
        lovasz_hinge_loss(logits, labels)
    with pytest.raises(ValueError, match="label 2, outside"):
        lovasz_hinge_loss(logits[:, :1], labels.clamp_min(2))
    with pytest.raises(ValueError, match="inside the class range"):
        lovasz_softmax_loss(logits, labels, ignore_index=0)
    with pytest.raises(ValueError, match=r"shape \(B, \*spatial\)"):
        lovasz_softmax_loss(logits, labels[:, :2])


# --- the CPU fast path: radix-sorted int64 keys, rows in blocks ---------------------------

from metricseg.losses import lovasz as lovasz_module  # noqa: E402


def _use_path(monkeypatch, fast):
    """fast: the radix-key sort (forced at any size and on any torch build) in blocks of a
    few rows; slow: one batched float sort of all rows."""
    monkeypatch.setattr(lovasz_module, "_cpu_radix_sort", lambda: fast)
    monkeypatch.setattr(lovasz_module, "_RADIX_MIN_ELEMENTS", 0)
    monkeypatch.setattr(lovasz_module, "_BLOCK_MIN_ELEMENTS", 64 if fast else 1 << 30)


def _both_paths(monkeypatch, fn, *inputs):
    """fn(*inputs) and its gradients, by the slow and by the fast path."""
    out = []
    for fast in (False, True):
        _use_path(monkeypatch, fast)
        value = fn(*inputs)
        out.append((value, torch.autograd.grad(value, inputs)))
    return out


def test_row_blocks_cover_all_rows_within_the_bounds():
    assert lovasz_module._row_blocks(8, 64**3) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert lovasz_module._row_blocks(16, 128 * 128) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert lovasz_module._row_blocks(3, 10) == [(0, 3)]  # small: one block
    assert lovasz_module._row_blocks(3, 2**20) == [(0, 1), (1, 2), (2, 3)]  # < 4 rows
    # large 3D: 28 (image, class) rows of 128³, four blocks of 7 rows, not 28 sorts
    assert lovasz_module._row_blocks(28, 128**3) == [(0, 7), (7, 14), (14, 21), (21, 28)]
    assert len(lovasz_module._row_blocks(1000, 4096)) == 4
    assert lovasz_module._row_blocks(7, 2**15) == [(0, 2), (2, 4), (4, 6), (6, 7)]


def test_sort_descending_keys_order_like_a_stable_float_sort(monkeypatch):
    _use_path(monkeypatch, True)
    errors = torch.rand(5, 300)
    errors[:, ::7] = errors[:, 1:2]  # ties within rows
    errors[1, 5] = -0.0
    errors[2, :3] = 0.0
    errors[3, 10:20] = float("-inf")
    errors[4, 0] = 1.0
    values, perm = lovasz_module._sort_descending(errors)
    ref_values, ref_perm = torch.sort(errors, dim=1, descending=True, stable=True)
    assert torch.equal(values, ref_values)
    assert torch.equal(perm, ref_perm)
    # NaN sorts after every error >= 0 of its row, and never leaves its row
    errors[0, 3] = float("nan")
    values, perm = lovasz_module._sort_descending(errors)
    assert torch.equal(perm.sort(1).values, torch.arange(300).expand(5, 300))
    valid = errors[0][errors[0] >= 0]
    assert torch.equal(values[0, :-1], torch.sort(valid, descending=True).values)
    assert bool(values[0, -1].isnan())


def test_sort_descending_without_an_output_aliasing_its_input(monkeypatch):
    real_sort = torch.sort

    def refuses_aliasing(*args, **kwargs):
        if "out" in kwargs:
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor")
        return real_sort(*args, **kwargs)

    _use_path(monkeypatch, True)
    monkeypatch.setattr(torch, "sort", refuses_aliasing)
    errors = torch.rand(3, 100)
    values, perm = lovasz_module._sort_descending(errors)
    ref_values, ref_perm = real_sort(errors, dim=1, descending=True, stable=True)
    assert torch.equal(values, ref_values) and torch.equal(perm, ref_perm)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("spatial", [(9, 11), (4, 5, 6)])
def test_softmax_fast_path_equals_batched_float_sort(monkeypatch, per_image, ignore_index, spatial):
    logits = torch.randn(3, 4, *spatial, requires_grad=True)
    labels = torch.randint(0, 4, (3, *spatial))
    labels[1] = labels[1].clamp_max(2)  # a class absent from image 1
    if ignore_index is not None:
        labels[0, :2] = ignore_index

    def loss(x):
        return lovasz_softmax_loss(x, labels, per_image=per_image, ignore_index=ignore_index)

    (ref, g_ref), (got, g_got) = _both_paths(monkeypatch, loss, logits)
    # random float32 errors have no ties: the same order, so the same numbers
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    torch.testing.assert_close(g_got, g_ref, rtol=0, atol=0)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("multilabel", [True, False])
def test_hinge_fast_path_equals_batched_float_sort(monkeypatch, per_image, multilabel):
    if multilabel:
        logits = torch.randn(2, 3, 7, 9, requires_grad=True)
        target = torch.rand(2, 3, 7, 9) > 0.5
        kw = {}
    else:
        logits = torch.randn(3, 1, 7, 9, requires_grad=True)
        target = torch.randint(0, 2, (3, 7, 9))
        target[0, 0] = -1
        kw = {"ignore_index": -1}

    def loss(x):
        return lovasz_hinge_loss(x, target, per_image=per_image, **kw)

    (ref, g_ref), (got, g_got) = _both_paths(monkeypatch, loss, logits)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    torch.testing.assert_close(g_got, g_ref, rtol=0, atol=0)


def test_fast_path_with_ties_equals_stable_reference(monkeypatch):
    """Probabilities on a coarse grid tie often: the radix keys break ties by index, as a
    stable sort does, so values and gradients equal the reference with a stable sort."""
    _use_path(monkeypatch, True)
    probs = torch.randint(0, 5, (2, 3, 10, 10)).float() + 1.0
    probs = (probs / probs.sum(1, keepdim=True)).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 10, 10))
    got = lovasz_softmax_loss(probs, labels, activation=None, per_image=True)
    ref = []
    for i in range(2):
        p, y = probs[i].reshape(3, -1), labels[i].reshape(-1)
        rows = []
        for k in range(3):
            fg = (y == k).float()
            errors = (fg - p[k]).abs()
            errors_sorted, perm = torch.sort(errors, descending=True, stable=True)
            rows.append(torch.dot(errors_sorted, _ref_lovasz_grad(fg[perm])))
        ref.append(torch.stack(rows).mean())
    ref = torch.stack(ref).mean()
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(
        torch.autograd.grad(got, probs)[0], torch.autograd.grad(ref, probs)[0]
    )


@pytest.mark.parametrize("per_image", [True, False])
def test_channel_slices_of_a_larger_tensor(per_image):
    """Inputs whose (B, C, N) rows cannot be viewed as (B·C, N) give the contiguous result."""
    big = torch.randn(2, 3, 5, 5)
    masks = torch.rand(2, 2, 5, 5) > 0.5
    torch.testing.assert_close(
        lovasz_hinge_loss(big[:, 1:3], masks, per_image=per_image),
        lovasz_hinge_loss(big[:, 1:3].contiguous(), masks, per_image=per_image),
    )
    probs = torch.softmax(torch.randn(2, 4, 5, 5), 1)
    sliced = torch.cat([probs, probs], 1)[:, 4:]  # equal to probs, not viewable as rows
    labels = torch.randint(0, 4, (2, 5, 5))
    kw = dict(activation=None, per_image=per_image)
    torch.testing.assert_close(
        lovasz_softmax_loss(sliced, labels, **kw), lovasz_softmax_loss(probs, labels, **kw)
    )


def test_fast_path_nan_stays_in_its_row(monkeypatch):
    _use_path(monkeypatch, True)
    logits = torch.randn(2, 3, 8, 8)
    labels = torch.randint(0, 3, (2, 8, 8))
    clean = lovasz_softmax_loss(logits, labels, per_image=True, reduction="none")
    logits[0, 1, 2, 2] = float("nan")
    dirty = lovasz_softmax_loss(logits, labels, per_image=True, reduction="none")
    assert bool(dirty[0].isnan())
    assert torch.equal(dirty[1], clean[1])
