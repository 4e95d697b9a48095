"""Loss modules as real modules, and ``validate_args`` (issue 12, item 4)."""

import inspect

import pytest
import torch

import metricseg.losses as L
from metricseg.losses import _common, lovasz, pixel, region

MODULES = {
    L.SoftDiceLoss: L.soft_dice_loss,
    L.SoftJaccardLoss: L.soft_jaccard_loss,
    L.SoftTverskyLoss: L.soft_tversky_loss,
    L.GeneralizedDiceLoss: L.generalized_dice_loss,
    L.LovaszSoftmaxLoss: L.lovasz_softmax_loss,
    L.LovaszHingeLoss: L.lovasz_hinge_loss,
    L.CrossEntropyLoss: L.cross_entropy_loss,
    L.WeightedCrossEntropyLoss: L.weighted_cross_entropy_loss,
    L.FocalLoss: L.focal_loss,
}


def keyword_options(fn):
    return {
        n: (p.default, p.annotation)
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: m.__name__)
def test_signature_is_explicit_and_equals_the_functional_form(module):
    sig = inspect.signature(module)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in sig.parameters.values())
    assert keyword_options(module) == keyword_options(MODULES[module])
    assert "validate_args" in sig.parameters


def test_soft_dice_signature_lists_its_options():
    params = inspect.signature(L.SoftDiceLoss).parameters
    assert list(params) == [
        "activation", "per_image", "classes", "ignore_index", "class_weights", "smooth",
        "squared", "log_loss", "reduction", "sync_across_processes", "validate_args",
    ]  # fmt: skip
    assert params["smooth"].default == 1e-5


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
        ({"smooth": -1}, ValueError, "smooth must be a finite number >= 0, got -1"),
        ({"smooth": float("nan")}, ValueError, "smooth must be a finite number"),
        ({"activation": "relu"}, ValueError, "activation must be one of"),
        ({"classes": "background"}, ValueError, "classes must be one of"),
        ({"classes": [0, 1.5]}, TypeError, "non-empty list of ints"),
        ({"per_image": "yes"}, TypeError, "per_image must be True or False"),
        ({"ignore_index": 2.0}, TypeError, "ignore_index must be an int"),
        ({"class_weights": [1.0, -2.0]}, ValueError, "class_weights must be finite and >= 0"),
        ({"class_weights": [[1.0]]}, ValueError, "1-D sequence"),
        ({"validate_args": 1}, TypeError, "validate_args must be True or False"),
    ],
)
def test_bad_options_raise_at_construction(options, error, message):
    with pytest.raises(error, match=message):
        L.SoftDiceLoss(**options)
    with pytest.raises(error, match=message):  # the functional form says the same
        L.soft_dice_loss(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long), **options)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: L.SoftTverskyLoss(alpha=-0.1), "alpha must be a finite number >= 0"),
        (lambda: L.GeneralizedDiceLoss(weight_type="cubic"), "weight_type must be one of"),
        (lambda: L.FocalLoss(gamma=-1.0), "gamma must be a finite number >= 0"),
        (lambda: L.FocalLoss(alpha=0.25), "scalar alpha=0.25 applies to activation='sigmoid'"),
        (lambda: L.FocalLoss(alpha=1.5, activation="sigmoid"), r"must lie in \[0, 1\]"),
        (lambda: L.WeightedCrossEntropyLoss(scheme="inverse"), "scheme must be one of"),
        (lambda: L.WeightedCrossEntropyLoss(scheme=[1, 2], class_frequencies=[1, 1]), "either"),
        (lambda: L.LovaszSoftmaxLoss(activation="sigmoid"), "use lovasz_hinge_loss"),
        (lambda: L.get("dice_ce", dice_weight=-1.0), "dice_weight must be a finite number"),
    ],
)
def test_each_loss_checks_its_own_options_at_construction(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("name", L.available())
def test_every_registered_loss_refuses_a_bad_reduction_when_built(name):
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.get(name, reduction="avg")


def test_class_weights_are_a_non_persistent_buffer_that_moves():
    loss = L.SoftDiceLoss(class_weights=[1, 2])
    assert isinstance(loss.class_weights, torch.Tensor)
    assert loss.class_weights.tolist() == [1.0, 2.0]
    assert "class_weights" not in loss.state_dict()
    moved = loss.to("meta")
    assert moved.class_weights.device.type == "meta"
    assert "class_weights=[1.0, 2.0]" in repr(L.SoftDiceLoss(class_weights=[1, 2]))
    # the buffer gives the value the functional form gives for the list
    x = torch.randn(2, 2, 5, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 5))
    w = [1 / 3, 2 / 3]
    torch.testing.assert_close(
        L.SoftDiceLoss(class_weights=w)(x, y), L.soft_dice_loss(x, y, class_weights=w)
    )
    focal = L.FocalLoss(alpha=[0.25, 0.75])
    assert focal.alpha.tolist() == [0.25, 0.75] and "alpha" not in focal.state_dict()
    torch.testing.assert_close(focal(x, y), L.focal_loss(x, y, alpha=[0.25, 0.75]))
    wce = L.WeightedCrossEntropyLoss(scheme=[1.0, 4.0])
    torch.testing.assert_close(wce(x, y), L.weighted_cross_entropy_loss(x, y, scheme=[1.0, 4.0]))
    assert L.CrossEntropyLoss().to("meta") is not None  # no weights: nothing to move


