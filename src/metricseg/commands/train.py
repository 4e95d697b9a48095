"""``metricseg train``: one training run (task, loss, seed), evaluated on the test split."""

from __future__ import annotations

import argparse
from typing import Any

from metricseg.commands._common import UsageError, int_csv_list, parse_options, usable_cores

HELP = "train one network on one task with one loss and score its test cases"
DESCRIPTION = """\
Train a MONAI U-Net on TASK with loss LOSS, select the epoch with the best validation
Dice, and score every test case (Dice, Jaccard, Tversky, Hamming, sensitivity, precision
per class). The result goes to OUT/runs/<task>/<loss>/seed<S>.json; the per-epoch
checkpoint to OUT/runs/<task>/<loss>/seed<S>.work/ (written atomically). --resume
continues an interrupted run from its checkpoint to the same result; without it an
earlier result and checkpoint of the same run are replaced.

examples:
  metricseg train --task tiny-lesions --loss soft_dice --epochs 20
  metricseg train --task brats -o path=/data/brats2018 --loss lovasz_softmax --network-dims 2
  metricseg train --task synthetic-3d --loss soft_tversky --loss-option alpha=0.7 --loss-option beta=0.3
  torchrun --nproc_per_node=4 -m metricseg train --task synthetic-3d --loss soft_dice --device cuda

Under torchrun the run is data-parallel (DDP: NCCL on CUDA, one GPU per process; gloo
on CPU); --batch-size is the global batch, a multiple of the number of processes; rank 0
writes the checkpoint, the result and the output (docs/scale.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser)
    _training_arguments(parser)
    _machine_arguments(parser)


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """What is trained, with which options, and where it goes."""
    parser.add_argument(
        "--task", required=True, help="task name (required; see `metricseg data list`)"
    )
    parser.add_argument(
        "--loss", required=True, help="loss name (required; see `metricseg losses`)"
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, repeatable, e.g. -o num_train=16 -o image_size=96; VALUE is read "
        "as a Python literal where it parses (default: none)",
    )
    parser.add_argument(
        "--loss-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loss option, repeatable, e.g. --loss-option smooth=1.0 (default: none)",
    )
    parser.add_argument(
        "--out",
        default="metricseg-runs",
        metavar="DIR",
        help="output folder (default: ./metricseg-runs)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in OUT if there is one (default: off)",
    )


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options of :class:`metricseg.train.TrainConfig` the command sets."""
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: 30)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: 8)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: 3e-3)")
    parser.add_argument(
        "--channels",
        type=int_csv_list,
        default=None,
        metavar="16,32,64",
        help="U-Net widths per level (default: 16,32,64)",
    )
    parser.add_argument(
        "--patch-size",
        type=int_csv_list,
        default=None,
        metavar="96,96",
        help="training patch size (default: the task's, or whole images)",
    )
    parser.add_argument(
        "--network-dims",
        type=int,
        choices=[2, 3],
        default=None,
        help="2 on a 3D task: train on axial slices, predict slice by slice "
        "(default: the task's dims)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early-stopping patience in epochs (default: none)",
    )


def _machine_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the run executes."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "fp16", "off"],
        help="mixed precision on CUDA (default: auto)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: the usable cores / torchrun's processes on this node)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )


def _spec(args: argparse.Namespace) -> Any:
    from metricseg.experiment.spec import RunSpec
    from metricseg.train import TrainConfig

    train: dict[str, object] = {"device": args.device, "amp": args.amp}
    for key in ("epochs", "batch_size", "lr", "patience", "channels", "patch_size", "network_dims"):
        if getattr(args, key) is not None:
            train[key] = getattr(args, key)
    try:
        TrainConfig.from_options(train)
        return RunSpec(
            task=args.task,
            loss=args.loss,
            seed=args.seed,
            task_options=parse_options(args.option),
            train=train,
            loss_options=parse_options(args.loss_option, "--loss-option"),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    import torch

    from metricseg.distributed import barrier, is_main_process
    from metricseg.experiment.grid import discard_run, load_result, run_one
    from metricseg.experiment.study import prepare_study
    from metricseg.experiment.suite import LossEntry, Suite, TaskEntry
    from metricseg.train import ddp

    torch.set_num_threads(args.threads or max(1, usable_cores() // ddp.local_processes()))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: torch sees no CUDA device; use --device cpu")
    spec = _spec(args)  # names and options checked before anything touches the disk
    suite = Suite(
        [TaskEntry(spec.task, dict(spec.task_options))],
        [LossEntry(spec.loss, spec.loss, dict(spec.loss_options))],
        [spec.seed],
        train=dict(spec.train),
    )
    try:
        prepare_study(suite, args.out)  # the loss and the task are built once here
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    ddp.init_from_env(args.device)  # under torchrun: join the DDP process group
    if not args.resume and is_main_process():
        discard_run(spec, args.out)  # a fresh run: drop an earlier result and checkpoint
    barrier()
    outcome = run_one(spec, args.out, progress=args.progress if is_main_process() else None)
    if not is_main_process():
        return 0  # rank 0 scores the test cases and reports
    _print_result(spec, load_result(outcome.path) or {}, outcome.path)
    return 0


def _print_result(spec: Any, res: dict[str, Any], path: Any) -> None:
    from metricseg.experiment.scoring import run_test_score

    print(
        f"{spec.task} / {spec.loss} / seed {spec.seed}: best epoch {res['best_epoch']} of "
        f"{res['epochs_run']} (validation Dice {res['best_val_dice']:.3f}), "
        f"train {res['seconds']['train']:.1f} s"
    )
    rows = res["rows"]
    for c, name in enumerate(res["task_info"]["class_names"]):
        if c == 0:
            continue
        per_case = [r for r in rows if r["class_index"] == c and r["target_voxels"] > 0]
        if per_case:
            dice = sum(r["dice"] for r in per_case) / len(per_case)
            jac = sum(r["jaccard"] for r in per_case) / len(per_case)
            print(f"  {name:>20}: test Dice {dice:.3f}  Jaccard {jac:.3f}  ({len(per_case)} cases)")
    print(f"  {'mean per case':>20}: test Dice {run_test_score(res):.3f}")
    print(f"result: {path}")
