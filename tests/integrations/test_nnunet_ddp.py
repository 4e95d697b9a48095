"""The trainers' loss under DDP: each rank gets the loss of the global batch, counted once.

Two gloo processes hold unequal shards (2 and 3 images) of one float64 batch with nnU-Net
targets — label maps with an ignore label, and region masks with an ignore channel
(whose ignored voxels the adapter drops, so the ranks pass rows of different lengths).
With ``per_image=False`` (nnU-Net's ``batch_dice``) every rank's value equals the
one-process loss of the whole batch, and its logits gradient is ``W`` times the
whole-batch gradient of its shard: after DDP's ``1/W`` average of the parameter
gradients, the one-process gradient. Nothing is added on top of metricseg's own
all-reduce / all-gather, so nothing is counted twice. Per-voxel losses (CE, focal, and
the CE term of Dice + CE) stay per-process means, as nnU-Net's own cross-entropy.
Needs no nnU-Net.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from metricseg.integrations.nnunet import build_nnunet_loss

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # two spawned processes

WORLD = 2
SHARDS = [slice(0, 2), slice(2, 5)]
#: name -> (loss, regions)
CASES = {
    "soft_dice-labels": ("soft_dice", False),
    "lovasz_softmax-labels": ("lovasz_softmax", False),
    "generalized_dice-labels": ("generalized_dice", False),
    "soft_dice-regions": ("soft_dice", True),
    "lovasz_hinge-regions": ("lovasz_hinge", True),
}
#: per-voxel losses have no cross-process sum in metricseg: a per-process mean, like
#: nnU-Net's own cross-entropy (equal to the global mean when the shards are equal)
LOCAL_CASES = {"ce-labels": ("ce", False), "focal-regions": ("focal", True)}


def _batch(regions: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 2 if regions else 3, 6, 5, generator=g, dtype=torch.float64)
    ignored = torch.rand(5, 1, 6, 5, generator=g) < 0.2
    if regions:
        masks = (torch.rand(5, 2, 6, 5, generator=g) < 0.4).to(torch.uint8)
        return logits, torch.cat([masks, ignored.to(torch.uint8)], 1)
    labels = torch.randint(0, 3, (5, 1, 6, 5), generator=g).to(torch.int16)
    return logits, labels.masked_fill(ignored, 3)


def _loss(loss: str, regions: bool):
    return build_nnunet_loss(
        loss, {}, regions=regions, ignore_label=3, batch_dice=True, num_outputs=2 if regions else 3
    )


def _value_and_grad(loss, regions, logits, target):
    x = logits.clone().requires_grad_(True)
    value = _loss(loss, regions)(x, target)
    value.backward()
    return value.detach(), x.grad


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out = {}
        for name, (loss, regions) in {**CASES, **LOCAL_CASES}.items():
            logits, target = _batch(regions)
            out[name] = _value_and_grad(loss, regions, logits[SHARDS[rank]], target[SHARDS[rank]])
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results() -> list[dict]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(WORLD, os.path.join(tmp, "init"), tmp), nprocs=WORLD, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(WORLD)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_rank_gets_the_whole_batch_loss_and_its_share_of_the_gradient(rank_results, name):
    loss, regions = CASES[name]
    logits, target = _batch(regions)
    whole_value, whole_grad = _value_and_grad(loss, regions, logits, target)
    for rank, shard in enumerate(SHARDS):
        value, grad = rank_results[rank][name]
        torch.testing.assert_close(value, whole_value, rtol=0, atol=1e-12)
        torch.testing.assert_close(grad / WORLD, whole_grad[shard], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(LOCAL_CASES))
def test_per_voxel_losses_stay_per_process(rank_results, name):
    loss, regions = LOCAL_CASES[name]
    logits, target = _batch(regions)
    for rank, shard in enumerate(SHARDS):
        local_value, local_grad = _value_and_grad(loss, regions, logits[shard], target[shard])
        value, grad = rank_results[rank][name]
        torch.testing.assert_close(value, local_value, rtol=0, atol=1e-12)
        torch.testing.assert_close(grad, local_grad, rtol=0, atol=1e-12)
