"""``python train.py``: train a model from a YAML config.

    python train.py --cfg-path train_configs/demo.yaml [--options run.max_epoch=3 ...]
    torchrun --nproc_per_node 4 train.py --cfg-path ...        # one node, 4 GPUs
    python train.py --cfg-path ... --resume auto                # continue the newest checkpoint

The config names the task, and the task builds the model and the datasets; the runner
(``run.runner``) owns the training loop. A problem with the config or the data is one
``error: ...`` line with exit status 2; anything else keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train.py", description="Train from a YAML config.")
    parser.add_argument("--cfg-path", required=True, help="path to the training YAML")
    parser.add_argument(
        "--options", nargs="+", default=[], metavar="KEY=VALUE",
        help="override config keys, e.g. run.max_epoch=3 run.init_lr=5e-5",
    )
    parser.add_argument(
        "--resume", metavar="PATH|auto",
        help="continue from a checkpoint, or 'auto' for the newest valid one in run.output_dir "
             "(same as --options run.resume_ckpt_path=...)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None, registry=None) -> int:
    """Run training; returns the exit status. Tests pass a child ``registry`` with toy parts."""
    args = parse_args(argv)

    from my_affectgpt.common.atomic import write_text_atomic
    from my_affectgpt.common.checkpoint import TEMP_TAG
    from my_affectgpt.common.config import load_config
    from my_affectgpt.common.dist_utils import cleanup_distributed, init_distributed, seed_everything
    from my_affectgpt.common.errors import UserError
    from my_affectgpt.common.logger import setup_logging
    from my_affectgpt.common.run_lock import RunLock
    from my_affectgpt.runners.runner_iter import NonFiniteLossError
    from my_affectgpt.runners.stop_request import TrainingInterrupted

    if registry is None:
        import my_affectgpt
        from my_affectgpt.common.registry import registry

        my_affectgpt.import_components()

    logger = setup_logging()
    options = list(args.options) + ([f"run.resume_ckpt_path={args.resume}"] if args.resume else [])
    dist_info = None
    try:
        cfg = load_config(args.cfg_path, options)
        dist_info = init_distributed(cfg.run.device)
        # Rank 0 writes the run folder: it takes the folder's lock before writing anything there.
        with RunLock(cfg.run.output_dir) if dist_info.rank == 0 else contextlib.nullcontext():
            if dist_info.rank == 0:
                logger.info(f"Resolved config:\n{cfg.to_yaml()}")
                write_text_atomic(Path(cfg.run.output_dir) / "config.yaml", cfg.to_yaml(), tag=TEMP_TAG)
            seed_everything(cfg.run.seed)

            task = registry.get_task_class(cfg.run.task)()
            model = task.build_model(cfg)
            datasets = task.build_datasets(cfg)
            runner = registry.get_runner_class(cfg.run.runner)(cfg, task, model, datasets)
            runner.train()
            for splits in datasets.values():  # emotion_peak fallbacks to uniform, one line per dataset
                for dataset in splits.values():
                    getattr(dataset, "fallback_reports", list)()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # before the training loop, which handles Ctrl-C itself
        print("interrupted by SIGINT before training started", file=sys.stderr)
        return 130
    finally:
        if dist_info is not None:
            cleanup_distributed(dist_info)
    return 0
