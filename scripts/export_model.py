"""Export a trained run to a self-contained folder that can be shared and loaded by path.

    python scripts/export_model.py --run-dir output/demo [--ckpt checkpoint_000002.pth] --out exported/demo

The folder holds the resolved training config (``config.yaml``), the LoRA adapter in peft's
format (``adapter/``) and the fusion weights (``fusion.safetensors``). Point
``inference.ckpt`` at it to evaluate it. The default checkpoint is the newest valid one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="the training run folder (holds config.yaml)")
    parser.add_argument("--ckpt", help="checkpoint file (default: the newest valid one in --run-dir)")
    parser.add_argument("--out", required=True, help="folder to write")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))

    import my_affectgpt
    from my_affectgpt.common.checkpoint import find_latest_valid
    from my_affectgpt.common.config import load_config
    from my_affectgpt.common.errors import UserError, UserFileNotFoundError
    from my_affectgpt.common.logger import setup_logging
    from my_affectgpt.common.registry import registry
    from my_affectgpt.models.trained_weights import load_trained_weights

    logger = setup_logging()
    my_affectgpt.import_components()
    run_dir = Path(args.run_dir)
    try:
        cfg = load_config(run_dir / "config.yaml")
        ckpt = Path(args.ckpt) if args.ckpt else find_latest_valid(run_dir)
        if ckpt is None or not ckpt.is_file():
            raise UserFileNotFoundError(f"no checkpoint to export in {run_dir} (pass --ckpt)")
        if Path(args.out).is_file():
            raise UserError(f"--out {args.out} is a file; give a folder to write the export into")
        model = registry.get_task_class(cfg.run.task)().build_model(cfg)
        load_trained_weights(model, ckpt)
        out = model.export(args.out, cfg.to_yaml())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger.info("exported %s to %s", ckpt, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
