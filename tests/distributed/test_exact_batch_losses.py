"""Batch losses (``per_image=False``) under DDP equal the one-process whole-batch loss.

Two gloo processes on CPU hold unequal shards (2 and 3 images) of one float64
batch. The gradient convention checked here, exactly:

* every rank computes the **same** loss value, the loss of the whole batch;
* the gradient of rank ``r``'s loss with respect to its own logits is ``W``
  times the whole-batch gradient of those logits (the all-reduce / all-gather
  backward sums the gradients of all ``W`` identical losses);
* so after DDP averages parameter gradients over the ``W`` ranks, the parameter
  gradient equals the one-process whole-batch gradient — checked with a
  ``DistributedDataParallel`` model as well.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from metricseg.losses import lovasz, region

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # about 10 s: two spawned processes

WORLD = 2
#: rank r holds images SHARDS[r] of the batch (unequal sizes on purpose)
SHARDS = [slice(0, 2), slice(2, 5)]

#: name -> (function, options, binary?)
CASES = {
    "soft_dice": (region.soft_dice_loss, {}, False),
    "soft_dice_present_ignore": (
        region.soft_dice_loss,
        {"classes": "present", "ignore_index": 255},
        False,
    ),
    "soft_jaccard": (region.soft_jaccard_loss, {}, False),
    "soft_jaccard_sigmoid": (region.soft_jaccard_loss, {"activation": "sigmoid"}, "onehot"),
    "soft_tversky": (region.soft_tversky_loss, {"alpha": 0.3, "beta": 0.7}, False),
    "generalized_dice": (region.generalized_dice_loss, {}, False),
    "lovasz_softmax": (lovasz.lovasz_softmax_loss, {}, False),
    "lovasz_softmax_ignore_all": (
        lovasz.lovasz_softmax_loss,
        {"ignore_index": 255, "classes": "all"},
        False,
    ),
    "lovasz_hinge": (lovasz.lovasz_hinge_loss, {}, True),
    "lovasz_hinge_ignore": (lovasz.lovasz_hinge_loss, {"ignore_index": 255}, True),
    "lovasz_hinge_masks": (lovasz.lovasz_hinge_loss, {}, "onehot"),
}


def _batch(binary: bool | str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = 1 if binary is True else 3
    logits = torch.randn(5, c, 6, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2 if binary is True else c, (5, 6, 5), generator=g)
    # class 2 absent from the first shard, so "present" differs per shard
    if binary is not True:
        labels[:2][labels[:2] == 2] = 0
    ignored = torch.rand(5, 6, 5, generator=g) < 0.15
    labels[ignored] = 255
    if binary == "onehot":
        labels = labels.clamp_max(c - 1)
        return logits, torch.nn.functional.one_hot(labels, c).movedim(-1, 1).double()
    return logits, labels


def _target(name: str, labels: torch.Tensor) -> torch.Tensor:
    # losses without ignore_index get the ignored voxels as background
    if "ignore" in name or labels.dtype.is_floating_point:
        return labels
    return labels.masked_fill(labels == 255, 0)


def _value_and_grad(fn, logits, target, **options):
    x = logits.clone().requires_grad_(True)
    value = fn(x, target, per_image=False, **options)
    value.backward()
    return value.detach(), x.grad


def _model_grads(model, images, target, fn, options):
    model.zero_grad()
    fn(model(images), target, per_image=False, **options).backward()
    return [p.grad.clone() for p in model.parameters()]


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(2, 3, kernel_size=3, padding=1).double()


def _images() -> torch.Tensor:
    return torch.randn(5, 2, 6, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def _uneven_images(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank 0: two 6×5 images; rank 1: one 4×4 image (3 classes, float64)."""
    g = torch.Generator().manual_seed(11 + rank)
    shape = (2, 6, 5) if rank == 0 else (1, 4, 4)
    return (
        torch.randn(shape[0], 3, *shape[1:], generator=g, dtype=torch.float64),
        torch.randint(0, 3, shape, generator=g),
    )


