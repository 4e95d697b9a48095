"""Machinery shared by ``bench_losses.py`` and ``bench_metrics.py``.

What the two scripts measure, and how (``DESIGN.md``, "Measuring speed"):

* **Fresh inputs.** By default every call gets inputs in a new allocation,
  copied from a source made once (a network's output is new every step, and a
  new 100 MiB tensor is new pages the kernel must fault in and zero). The copy
  is made before the clock starts. ``--reuse-inputs`` passes the same tensors
  every call instead (the best case the old tables measured).
* **One fresh process per (case, implementation)**, so that imports, allocator
  caches and earlier cases do not leak into the numbers; ``--rounds`` repeats
  the whole sequence of processes, interleaved, and pools their calls.
* **Warm-up, then the median and the best** of the timed calls.
* **Busy machine.** ``--busy N`` starts N processes that spin in a Python
  loop for the whole run (other work holding the cores, as data loading does)
  and stops them at the end, on Ctrl-C and on errors too.
* **Peak extra memory**: in a second process per row, the rise of resident
  memory over one call after the warm-up, inputs excluded: the peak
  (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call)
  minus the resident memory before it. That worker runs with glibc's mmap and
  trim thresholds fixed at 4 KiB, so that every large buffer is mapped when it
  is allocated and unmapped when it is freed: resident memory then follows the
  bytes really in use, inside torch or not. Where ``clear_refs`` cannot be
  written, the rise of ``ru_maxrss`` over the first call is used instead and
  the table says so.
* The load average (``/proc/loadavg``) before and after the run and the
  thread count are printed with every table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

#: glibc settings of the memory worker: fixed thresholds map and unmap every large buffer
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4096",
    "MALLOC_TRIM_THRESHOLD_": "4096",
    "MALLOC_TOP_PAD_": "0",
}

#: what one spinning process runs: a pure-Python loop holds one core at 100 %
_SPIN = "while True:\n    pass\n"


def add_common_args(parser: argparse.ArgumentParser, repeats: int, warmup: int) -> None:
    """The options both scripts share."""
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads in every worker (default 2)")  # fmt: skip
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="start N spinning processes for the run (default 0: none)")  # fmt: skip
    parser.add_argument("--reuse-inputs", action="store_true",
                        help="pass the same input tensors to every call (default: fresh "
                        "tensors, a new allocation per call)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"timed calls per row and round (default {repeats})")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=warmup,
                        help=f"untimed calls before the timed ones (default {warmup})")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every row's process this many times, interleaved, and "
                        "pool the timed calls (default 1)")  # fmt: skip
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory processes (time only)")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name, low in (("threads", 1), ("repeats", 1), ("warmup", 1), ("rounds", 1), ("busy", 0)):
        value = getattr(args, name)
        if value < low:
            parser.error(f"--{name} must be at least {low}, got {value}")


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages, as ``/proc/loadavg`` gives them."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


@contextlib.contextmanager
def busy(n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """N processes spinning on a core each while the block runs; stopped on any exit.

    SIGTERM is turned into ``SystemExit`` for the duration, so that a killed
    benchmark stops its spinners as Ctrl-C (``KeyboardInterrupt``) does.
    """
    procs: list[subprocess.Popen[bytes]] = []
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", _SPIN]))
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        signal.signal(signal.SIGTERM, previous)


def load_line(before: str, after: str, busy: int) -> str:
    spinners = f" ({busy} spinner(s) still on)" if busy else ""
    return f"load average (1, 5, 15 min): before the run {before}; at its end {after}{spinners}"


def header(title: str, args: argparse.Namespace, torch_version: str) -> str:
    inputs = (
        "the same input tensors every call (--reuse-inputs)"
        if args.reuse_inputs
        else ("fresh inputs (a new allocation every call)")
    )
    return (
        f"{title}\n"
        f"torch {torch_version}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{args.threads} torch thread(s) per worker; {inputs}; "
        f"{args.busy} spinning process(es) (--busy {args.busy}); time: median and best of "
        f"{args.repeats} × {args.rounds} round(s) calls after {args.warmup} warm-up calls, "
        "one fresh process per row and round"
    )


def run_rows(
    script: str,
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
) -> tuple[dict[tuple[str, str], dict[str, Any]], str, str]:
    """Time (and measure the memory of) every row in fresh processes, under ``--busy``.

    Returns the results per (case, impl), and the load averages before and after.
    """
    before = loadavg()
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with busy(args.busy):
        if args.busy:
            time.sleep(1.0)  # let the spinners get going
        for _ in range(args.rounds):
            for row in rows:
                key = (row["case"], row["impl"])
                r = _run_worker(script, {**row, "mode": "time"}, args)
                if r is None:
                    results[key] = {"failed": True}
                    continue
                slot = results.setdefault(key, {"times": [], "value": r["value"]})
                if "times" in slot:
                    slot["times"] += r["times"]
        if not args.no_memory:
            for row in rows:
                key = (row["case"], row["impl"])
                if results[key].get("failed"):
                    continue
                r = _run_worker(script, {**row, "mode": "memory"}, args)
                if r is not None:
                    results[key].update(peak_mib=r["peak_mib"], first_call=r.get("first_call"))
        after = loadavg()
    for r in results.values():
        if "times" in r:
            r["median"] = statistics.median(r["times"])
            r["best"] = min(r["times"])
    return results, before, after


def _run_worker(script: str, spec: dict[str, Any], args: argparse.Namespace) -> dict | None:
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if spec["mode"] == "memory":
        env.update(MALLOC_ENV)
    # a row may ask for fewer repeats (a slow anchor)
    spec = {"repeats": args.repeats, **spec, "threads": args.threads, "warmup": args.warmup,
            "reuse": args.reuse_inputs}  # fmt: skip
    proc = subprocess.run([sys.executable, script, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)  # fmt: skip
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        print(f"[{spec['case']} / {spec['impl']} / {spec['mode']}] failed: {last[0]}",
              file=sys.stderr)  # fmt: skip
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_main(spec_json: str, build: Callable[[dict[str, Any]], tuple[Any, Any]]) -> None:
    """Run one row in this process and print its result as JSON.

    ``build(spec)`` returns ``(make_inputs, call)``: ``make_inputs()`` gives
    the arguments of one call (fresh tensors, or the same ones with
    ``reuse``), ``call(*inputs)`` runs it and returns a float summarising the
    result (the loss value), or NaN.
    """
    import torch

    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    make_inputs, call = build(spec)
    if spec["mode"] == "memory":
        print(json.dumps(_memory(make_inputs, call, spec["warmup"])))
        return
    value = float("nan")
    for _ in range(spec["warmup"]):
        value = call(*make_inputs())
    times = []
    for _ in range(spec["repeats"]):
        inputs = make_inputs()
        start = time.perf_counter()
        value = call(*inputs)
        times.append(time.perf_counter() - start)
        del inputs
    print(json.dumps({"times": times, "value": value}))


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


def _memory(make_inputs: Callable[[], tuple], call: Callable[..., float], warmup: int) -> dict:
    # ru_maxrss (KiB on Linux) over the first call, where VmHWM cannot be reset
    inputs = make_inputs()
    first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call(*inputs)
    first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - first
    del inputs
    for _ in range(warmup - 1):
        call(*make_inputs())
    inputs = make_inputs()
    if not _reset_peak_rss():
        return {"peak_mib": first / 1024, "first_call": True}
    base = _status_kib("VmRSS")
    call(*inputs)
    return {"peak_mib": (_status_kib("VmHWM") - base) / 1024}


def fresh_or_reused(reuse: bool, *sources: Any) -> Callable[[], tuple]:
    """``make_inputs`` for a worker: copies of ``sources`` in new allocations, or the sources.

    A tensor that needs a gradient is copied as a new leaf that needs one.
    """
    import torch

    def fresh() -> tuple:
        out = []
        for s in sources:
            if isinstance(s, torch.Tensor):
                t = torch.empty_like(s, memory_format=torch.contiguous_format).copy_(s.detach())
                out.append(t.requires_grad_(s.requires_grad))
            else:
                out.append(s)
        return tuple(out)

    def reused() -> tuple:
        for s in sources:
            if isinstance(s, torch.Tensor):
                s.grad = None
        return sources

    return reused if reuse else fresh


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    """``a[key] / b[key]``, or None where either row failed or lacks the figure."""
    if not a or not b or a.get(key) is None or b.get(key) is None or b[key] <= 0:
        return None
    return a[key] / b[key]


def fmt(x: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{suffix}"


def targets_table(checks: list[tuple[str, float | None, float, str]]) -> list[str]:
    """Markdown rows ``| target | measured | met |``; sense is ``"le"`` or ``"ge"``."""
    lines = ["| target | measured | met |", "| --- | ---: | --- |"]
    for name, value, bound, sense in checks:
        if value is None:
            lines.append(f"| {name} | n/a | n/a |")
            continue
        met = value <= bound if sense == "le" else value >= bound
        lines.append(f"| {name} | {value:.2f} | {'yes' if met else 'NO'} |")
    return lines
