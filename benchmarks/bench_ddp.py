"""Cost of exact batch statistics under DDP: synced vs per-process batch losses.

Two gloo processes on CPU, each holding half of a batch, time forward + backward
of the batch losses (``per_image=False``) with ``sync_across_processes`` on
(exact global loss: an all-reduce of the counts, or for Lovász an all-gather of
the probability rows and labels and a sort of the whole global batch) and off
(the per-process loss). Prints a Markdown table (median of the repeats, ms).

    python benchmarks/bench_ddp.py [--batch 8] [--classes 4] [--size 128] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def _worker(rank: int, world: int, init_file: str, args: argparse.Namespace, out: str) -> None:
    import torch
    import torch.distributed as dist

    from metricseg.losses import lovasz, region

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(rank)
    local = args.batch // world
    shape = (local, args.classes, args.size, args.size)
    logits = torch.randn(*shape, generator=g)
    labels = torch.randint(0, args.classes, (local, args.size, args.size), generator=g)
    rows = []
    for name, fn in (
        ("soft_dice", region.soft_dice_loss),
        ("soft_jaccard", region.soft_jaccard_loss),
        ("lovasz_softmax", lovasz.lovasz_softmax_loss),
    ):
        for sync in (False, True):
            times = []
            for _ in range(args.repeats + 1):
                x = logits.clone().requires_grad_(True)
                dist.barrier()
                t0 = time.perf_counter()
                fn(x, labels, per_image=False, sync_across_processes=sync).backward()
                times.append(time.perf_counter() - t0)
            rows.append((name, sync, 1e3 * statistics.median(times[1:])))
    if rank == 0:
        with open(out, "w") as f:
            for name, sync, ms in rows:
                f.write(f"{name}\t{sync}\t{ms:.2f}\n")
    dist.destroy_process_group()


def main() -> None:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="global batch (split over 2 ranks)")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="image side (2D)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.tsv")
        mp.spawn(_worker, args=(2, os.path.join(tmp, "init"), args, out), nprocs=2, join=True)
        rows = [line.split("\t") for line in open(out).read().splitlines()]
    print(
        f"2 gloo processes × {args.batch // 2} images of {args.classes} × {args.size}², "
        f"forward + backward, median of {args.repeats} (ms)\n"
    )
    print("| loss (per_image=False) | per process (sync off) | exact (sync on) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    by = {(n, s == "True"): float(ms) for n, s, ms in rows}
    for name in dict.fromkeys(n for n, _, _ in rows):
        off, on = by[(name, False)], by[(name, True)]
        print(f"| {name} | {off:.1f} | {on:.1f} | {on / off:.2f}× |")


if __name__ == "__main__":
    main()
