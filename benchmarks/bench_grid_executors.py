"""Wall time of a small grid with the local process pool and with Ray on this machine.

Four runs (large-organ at 64², 16 training images, 3 epochs, U-Net 8-16-32; soft
Dice and CE × 2 seeds), run twice into a fresh folder: the first time trains
everything, the second finds every result and skips it. The Ray time includes
starting the local Ray instance. Prints a Markdown table.

    python benchmarks/bench_grid_executors.py [--cpus 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    from metricseg.experiment.executor import LocalExecutor
    from metricseg.experiment.grid import expand_grid
    from metricseg.experiment.ray_executor import RayExecutor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2, help="runs at once (1 CPU each)")
    args = parser.parse_args()
    task = ("large-organ", {"num_train": 16, "num_val": 4, "num_test": 8, "image_size": 64}, {})
    train = {"epochs": 3, "batch_size": 4, "channels": [8, 16, 32]}
    specs = expand_grid([task], ["soft_dice", "ce"], seeds=[0, 1], train=train)
    ray_init = {"num_cpus": args.cpus, "include_dashboard": False, "log_to_driver": False}
    executors = {
        f"local, --jobs {args.cpus}": LocalExecutor(jobs=args.cpus, progress=False),
        "ray (local instance), 1 CPU per run": RayExecutor(init_options=ray_init),
    }
    print("| executor | runs | first: all trained (s) | again: all skipped (s) | ok |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, executor in executors.items():
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            outcomes = executor.run(specs, out)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            executor.run(specs, out)
            again = time.perf_counter() - t0
        ok = sum(o.ok for o in outcomes)
        print(f"| {name} | {len(specs)} | {first:.1f} | {again:.2f} | {ok} |")


if __name__ == "__main__":
    main()
