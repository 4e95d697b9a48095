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
