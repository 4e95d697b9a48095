"""Time of one training step of a built-in study's network: what a study costs per step.

Builds the study's U-Net (``metricseg.train.models.build_model`` with the study's
``channels`` and ``num_res_units``), then times forward + loss + backward + Adam on
random inputs of the study's ``batch_size`` × ``patch_size`` (fresh inputs every
step) and prints a Markdown table: the median and best step after one warm-up step,
and the steps a run takes (``epochs`` × ``steps_per_epoch``) times the median —
training steps only, no validation or inference.

    python benchmarks/bench_train_step.py --study brats3d --threads 2 [--loss soft_dice]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="brats3d", help="built-in study (default: brats3d)")
    parser.add_argument("--loss", default="soft_dice", help="loss (default: soft_dice)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1")

    import torch

    from metricseg.experiment.suite import load_study
    from metricseg.losses import get
    from metricseg.train.models import build_model

    study = load_study(args.study)
    train = study.train
    patch = list(train["patch_size"])
    batch = int(train["batch_size"])
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    in_channels, num_classes = 2, 2  # BraTS: FLAIR + T1, whole tumour
    net = build_model(
        len(patch),
        in_channels,
        num_classes,
        channels=train["channels"],
        num_res_units=train.get("num_res_units", 1),
    ).to(args.device)
    opt = torch.optim.Adam(net.parameters(), lr=float(train.get("lr", 3e-3)))
    loss = get(args.loss)
    times = []
    for i in range(args.steps + 1):
        x = torch.randn(batch, in_channels, *patch, device=args.device)
        y = torch.randint(0, num_classes, (batch, *patch), device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss(net(x), y).backward()
        opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    steps = int(train["epochs"]) * int(train["steps_per_epoch"])
    median = statistics.median(times)
    print(f"study {args.study}: batch {batch} × {patch}, channels {train['channels']}, "
          f"loss {args.loss}, torch {torch.__version__}, {args.threads} thread(s), {args.device}")  # fmt: skip
    print()
    print("| median step (s) | best step (s) | steps per run | median × steps per run (min) |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {median:.3f} | {min(times):.3f} | {steps} | {median * steps / 60:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
