"""Per-class Dice of two label maps: metricseg vs MONAI, torchmetrics and one bincount.

Prints Markdown tables; not a test. From a clone, after ``pip install -e '.[bench]'``::

    python benchmarks/bench_metrics.py                     # (2, 128, 128, 128), 14 classes
    python benchmarks/bench_metrics.py --threads 1
    python benchmarks/bench_metrics.py --busy 2            # both cores held by spinners
    python benchmarks/bench_metrics.py --reuse-inputs      # the same label maps every call

How it is measured (fresh inputs, fresh processes, ``--busy``, memory): see
``benchmarks/_harness.py``. Label maps are int64, 70 % of voxels agreeing.

* metricseg: ``metricseg.metrics.dice(pred, target, num_classes=C)`` on the
  label maps, input checks included, giving the ``(B, C)`` scores.
* MONAI: ``monai.metrics.DiceMetric(include_background=True,
  reduction="none")`` given one-hot float tensors; the conversion from label
  maps (``monai.networks.utils.one_hot``) is counted, since its users do that.
* torchmetrics: ``torchmetrics.functional.segmentation.dice_score(...,
  average="none", input_format="index")``, which takes label maps itself.
* one bincount: ``torch.bincount`` over an int64 index with as many entries
  as there are voxels, into ``B·C·C`` bins — the least any counting method
  can do (the index is an input, fresh like the others).

The mean of the ``(B, C)`` scores is printed per row: they must agree.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import _harness as H

IMPLS = ("metricseg", "bincount", "monai", "torchmetrics")
IMPL_NAMES = {
    "metricseg": "metricseg `dice` (label maps)",
    "bincount": "one `torch.bincount` over as many voxels",
    "monai": "MONAI `DiceMetric` (one-hot conversion counted)",
    "torchmetrics": "torchmetrics `dice_score` (label maps)",
}
#: (anchor, bound, sense): "ge" bounds anchor time / ours, "le" ours / anchor
TARGETS = {
    "idle": [("monai", 20.0, "ge"), ("bincount", 2.0, "le")],
    "busy": [("monai", 20.0, "ge"), ("bincount", 3.0, "le")],
}


def build(spec: dict[str, Any]) -> tuple[Any, Any]:
    """(make_inputs, call) of one row, for ``_harness.worker_main``."""
    import torch

    shape, c, impl = tuple(spec["shape"]), spec["classes"], spec["impl"]
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, c, shape, generator=gen)
    noise = torch.randint(0, c, shape, generator=gen)
    pred = torch.where(torch.rand(shape, generator=gen) < 0.7, target, noise)
    del noise

    def summary(scores: torch.Tensor) -> float:
        return float(scores.double().nanmean())

    if impl == "bincount":
        index = torch.randint(0, shape[0] * c * c, (pred.numel(),), generator=gen)

        def count(idx: torch.Tensor) -> float:
            torch.bincount(idx, minlength=shape[0] * c * c)
            return float("nan")

        return H.fresh_or_reused(spec["reuse"], index), count
    if impl == "metricseg":
        from metricseg.metrics import dice

        def call(p: torch.Tensor, t: torch.Tensor) -> float:
            return summary(dice(p, t, num_classes=c))
    elif impl == "monai":
        from monai.metrics import DiceMetric
        from monai.networks.utils import one_hot

        metric = DiceMetric(include_background=True, reduction="none")

        def call(p: torch.Tensor, t: torch.Tensor) -> float:
            return summary(metric(one_hot(p.unsqueeze(1), c), one_hot(t.unsqueeze(1), c)))
    else:
        from torchmetrics.functional.segmentation import dice_score

        def call(p: torch.Tensor, t: torch.Tensor) -> float:
            return summary(dice_score(p, t, c, average="none", input_format="index"))

    return H.fresh_or_reused(spec["reuse"], pred, target), call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_common_args(parser, repeats=15, warmup=2)
    parser.add_argument("--shape", default="2,128,128,128", help="B,*spatial")
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--anchor-repeats", type=int, default=5,
                        help="timed calls of MONAI and torchmetrics per round (default 5)")  # fmt: skip
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS),
                        help="only these rows (metricseg is always run)")  # fmt: skip
    args = parser.parse_args(argv)
    H.check_common_args(parser, args)
    if args.anchor_repeats < 1:
        parser.error(f"--anchor-repeats must be at least 1, got {args.anchor_repeats}")
    if args.worker:
        H.worker_main(args.worker, build)
        return 0
    import torch

    shape = [int(s) for s in args.shape.split(",")]
    impls = ["metricseg", *[i for i in args.impls if i != "metricseg"]]
    rows = [
        {"case": "dice-metric", "impl": impl, "shape": shape, "classes": args.classes,
         **({"repeats": args.anchor_repeats} if impl in ("monai", "torchmetrics") else {})}
        for impl in impls
    ]  # fmt: skip
    print(H.header(f"Per-class Dice, label maps {tuple(shape)}, {args.classes} classes, CPU",
                   args, torch.__version__))  # fmt: skip
    print(f"MONAI and torchmetrics: {args.anchor_repeats} timed calls per round")
    res, before, after = H.run_rows(os.path.abspath(__file__), rows, args)
    print(H.load_line(before, after, args.busy))
    print()
    print("| method | median (ms) | best (ms) | median ÷ metricseg | best ÷ metricseg "
          "| peak extra memory (MiB) | mean Dice |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ours = res[("dice-metric", "metricseg")]
    for impl in impls:
        r = res[("dice-metric", impl)]
        if r.get("failed"):
            print(f"| {IMPL_NAMES[impl]} | failed | | | | | |")
            continue
        print(
            f"| {IMPL_NAMES[impl]} | {r['median'] * 1e3:.1f} | {r['best'] * 1e3:.1f} "
            f"| {H.fmt(H.ratio(r, ours, 'median'), '.2f', '×')} "
            f"| {H.fmt(H.ratio(r, ours, 'best'), '.2f', '×')} "
            f"| {H.fmt(r.get('peak_mib'))} | {r['value']:.6f} |"
        )
    state = "busy" if args.busy else "idle"
    print()
    print(f"Targets of issue 14 for a{'' if state == 'busy' else 'n'} {state} machine "
          f"({args.threads} thread(s)), judged on the median:")  # fmt: skip
    checks = []
    for anchor, bound, sense in TARGETS[state]:
        if anchor not in impls:
            continue
        theirs = res[("dice-metric", anchor)]
        if sense == "ge":
            checks.append((f"{IMPL_NAMES[anchor]} time ÷ metricseg ≥ {bound:g}",
                           H.ratio(theirs, ours, "median"), bound, sense))  # fmt: skip
        else:
            checks.append((f"metricseg time ÷ {IMPL_NAMES[anchor]} ≤ {bound:g}",
                           H.ratio(ours, theirs, "median"), bound, sense))  # fmt: skip
    print("\n".join(H.targets_table(checks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
