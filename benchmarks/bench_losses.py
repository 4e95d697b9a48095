"""Speed and peak memory of metricseg's losses against SMP and MONAI, on the CPU.

    python benchmarks/bench_losses.py --threads 2    # the tables of the README
    python benchmarks/bench_losses.py --threads 1
    python benchmarks/bench_losses.py --cases dice-3d --repeats 30

Every (case, implementation) runs in two fresh subprocesses, so that imports,
allocator caches and earlier cases do not leak into the numbers:

* **time**: ``--warmup`` forward + backward calls, then the median of
  ``--repeats`` further calls, with the default allocator.
* **peak extra memory**: the same warm-up, then the rise of the process's
  resident memory over one forward + backward, inputs excluded: the peak
  (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call) minus
  the resident memory before it. This worker runs with glibc's mmap and trim
  thresholds fixed at 4 KiB, so that every large buffer is mapped when it is
  allocated and unmapped when it is freed: resident memory then follows the
  bytes really in use, including buffers allocated outside torch (tracemalloc
  sees none of torch's, torch's profiler none of the others). Where
  ``clear_refs`` cannot be written, the rise of ``ru_maxrss`` over the first
  call is used instead (it also counts code pages loaded on first use) and the
  table says so.

Implementations compared:

* Lovász-Softmax, ``per_image=True``, logits (4, 4, 128, 128) and
  (2, 4, 64, 64, 64): metricseg, SMP's ``LovaszLoss(mode="multiclass",
  per_image=True)`` (its module file loaded with importlib, since the package
  import needs timm), and the "sort floor" of issue 3: one batched
  ``torch.sort`` (values and indices) of the (B·C, N) float32 error tensor,
  built beforehand. metricseg sorts radix-keyed integer blocks instead
  (``metricseg.losses.lovasz``), so on the CPU it can run below this floor.
* Soft Dice, logits (2, 14, 96, 96, 96) with label-map targets: metricseg
  ``soft_dice_loss(per_image=True)`` and MONAI ``DiceLoss(softmax=True,
  to_onehot_y=True)`` (per image too, ``batch=False``).

The loss values of the implementations are printed next to each other so that
it is plain they compute the same thing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable

LOVASZ_SHAPES = {"lovasz-2d": (4, 4, 128, 128), "lovasz-3d": (2, 4, 64, 64, 64)}
DICE_SHAPE = (2, 14, 96, 96, 96)
CASES: list[tuple[str, str]] = [
    (case, impl) for case in LOVASZ_SHAPES for impl in ("metricseg", "smp", "sort-floor")
] + [("dice-3d", "metricseg"), ("dice-3d", "monai")]


def _load_smp_lovasz() -> types.ModuleType:
    """SMP's lovasz.py without running the package __init__ (which imports timm)."""
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("segmentation_models_pytorch is not installed")
    root = next(iter(spec.submodule_search_locations))
    for name, path in (
        ("segmentation_models_pytorch", root),
        ("segmentation_models_pytorch.losses", os.path.join(root, "losses")),
    ):
        pkg = types.ModuleType(name)
        pkg.__path__ = [path]
        sys.modules[name] = pkg
    return importlib.import_module("segmentation_models_pytorch.losses.lovasz")


#: glibc settings of the memory worker: fixed thresholds map and unmap every large buffer
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4096",
    "MALLOC_TRIM_THRESHOLD_": "4096",
    "MALLOC_TOP_PAD_": "0",
}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Reset the peak resident memory (VmHWM) to the current one; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _worker(case: str, impl: str, mode: str, repeats: int, warmup: int) -> dict[str, float]:
    import torch

    torch.manual_seed(0)
    if case.startswith("lovasz"):
        shape = LOVASZ_SHAPES[case]
        b, c = shape[:2]
        logits = torch.randn(shape, requires_grad=True)
        labels = torch.randint(0, c, (b, *shape[2:]))
        if impl == "metricseg":
            from metricseg.losses import LovaszSoftmaxLoss

            loss_fn: Callable = LovaszSoftmaxLoss(per_image=True)
        elif impl == "smp":
            smp = _load_smp_lovasz()
            loss_fn = smp.LovaszLoss(mode="multiclass", per_image=True)
        else:
            with torch.no_grad():
                probs = torch.softmax(logits, 1).reshape(b, c, -1)
                fg = labels.reshape(b, 1, -1) == torch.arange(c).view(1, c, 1)
                errors = (fg.float() - probs).abs().reshape(b * c, -1)
                del probs, fg
            loss_fn = None
    else:
        b, c = DICE_SHAPE[:2]
        logits = torch.randn(DICE_SHAPE, requires_grad=True)
        labels = torch.randint(0, c, (b, *DICE_SHAPE[2:]))
        if impl == "metricseg":
            from metricseg.losses import SoftDiceLoss

            loss_fn = SoftDiceLoss(per_image=True)
        else:
            from monai.losses import DiceLoss

            monai_dice = DiceLoss(softmax=True, to_onehot_y=True)
            labels = labels.unsqueeze(1)  # MONAI wants (B, 1, *spatial)
            loss_fn = monai_dice

    results: dict[str, float] = {}

    def step() -> None:
        if loss_fn is None:
            torch.sort(errors, dim=1, descending=True)
            results["value"] = float("nan")
            return
        loss = loss_fn(logits, labels)
        loss.backward()
        logits.grad = None
        results["value"] = float(loss.detach())

    if mode == "memory":
        # ru_maxrss (KiB on Linux) over the first call, where VmHWM cannot be reset
        first_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        first_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - first_peak
        for _ in range(warmup - 1):
            step()
        if not _reset_peak_rss():
            return {"peak_mb": first_peak / 1024, "value": results["value"], "first_call": 1}
        base = _status_kib("VmRSS")
        step()
        return {"peak_mb": (_status_kib("VmHWM") - base) / 1024, "value": results["value"]}
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"time_s": statistics.median(times), "value": results["value"]}


