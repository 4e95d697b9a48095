"""Speed and peak memory of metricseg's losses against SMP and MONAI, on the CPU.

Prints Markdown tables; not a test. From a clone, after ``pip install -e '.[bench]'``::

    python benchmarks/bench_losses.py                      # 2 threads, fresh inputs
    python benchmarks/bench_losses.py --threads 1
    python benchmarks/bench_losses.py --busy 2             # both cores held by spinners
    python benchmarks/bench_losses.py --cases dice-3d --rounds 3
    python benchmarks/bench_losses.py --reuse-inputs       # the same logits every call

Forward + backward of one loss per call. How it is measured (fresh inputs,
fresh processes, ``--busy``, memory): see ``benchmarks/_harness.py``.

Rows and their anchors:

* ``lovasz-2d`` (4, 4, 128, 128) and ``lovasz-3d`` (2, 4, 64, 64, 64):
  metricseg ``LovaszSoftmaxLoss(per_image=True)`` against SMP's
  ``LovaszLoss(mode="multiclass", per_image=True)`` (segmentation-models-pytorch
  0.6.0's ``losses/lovasz.py``, vendored in ``_smp_lovasz.py`` because that
  package needs torchvision; an installed SMP's file is used instead where
  there is one) and one ``torch.sort(errors, dim=1, descending=True)`` of the
  (B·C, N) float32 errors (values and indices), the "sort floor".
* ``dice-3d`` (2, 14, 96, 96, 96) with label-map targets: metricseg
  ``SoftDiceLoss(per_image=True)`` against MONAI ``DiceLoss(softmax=True,
  to_onehot_y=True)`` (per image too, ``batch=False``).

The loss values are printed side by side: they must agree.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
import types
from typing import Any

import _harness as H

LOVASZ_SHAPES = {"lovasz-2d": (4, 4, 128, 128), "lovasz-3d": (2, 4, 64, 64, 64)}
DICE_SHAPE = (2, 14, 96, 96, 96)
SHAPES = {**LOVASZ_SHAPES, "dice-3d": DICE_SHAPE}
IMPLS = {"lovasz-2d": ("metricseg", "smp", "sort"), "lovasz-3d": ("metricseg", "smp", "sort"),
         "dice-3d": ("metricseg", "monai")}  # fmt: skip
IMPL_NAMES = {
    "metricseg": "metricseg",
    "smp": "SMP `LovaszLoss`",
    "sort": "one `torch.sort` of (B·C, N)",
    "monai": "MONAI `DiceLoss(softmax, to_onehot_y)`",
}
#: (anchor impl, key, bound, sense) per case, idle and busy; "ge" bounds anchor / ours
TARGETS = {
    "idle": {
        "lovasz": [("smp", "median", 2.0, "ge"), ("sort", "median", 1.6, "le")],
        "dice": [("monai", "median", 0.45, "le"), ("monai", "peak_mib", 0.5, "le")],
    },
    "busy": {
        "lovasz": [("smp", "median", 1.5, "ge"), ("sort", "median", 2.0, "le")],
        "dice": [("monai", "median", 0.6, "le")],
    },
}


def smp_lovasz() -> tuple[types.ModuleType, str]:
    """SMP's lovasz module: an installed package's file (without its __init__), or the copy."""
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is not None and spec.submodule_search_locations:
        root = next(iter(spec.submodule_search_locations))
        for name, path in (
            ("segmentation_models_pytorch", root),
            ("segmentation_models_pytorch.losses", os.path.join(root, "losses")),
        ):
            pkg = types.ModuleType(name)
            pkg.__path__ = [path]
            sys.modules[name] = pkg
        version = importlib.metadata.version("segmentation-models-pytorch")
        module = importlib.import_module("segmentation_models_pytorch.losses.lovasz")
        return module, f"SMP {version} (installed)"
    import _smp_lovasz

    return _smp_lovasz, f"SMP {_smp_lovasz.SMP_VERSION} (vendored copy of its lovasz.py)"


def build(spec: dict[str, Any]) -> tuple[Any, Any]:
    """(make_inputs, call) of one row, for ``_harness.worker_main``."""
    import torch

    torch.manual_seed(0)
    case, impl, reuse = spec["case"], spec["impl"], spec["reuse"]
    shape = SHAPES[case]
    b, c = shape[:2]
    logits = torch.randn(shape, requires_grad=True)
    labels = torch.randint(0, c, (b, *shape[2:]))
    if impl == "sort":
        with torch.no_grad():
            probs = torch.softmax(logits, 1).reshape(b, c, -1)
            fg = labels.reshape(b, 1, -1) == torch.arange(c).view(1, c, 1)
            errors = (fg.float() - probs).abs().reshape(b * c, -1)
            del probs, fg

        def sort(e: torch.Tensor) -> float:
            torch.sort(e, dim=1, descending=True)
            return float("nan")

        return H.fresh_or_reused(reuse, errors), sort
    if impl == "metricseg":
        from metricseg.losses import LovaszSoftmaxLoss, SoftDiceLoss

        fn: Any = (
            LovaszSoftmaxLoss(per_image=True) if case != "dice-3d" else SoftDiceLoss(per_image=True)
        )
    elif impl == "smp":
        fn = smp_lovasz()[0].LovaszLoss(mode="multiclass", per_image=True)
    else:
        from monai.losses import DiceLoss

        fn = DiceLoss(softmax=True, to_onehot_y=True)
        labels = labels.unsqueeze(1)  # MONAI wants (B, 1, *spatial)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        loss = fn(x, y)
        loss.backward()
        return float(loss.detach())

    return H.fresh_or_reused(reuse, logits, labels), step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_common_args(parser, repeats=7, warmup=2)
    parser.add_argument("--cases", nargs="+", choices=list(SHAPES), default=list(SHAPES),
                        help="only these cases (default: all)")  # fmt: skip
    args = parser.parse_args(argv)
    H.check_common_args(parser, args)
    if args.worker:
        H.worker_main(args.worker, build)
        return 0
    import torch

    rows = [{"case": case, "impl": impl} for case in args.cases for impl in IMPLS[case]]
    print(H.header("Loss forward + backward, CPU", args, torch.__version__))
    if any(case.startswith("lovasz") for case in args.cases):
        print(f"SMP: {smp_lovasz()[1]}")
    res, before, after = H.run_rows(os.path.abspath(__file__), rows, args)
    print(H.load_line(before, after, args.busy))
    if any(r.get("first_call") for r in res.values()):
        print("peak memory: /proc/self/clear_refs not writable here, so the rise of "
              "ru_maxrss over the first call (code pages loaded on first use included)")  # fmt: skip
    print()
    print("| case | logits | implementation | median (ms) | best (ms) | median ÷ metricseg "
          "| peak extra memory (MiB) | memory ÷ metricseg | loss value |")  # fmt: skip
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        case, impl = row["case"], row["impl"]
        r, ours = res[(case, impl)], res[(case, "metricseg")]
        shape = "×".join(map(str, SHAPES[case]))
        if r.get("failed"):
            print(f"| {case} | {shape} | {IMPL_NAMES[impl]} | failed | | | | | |")
            continue
        print(
            f"| {case} | {shape} | {IMPL_NAMES[impl]} | {r['median'] * 1e3:.1f} "
            f"| {r['best'] * 1e3:.1f} | {H.fmt(H.ratio(r, ours, 'median'), '.2f', '×')} "
            f"| {H.fmt(r.get('peak_mib'))} | {H.fmt(H.ratio(r, ours, 'peak_mib'), '.2f', '×')} "
            f"| {r['value']:.6f} |"
        )
    state = "busy" if args.busy else "idle"
    print()
    print(f"Targets of issue 14 for a{'' if state == 'busy' else 'n'} {state} machine "
          f"({args.threads} thread(s)), judged on the median:")  # fmt: skip
    checks = []
    for case in args.cases:
        ours = res[(case, "metricseg")]
        for anchor, key, bound, sense in TARGETS[state][case.split("-")[0]]:
            theirs = res[(case, anchor)]
            what = "time" if key == "median" else "peak memory"
            if sense == "ge":
                name = f"{case}: {IMPL_NAMES[anchor]} {what} ÷ metricseg ≥ {bound}"
                value = H.ratio(theirs, ours, key)
            else:
                name = f"{case}: metricseg {what} ÷ {IMPL_NAMES[anchor]} ≤ {bound}"
                value = H.ratio(ours, theirs, key)
            checks.append((name, value, bound, sense))
    print("\n".join(H.targets_table(checks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
