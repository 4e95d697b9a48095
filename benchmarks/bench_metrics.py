"""Per-class Dice of two label maps: metricseg vs MONAI DiceMetric vs one bincount (the floor).

Prints a Markdown table; not a test. Usage::

    python benchmarks/bench_metrics.py                 # (2, 128, 128, 128), 14 classes, CPU
    python benchmarks/bench_metrics.py --device cuda --repeats 50

* metricseg: ``metricseg.metrics.dice(pred, target, num_classes=14)`` on the label
  maps, input checks included, giving the ``(B, C)`` scores.
* MONAI: ``monai.metrics.DiceMetric(include_background=True, reduction="none")``
  given one-hot float tensors; the conversion from label maps (``monai.networks.
  utils.one_hot``) is counted, since that is what its users do.
* floor: one ``torch.bincount`` over a precomputed int64 index with as many
  entries as there are voxels, into ``B·C·C`` bins — the least any counting
  method can do.

Each method runs once to warm up, then ``--repeats`` times; the table gives the
median and the best (minimum) wall time. On a shared machine the best time is the
steadier of the two: other processes only ever add time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from metricseg.metrics import dice


def _time(
    fn: Callable[[], object], repeats: int, device: torch.device, clock: Callable[[], float]
) -> tuple[float, float]:
    """(median, best) time in seconds."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        sync()
        times.append(clock() - start)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="2,128,128,128", help="B,*spatial")
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--monai-repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: CPU time of this process (steadier on a shared "
        "machine; sums all threads, so use it with --threads 1)",
    )
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = tuple(int(s) for s in args.shape.split(","))
    c = args.classes
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, c, shape, generator=gen)
    noise = torch.randint(0, c, shape, generator=gen)
    pred = torch.where(torch.rand(shape, generator=gen) < 0.7, target, noise)
    target, pred = target.to(device), pred.to(device)
    index = torch.randint(0, shape[0] * c * c, (pred.numel(),), generator=gen).to(device)

    rows: list[tuple[str, tuple[float, float]]] = []
    ours = dice(pred, target, num_classes=c)
    rows.append(
        (
            "metricseg `dice` (label maps)",
            _time(lambda: dice(pred, target, num_classes=c), args.repeats, device, clock),
        )
    )
    rows.append(
        (
            "floor: one `torch.bincount`",
            _time(
                lambda: torch.bincount(index, minlength=shape[0] * c * c),
                args.repeats,
                device,
                clock,
            ),
        )
    )
    try:
        from monai.metrics import DiceMetric
        from monai.networks.utils import one_hot
    except ImportError:
        print("MONAI not installed: its row is left out")
    else:
        metric = DiceMetric(include_background=True, reduction="none")

        def monai_dice() -> torch.Tensor:
            return metric(one_hot(pred.unsqueeze(1), c), one_hot(target.unsqueeze(1), c))

        theirs = monai_dice()
        if not torch.allclose(
            ours.float(), theirs.float().to(ours.device), atol=1e-5, equal_nan=True
        ):
            raise SystemExit("metricseg and MONAI disagree; the timing would be meaningless")
        rows.append(
            (
                "MONAI `DiceMetric` (one-hot conversion counted)",
                _time(monai_dice, args.monai_repeats, device, clock),
            )
        )

    ours_med, ours_best = rows[0][1]
    print(
        f"\nPer-class Dice, label maps {shape}, {c} classes, {device}"
        f" ({torch.get_num_threads()} threads), torch {torch.__version__}, {args.clock} time\n"
    )
    print("| method | median (ms) | best (ms) | median / metricseg | best / metricseg |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (med, best) in rows:
        print(
            f"| {name} | {med * 1e3:.1f} | {best * 1e3:.1f} | {med / ours_med:.2f}× "
            f"| {best / ours_best:.2f}× |"
        )


if __name__ == "__main__":
    main()
