"""``metricseg train``: one training run (task, loss, seed), evaluated on the test split."""

from __future__ import annotations

import argparse

HELP = "train one network on one task with one loss and score its test cases"
DESCRIPTION = """\
Train a MONAI U-Net on TASK with loss LOSS, select the epoch with the best validation
Dice, and score every test case (Dice, Jaccard, Tversky, Hamming per class). The result
goes to OUT/runs/<task>/<loss>/seed<S>.json; the per-epoch checkpoint to
OUT/runs/<task>/<loss>/seed<S>.work/checkpoint.pt (written atomically). --resume
continues an interrupted run from its checkpoint to the same result.

examples:
  metricseg train --task tiny-lesions --loss soft_dice --epochs 20
  metricseg train --task synthetic-3d --loss lovasz_softmax --device cuda --out runs3d --resume
  torchrun --nproc_per_node=4 -m metricseg train --task synthetic-3d --loss soft_dice --device cuda

Under torchrun the run is data-parallel (DDP: NCCL on CUDA, one GPU per process; gloo
on CPU); --batch-size is the global batch, a multiple of the number of processes; rank 0
writes the checkpoint, the result and the output (docs/scale.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="task name (see `metricseg data list`)")
    parser.add_argument("--loss", required=True, help="loss name (see `metricseg losses`)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, repeatable (e.g. num_train=16, image_size=96); VALUE is read as a Python literal where it parses",
    )
    parser.add_argument(
        "--out",
        default="metricseg-runs",
        metavar="DIR",
        help="output folder (default ./metricseg-runs)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 30)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 8)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 3e-3)")
    parser.add_argument(
        "--channels", default=None, metavar="16,32,64", help="U-Net widths per level"
    )
    parser.add_argument(
        "--patience", type=int, default=None, help="early-stopping patience in epochs"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "fp16", "off"],
        help="mixed precision on CUDA",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in OUT if there is one"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: the usable cores / torchrun's processes on this node)",
    )
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import json
    import shutil

    import torch

    from metricseg.commands._common import parse_options
    from metricseg.commands.bench import usable_cores
    from metricseg.distributed import barrier, is_main_process
    from metricseg.experiment.grid import RunSpec, result_path, run_one
    from metricseg.train import ddp

    torch.set_num_threads(args.threads or max(1, usable_cores() // ddp.local_processes()))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device}: torch sees no CUDA device")
        return 2
    ddp.init_from_env(args.device)  # under torchrun: join the DDP process group
    is_main = is_main_process()
    train: dict[str, object] = {"device": args.device, "amp": args.amp}
    for key in ("epochs", "batch_size", "lr", "patience"):
        if getattr(args, key) is not None:
            train[key] = getattr(args, key)
    if args.channels:
        train["channels"] = [int(c) for c in args.channels.split(",")]
    try:
        task_options = parse_options(args.option)
        spec = RunSpec(
            task=args.task, loss=args.loss, seed=args.seed, task_options=task_options, train=train
        )
        path = result_path(spec, args.out)
        if not args.resume and is_main:
            # a fresh run: drop an earlier result and checkpoint of the same run
            path.unlink(missing_ok=True)
            shutil.rmtree(path.with_suffix(".work"), ignore_errors=True)
        barrier()
        path = run_one(spec, args.out, progress=args.progress if is_main else False)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2
    if not is_main:
        return 0  # rank 0 scores the test cases and reports
    res = json.loads(path.read_text())
    fg = [r for r in res["rows"] if r["class_index"] > 0]
    print(
        f"{args.task} / {args.loss} / seed {args.seed}: best epoch {res['best_epoch']} of "
        f"{res['epochs_run']} (validation Dice {res['best_val_dice']:.3f}), "
        f"train {res['seconds']['train']:.1f} s"
    )
    for name in res["task_info"]["class_names"][1:]:
        dice = [r["dice"] for r in fg if r["class_name"] == name and r["dice"] == r["dice"]]
        jac = [r["jaccard"] for r in fg if r["class_name"] == name and r["jaccard"] == r["jaccard"]]
        if dice:
            print(
                f"  {name:>20}: test Dice {sum(dice) / len(dice):.3f}  Jaccard {sum(jac) / len(jac):.3f}  ({len(dice)} cases)"
            )
    print(f"result: {path}")
    return 0
