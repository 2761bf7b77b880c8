#!/usr/bin/env python
"""Run a trained AffectGPT over test datasets (or one clip with ``--video``) and score it.

    python inference.py --cfg-path eval_configs/X.yaml [--no_reasoning] [--dataset NAME ...]
    torchrun --nproc_per_node 4 inference.py --cfg-path eval_configs/X.yaml   # samples split over GPUs

See ``--help`` and ``my_affectgpt/inference/``.
"""
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None, registry=None) -> int:
    from my_affectgpt.inference.cli import main as cli_main

    return cli_main(argv, registry=registry)


if __name__ == "__main__":
    sys.exit(main())
