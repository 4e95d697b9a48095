"""Started by ``torchrun`` from test_torchrun.py: a tiny 2-process training run, cut or resumed.

``python -m torch.distributed.run --nproc_per_node=2 --standalone torchrun_train_script.py
MODE OUT`` with MODE ``cut`` (stop after epoch 2 of 3, as a kill would, once the
checkpoint is written) or ``resume`` (continue from the checkpoint; rank 0 saves
the final weights and history to ``OUT/final.pt``).
"""

from __future__ import annotations

import sys

#: the run, shared with the test's one-process reference
TASK_OPTIONS = {"num_train": 8, "num_val": 3, "num_test": 1, "image_size": 32}
CONFIG = {"epochs": 3, "batch_size": 4, "channels": (4, 8), "lr": 1e-2}
LOSS = "soft_dice"  # per_image=False: the batch statistics are summed over processes


class Interrupt(Exception):
    pass


def main(mode: str, out: str) -> int:
    import torch

    from metricseg.data import get_task
    from metricseg.distributed import is_main_process, world_size
    from metricseg.train import TrainConfig, ddp, train

    torch.set_num_threads(1)
    ddp.init_from_env("cpu")
    try:
        assert world_size() == 2, world_size()
        task = get_task("large-organ", **TASK_OPTIONS)

        def stop_after_two(epoch: int, record: dict) -> None:
            if mode == "cut" and epoch == 2:
                raise Interrupt

        try:
            result = train(
                task, LOSS, TrainConfig(**CONFIG), seed=0, out_dir=out, resume=mode == "resume",
                on_epoch_end=stop_after_two,
            )  # fmt: skip
        except Interrupt:
            return 0
        if is_main_process():
            torch.save(
                {
                    "state": result.model.state_dict(),
                    "history": result.history,
                    "resumed_from_epoch": result.resumed_from_epoch,
                },
                f"{out}/final.pt",
            )
        return 0
    finally:
        ddp.shutdown()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
