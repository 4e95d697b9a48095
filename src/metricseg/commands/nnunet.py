"""``metricseg nnunet``: train nnU-Net with a metricseg loss; the setting nnU-Net needs to find the trainers."""

from __future__ import annotations

import argparse
import os
from typing import Any

from metricseg.commands._common import UsageError, parse_options

HELP = "train nnU-Net v2 with a metricseg loss (trainers nnUNetTrainer_metricseg_<loss>)"
DESCRIPTION = """\
nnU-Net v2 trainers over metricseg's losses, one per loss: nnUNetTrainer_metricseg_<loss>
(needs pip install 'metricseg[nnunet]'). nnU-Net finds them after one setting:

  export nnUNet_extTrainer="$(metricseg nnunet path)"
  nnUNetv2_train 901 3d_fullres 0 -tr nnUNetTrainer_metricseg_lovasz_softmax
  nnUNetv2_predict -i IN -o OUT -d 901 -c 3d_fullres -f 0 -tr nnUNetTrainer_metricseg_lovasz_softmax

Loss options: METRICSEG_NNUNET_LOSS_OPTIONS='{"smooth": 1e-5}' (or a JSON file in
METRICSEG_NNUNET_LOSS_OPTIONS_FILE); a short schedule: METRICSEG_NNUNET_EPOCHS,
METRICSEG_NNUNET_ITERATIONS, METRICSEG_NNUNET_VAL_ITERATIONS (docs/nnunet.md).

  metricseg nnunet trainers                     the trainers, their losses and options
  metricseg nnunet path                         the folder for nnUNet_extTrainer
  metricseg nnunet demo-dataset "$nnUNet_raw"   a small generated dataset (Dataset901)
  metricseg nnunet train 901 3d_fullres 0 --loss soft_dice --loss-option smooth=1 \\
      --epochs 1 --iterations 2 --device cpu
  metricseg nnunet predict -- -i IN -o OUT -d 901 -c 3d_fullres -f 0 \\
      -tr nnUNetTrainer_metricseg_soft_dice -device cpu

`nnunet train` is nnUNetv2_train on one device, `nnunet predict` nnUNetv2_predict, with
the trainer handed over as a class: they work where nnU-Net's trainer lookup cannot
import torchvision (a CPU-only torch; docs/nnunet.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="nnunet_command", metavar="ACTION", required=True)
    sub.add_parser("path", help="print the folder to set nnUNet_extTrainer to")
    sub.add_parser("trainers", help="list the trainers, their metricseg losses and options")

    demo = sub.add_parser("demo-dataset", help="write a small generated nnU-Net raw dataset")
    demo.add_argument("raw", help="nnU-Net raw folder ($nnUNet_raw)")
    demo.add_argument("--id", type=int, default=901, help="dataset id (default 901)")
    demo.add_argument("--cases", type=int, default=6, help="cases (default 6, at least 5)")
    demo.add_argument("--size", type=int, default=32, help="volume edge in voxels (default 32)")
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the generated cases (default: 0)"
    )

    predict = sub.add_parser(
        "predict",
        help="nnUNetv2_predict for a model of a metricseg trainer (no trainer lookup needed)",
        description="Run nnUNetv2_predict with ARGS; the metricseg trainer of the checkpoint "
        "is handed over as a class, so this works where nnU-Net's trainer lookup cannot "
        "import torchvision. Put -- before ARGS.",
    )
    predict.add_argument(
        "nnunet_args", nargs=argparse.REMAINDER, metavar="ARGS", help="nnUNetv2_predict's arguments"
    )

    train = sub.add_parser(
        "train",
        help="nnUNetv2_train with the metricseg trainer of --loss",
        description="Train DATASET CONFIG FOLD as nnUNetv2_train does, with nnUNetTrainer_metricseg_<loss>.",
    )
    train.add_argument("dataset", help="nnU-Net dataset id or name (e.g. 901 or Dataset901_Name)")
    train.add_argument("configuration", help="nnU-Net configuration (2d, 3d_fullres, ...)")
    train.add_argument("fold", help="fold 0-4 or 'all'")
    train.add_argument(
        "--loss", required=True, help="metricseg loss (see `metricseg nnunet trainers`)"
    )
    train.add_argument(
        "--loss-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loss option, repeatable (e.g. smooth=1, classes=foreground); VALUE is a Python "
        "literal where it parses; replaces METRICSEG_NNUNET_LOSS_OPTIONS(_FILE) (default: the "
        "environment's, else the loss's defaults)",
    )
    train.add_argument("--epochs", type=int, default=None, help="epochs (default nnU-Net's 1000)")
    train.add_argument(
        "--iterations", type=int, default=None, help="training iterations per epoch (default 250)"
    )
    train.add_argument(
        "--val-iterations",
        type=int,
        default=None,
        help="validation iterations per epoch (default 50)",
    )
    train.add_argument(
        "--device", default="cuda", choices=["cuda", "cpu", "mps"], help="default cuda"
    )
    train.add_argument("--num-gpus", type=int, default=1, help="GPUs for DDP (default 1)")
    train.add_argument(
        "-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)"
    )
    train.add_argument(
        "--c",
        dest="continue_training",
        action="store_true",
        help="continue from the latest checkpoint (default: start afresh)",
    )
    train.add_argument(
        "--no-final-validation",
        action="store_true",
        help="skip nnU-Net's prediction of the validation cases after training, for smoke "
        "runs (default: predict them)",
    )
    train.add_argument(
        "--npz",
        action="store_true",
        help="save validation probabilities, as nnU-Net's --npz (default: off)",
    )


def run(args: argparse.Namespace) -> int:
    if args.nnunet_command == "path":
        from metricseg.integrations.nnunet import ext_trainer_path

        print(ext_trainer_path())
        return 0
    if args.nnunet_command == "trainers":
        return _list_trainers()
    if args.nnunet_command == "demo-dataset":
        from metricseg.integrations.nnunet.demo import write_demo_dataset

        size = args.size
        try:
            folder = write_demo_dataset(
                args.raw, args.id, num_cases=args.cases, shape=(size, size, size), seed=args.seed
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(folder)
        return 0
    if args.nnunet_command == "predict":
        return _predict(args)
    return _train(args)


def _predict(args: argparse.Namespace) -> int:
    argv = list(args.nnunet_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise UsageError(
            "give nnUNetv2_predict's arguments, e.g. -- -i IN -o OUT -d 901 -c 3d_fullres -f 0 -tr TRAINER"
        )
    try:
        import nnunetv2  # noqa: F401
    except ModuleNotFoundError:
        raise UsageError(
            "needs nnU-Net v2; install it with pip install 'metricseg[nnunet]'"
        ) from None
    from metricseg.integrations.nnunet.run import predict

    predict(argv)
    return 0


def _list_trainers() -> int:
    from metricseg.integrations.nnunet.options import SET_BY_TRAINER, TRAINER_LOSSES, trainer_name
    from metricseg.losses import describe

    for loss in TRAINER_LOSSES:
        info = describe(loss)
        options = ", ".join(
            "per_image=<not batch_dice of the plans>" if k == "per_image" else f"{k}={v!r}"
            for k, v in info.options.items()
            if k not in SET_BY_TRAINER
        )
        print(f"{trainer_name(loss)}\n    {info.description}\n    options: {options}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from metricseg.integrations.nnunet.options import TRAINER_LOSSES, check_loss_options
    from metricseg.integrations.nnunet.run import set_environment

    if args.loss not in TRAINER_LOSSES:
        raise UsageError(
            f"--loss {args.loss!r} has no nnU-Net trainer; choose one of {', '.join(TRAINER_LOSSES)}"
        )
    if args.fold != "all" and not args.fold.isdigit():
        raise UsageError(f"FOLD must be 0-4 or 'all', got {args.fold!r}")
    if args.num_gpus < 1:
        raise UsageError(f"--num-gpus must be at least 1, got {args.num_gpus}")
    if args.num_gpus > 1 and args.no_final_validation:
        raise UsageError(
            "--no-final-validation needs --num-gpus 1 (nnU-Net's DDP run always validates)"
        )
    options: dict[str, Any] | None = (
        parse_options(args.loss_option, "--loss-option") if args.loss_option else None
    )
    try:
        if options is not None:
            check_loss_options(args.loss, options, "--loss-option")
        set_environment(
            args.loss,
            options,
            epochs=args.epochs,
            iterations=args.iterations,
            val_iterations=args.val_iterations,
        )
        # the options from the environment are checked here, before nnU-Net starts
        from metricseg.integrations.nnunet.options import read_loss_options

        read_loss_options(args.loss)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for var in ("nnUNet_preprocessed", "nnUNet_results"):
        if not os.environ.get(var):
            raise UsageError(
                f"{var} is not set; nnU-Net needs nnUNet_raw, nnUNet_preprocessed and nnUNet_results"
            )
    try:
        import nnunetv2  # noqa: F401
    except ModuleNotFoundError:
        raise UsageError(
            "needs nnU-Net v2; install it with pip install 'metricseg[nnunet]'"
        ) from None
    from metricseg.integrations.nnunet.run import train

    folder = train(
        args.dataset,
        args.configuration,
        args.fold,
        args.loss,
        plans=args.plans,
        device=args.device,
        num_gpus=args.num_gpus,
        continue_training=args.continue_training,
        export_probabilities=args.npz,
        final_validation=not args.no_final_validation,
    )
    print(folder)
    return 0
