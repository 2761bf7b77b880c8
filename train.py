#!/usr/bin/env python
"""Train a model from a YAML config: ``python train.py --cfg-path CFG [--options k=v ...]``.

See ``--help`` and ``my_affectgpt/runners/cli.py``.
"""
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None, registry=None) -> int:
    from my_affectgpt.runners.cli import main as cli_main

    return cli_main(argv, registry=registry)


if __name__ == "__main__":
    sys.exit(main())