def test_describe_reads_the_module_signatures():
    assert L.describe("soft_dice").options == {
        n: d for n, (d, _) in keyword_options(L.SoftDiceLoss).items()
    }
    assert L.describe("bce").options["activation"] == "sigmoid"
    assert L.describe("weighted_ce").options["foreground_weight"] is None
    assert "validate_args" in L.describe("dice_ce").options


def test_cli_lists_the_new_options(capsys):
    from metricseg.cli import main

    assert main(["losses", "weighted_ce", "dice_ce"]) == 0
    out = capsys.readouterr().out
    assert "foreground_weight=None" in out and "validate_args=True" in out
    assert "classes=None" in out


# --- validate_args -----------------------------------------------------------------------------

VALUE_CHECKS = [
    (_common, ["check_dense_target", "check_probabilities", "_check_weight_values"]),
    (region, ["check_label_range"]),
    (pixel, ["check_label_range", "check_probabilities"]),
    (lovasz, ["check_label_range", "check_dense_target"]),
    (__import__("metricseg.counts", fromlist=["x"]), ["check_label_range", "check_dense_target"]),
]


def _cases():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g)
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    y[0, 0, 0] = 255
    dense = torch.nn.functional.one_hot(y.clamp(max=2), 3).movedim(-1, 1).double()
    probs = torch.softmax(x, 1)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    hinge_y = (y == 1).long()
    hinge_y[0, 0, 0] = 255
    return [
        (L.soft_dice_loss, (x, y), {"ignore_index": 255, "class_weights": w}),
        (L.soft_dice_loss, (x, dense), {}),
        (L.soft_dice_loss, (probs, y), {"activation": None, "ignore_index": 255}),
        (L.soft_tversky_loss, (x[:, :1], hinge_y), {"activation": "sigmoid", "ignore_index": 255}),
        (L.generalized_dice_loss, (x, y), {"ignore_index": 255, "classes": "foreground"}),
        (L.lovasz_softmax_loss, (x, y), {"ignore_index": 255, "class_weights": w}),
        (L.lovasz_softmax_loss, (x, dense), {}),
        (L.lovasz_hinge_loss, (x[:, :1], hinge_y), {"ignore_index": 255}),
        (L.lovasz_hinge_loss, (x, dense), {}),
        (L.cross_entropy_loss, (x, y), {"ignore_index": 255, "class_weights": w}),
        (L.cross_entropy_loss, (x, dense), {}),
        (L.cross_entropy_loss, (probs, y), {"activation": None, "ignore_index": 255}),
        (L.weighted_cross_entropy_loss, (x, y), {"ignore_index": 255}),
        (L.focal_loss, (x, dense), {"activation": "sigmoid", "alpha": 0.25}),
        (L.focal_loss, (x, y), {"ignore_index": 255, "alpha": [1.0, 2.0, 3.0]}),
    ]


def test_validate_args_false_runs_no_value_check_and_keeps_the_values(monkeypatch):
    cases = _cases()
    want = [fn(*args, **kw) for fn, args, kw in cases]

    def boom(*args, **kwargs):
        raise AssertionError("a value check ran although validate_args=False")

    for module, names in VALUE_CHECKS:
        for name in names:
            monkeypatch.setattr(module, name, boom)
    for (fn, args, kw), w in zip(cases, want):
        torch.testing.assert_close(fn(*args, **kw, validate_args=False), w, rtol=0, atol=0)
    # the modules pass it on, and the default still checks
    module = L.SoftDiceLoss(ignore_index=255, class_weights=[1.0, 2.0, 0.5], validate_args=False)
    torch.testing.assert_close(module(*cases[0][1]), want[0], rtol=0, atol=0)
    with pytest.raises(AssertionError, match="validate_args=False"):
        L.soft_dice_loss(*cases[0][1], ignore_index=255)


def test_validate_args_false_reads_no_tensor_value(monkeypatch):
    # a host sync is a read of a value: Tensor.__bool__, .item(), float(), .tolist()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 8, generator=g, requires_grad=True)
    y = torch.randint(0, 3, (2, 8, 8), generator=g)
    loss_fns = [L.SoftDiceLoss(validate_args=False), L.CrossEntropyLoss(validate_args=False),
                L.FocalLoss(validate_args=False), L.get("dice_ce", validate_args=False)]  # fmt: skip
    for attr in ("__bool__", "item", "__float__", "__int__", "tolist"):
        monkeypatch.setattr(
            torch.Tensor, attr, lambda *a, attr=attr: pytest.fail(f"Tensor.{attr} called")
        )
    for loss in loss_fns:
        loss(x, y).backward()