def _run_worker(case: str, impl: str, mode: str, args: argparse.Namespace) -> dict | None:
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if mode == "memory":
        env.update(MALLOC_ENV)
    cmd = [sys.executable, __file__, "--worker", case, impl, mode, "--threads", threads,
           "--repeats", str(args.repeats), "--warmup", str(args.warmup)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"[{case} / {impl} / {mode}] failed: {proc.stderr.strip().splitlines()[-1:]}",
              file=sys.stderr)  # fmt: skip
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_case(case: str, impl: str, args: argparse.Namespace) -> dict[str, float] | None:
    timed = _run_worker(case, impl, "time", args)
    memory = _run_worker(case, impl, "memory", args)
    if timed is None or memory is None:
        return None
    return {**memory, **timed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per case (median)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed calls before the timed ones and the memory reading")  # fmt: skip
    parser.add_argument("--cases", nargs="+", choices=sorted({c for c, _ in CASES}),
                        help="only these cases (default: all)")  # fmt: skip
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "IMPL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.warmup < 1:
        parser.error(f"--warmup must be at least 1, got {args.warmup}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(_worker(*args.worker, repeats=args.repeats, warmup=args.warmup)))
        return 0

    import torch

    print(f"torch {torch.__version__}, CPU, {args.threads} thread(s); time: median of "
          f"{args.repeats} forward+backward calls after {args.warmup} warm-up calls; "
          "fresh processes per row")  # fmt: skip
    res = {key: _run_case(*key, args) for key in CASES if not args.cases or key[0] in args.cases}
    if any(r is not None and r.get("first_call") for r in res.values()):
        print("peak memory: /proc/self/clear_refs not writable here, so the rise of "
              "ru_maxrss over the first call (code pages loaded on first use included)")  # fmt: skip
    shapes = {**LOVASZ_SHAPES, "dice-3d": DICE_SHAPE}
    print()
    print("| case | logits | implementation | time (ms) | peak extra memory (MiB) | loss value |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for (case, impl), r in res.items():
        shape = "×".join(map(str, shapes[case]))
        if r is None:
            print(f"| {case} | {shape} | {impl} | failed | | |")
            continue
        print(f"| {case} | {shape} | {impl} | {r['time_s'] * 1e3:.1f} | {r['peak_mb']:.1f} | "
              f"{r['value']:.6f} |")  # fmt: skip
    print()
    print("| target | measured | met |")
    print("| --- | --- | --- |")

    def ratio(case: str, a: str, b: str, key: str) -> float | None:
        ra, rb = res.get((case, a)), res.get((case, b))
        if ra is None or rb is None or rb[key] <= 0:
            return None
        return ra[key] / rb[key]

    checks = []
    for case in LOVASZ_SHAPES:
        checks += [
            (f"{case}: SMP time / metricseg time ≥ 2", ratio(case, "smp", "metricseg", "time_s"), 2.0, "ge"),
            (f"{case}: metricseg time / sort floor ≤ 1.6", ratio(case, "metricseg", "sort-floor", "time_s"), 1.6, "le"),
            (f"{case}: metricseg peak / SMP peak ≤ 1", ratio(case, "metricseg", "smp", "peak_mb"), 1.0, "le"),
        ]  # fmt: skip
    checks += [
        ("dice-3d: metricseg time / MONAI time ≤ 0.35", ratio("dice-3d", "metricseg", "monai", "time_s"), 0.35, "le"),
        ("dice-3d: metricseg peak / MONAI peak ≤ 0.5", ratio("dice-3d", "metricseg", "monai", "peak_mb"), 0.5, "le"),
    ]  # fmt: skip
    for name, value, bound, sense in checks:
        if value is None:
            print(f"| {name} | n/a | n/a |")
            continue
        met = value >= bound if sense == "ge" else value <= bound
        print(f"| {name} | {value:.2f} | {'yes' if met else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