def _gather_checks(rank: int) -> dict:
    from metricseg.distributed import all_gather_cat, barrier, is_main_process, world_size

    n = 2 + rank  # unequal sizes along dim 1
    x = torch.arange(3 * n, dtype=torch.float64).reshape(3, n) + 100 * rank
    x.requires_grad_(True)
    gathered = all_gather_cat(x, dim=1)
    weights = torch.arange(gathered.numel(), dtype=torch.float64).reshape(gathered.shape)
    (gathered * weights).sum().backward()
    mask = all_gather_cat(torch.tensor([rank == 0, True, False][: 1 + rank]))
    try:
        all_gather_cat(torch.zeros(2 + rank, 3), dim=1)
        mismatch = ""
    except ValueError as exc:
        mismatch = str(exc)
    barrier()
    return {
        "gathered": gathered.detach(),
        "grad": x.grad,
        "mask": mask,
        "mismatch": mismatch,
        "main": is_main_process(),
        "world": world_size(),
    }


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out = {}
        for name, (fn, options, binary) in CASES.items():
            logits, labels = _batch(binary)
            target = _target(name, labels)
            shard = SHARDS[rank]
            out[name] = _value_and_grad(fn, logits[shard], target[shard], **options)
            out[name + "/local"] = _value_and_grad(
                fn, logits[shard], target[shard], sync_across_processes=False, **options
            )
        # a DDP model: the averaged parameter gradients are the whole-batch ones
        _, labels = _batch(False)
        model = DistributedDataParallel(_tiny_model())
        for name in ("soft_dice", "lovasz_softmax"):
            fn, options, _ = CASES[name]
            shard = SHARDS[rank]
            out[name + "/ddp"] = _model_grads(
                model, _images()[shard], _target(name, labels)[shard], fn, options
            )
        # ranks with images of different sizes: the loss of all their voxels pooled
        for name in ("lovasz_softmax", "soft_dice"):
            fn, options, _ = CASES[name]
            logits, labels = _uneven_images(rank)
            out[name + "/uneven"] = _value_and_grad(fn, logits, labels, **options)
        out["gather"] = _gather_checks(rank)
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results() -> list[dict]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(_worker, args=(WORLD, init_file, tmp), nprocs=WORLD, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(WORLD)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_logit_gradients_equal_whole_batch(rank_results, name):
    fn, options, binary = CASES[name]
    logits, labels = _batch(binary)
    target = _target(name, labels)
    whole_value, whole_grad = _value_and_grad(fn, logits, target, **options)
    for rank, shard in enumerate(SHARDS):
        value, grad = rank_results[rank][name]
        torch.testing.assert_close(value, whole_value, rtol=0, atol=1e-12)
        # the convention: W × the whole-batch gradient of this rank's shard
        torch.testing.assert_close(grad / WORLD, whole_grad[shard], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sync_off_is_the_per_process_loss(rank_results, name):
    fn, options, binary = CASES[name]
    logits, labels = _batch(binary)
    target = _target(name, labels)
    for rank, shard in enumerate(SHARDS):
        local_value, local_grad = _value_and_grad(fn, logits[shard], target[shard], **options)
        value, grad = rank_results[rank][name + "/local"]
        torch.testing.assert_close(value, local_value, rtol=0, atol=1e-12)
        torch.testing.assert_close(grad, local_grad, rtol=0, atol=1e-12)
    # and the shards' losses really differ from the whole batch (the test can fail)
    whole, _ = _value_and_grad(fn, logits, target, **options)
    assert abs(float(rank_results[0][name + "/local"][0]) - float(whole)) > 1e-6


@pytest.mark.parametrize("name", ["soft_dice", "lovasz_softmax"])
def test_ddp_parameter_gradients_equal_whole_batch(rank_results, name):
    fn, options, _ = CASES[name]
    _, labels = _batch(False)
    whole = _model_grads(_tiny_model(), _images(), _target(name, labels), fn, options)
    for rank in range(WORLD):
        for got, want in zip(rank_results[rank][name + "/ddp"], whole):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_uneven_image_sizes_pool_all_voxels(rank_results):
    """Ranks with different image sizes: the loss of all voxels of all ranks, pooled."""
    shards = [_uneven_images(r) for r in range(WORLD)]
    # one "image" holding every voxel of the global batch, in rank order
    logits = torch.cat([x.transpose(0, 1).reshape(3, -1) for x, _ in shards], dim=1)[None]
    labels = torch.cat([y.reshape(-1) for _, y in shards])[None]
    sizes = [y.numel() for _, y in shards]
    for name in ("lovasz_softmax", "soft_dice"):
        fn, options, _ = CASES[name]
        whole_value, whole_grad = _value_and_grad(fn, logits, labels, **options)
        grads = whole_grad[0].split(sizes, dim=1)
        for rank, (x, _) in enumerate(shards):
            value, grad = rank_results[rank][name + "/uneven"]
            torch.testing.assert_close(value, whole_value, rtol=0, atol=1e-12)
            want = grads[rank].reshape(3, x.shape[0], -1).transpose(0, 1).reshape(x.shape)
            torch.testing.assert_close(grad / WORLD, want, rtol=0, atol=1e-12)


def test_all_gather_cat_unequal_sizes_gradient_and_errors(rank_results):
    x0 = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    x1 = torch.arange(9, dtype=torch.float64).reshape(3, 3) + 100
    want = torch.cat([x0, x1], dim=1)
    weights = torch.arange(15, dtype=torch.float64).reshape(3, 5)
    for rank, res in enumerate(rank_results):
        g = res["gather"]
        torch.testing.assert_close(g["gathered"], want, rtol=0, atol=0)
        # both ranks' sums use every slice: this rank's gradient is W × its weights
        mine = weights[:, :2] if rank == 0 else weights[:, 2:]
        torch.testing.assert_close(g["grad"], WORLD * mine, rtol=0, atol=0)
        assert g["mask"].dtype == torch.bool and g["mask"].tolist() == [True, False, True]
        other = "rank 1 holds shape (3, 3)" if rank == 0 else "rank 0 holds shape (2, 3)"
        assert other in g["mismatch"] and "must agree" in g["mismatch"]
        assert g["main"] == (rank == 0) and g["world"] == WORLD
