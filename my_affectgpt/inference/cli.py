"""``python inference.py``: run a trained AffectGPT over test datasets, write results, score them.

    python inference.py --cfg-path eval_configs/X.yaml [--options k=v ...]
                        [--no_reasoning] [--dataset NAME ...]
    python inference.py --cfg-path eval_configs/X.yaml --video clip.mp4 [--subtitle "..."] [--au_json J]
    torchrun --nproc_per_node 4 inference.py --cfg-path ...   # one node, 4 GPUs, samples split

A problem with the config or the data is one ``error: ...`` line with exit status 2; anything
else keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inference.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg-path", required=True, help="eval config YAML")
    parser.add_argument("--options", nargs="+", default=[], help="overrides such as inference.batch_size=16")
    parser.add_argument("--no_reasoning", action="store_true", help="ask for the emotion labels only")
    parser.add_argument("--dataset", nargs="+", default=None, help="run only these datasets of the config")
    clip = parser.add_argument_group("single-clip mode: run the pipeline on one of your own videos")
    clip.add_argument("--video", help="a video file; prints the answer instead of running the datasets")
    clip.add_argument("--subtitle", default="", help="what is said in the clip")
    clip.add_argument("--au_json", help="the clip's MER-Factory AU JSON (or an OpenFace CSV beside it)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None, registry=None) -> int:
    args = parse_args(argv)
    from my_affectgpt.common.config import load_config
    from my_affectgpt.common.dist_utils import cleanup_distributed, get_world_size, init_distributed
    from my_affectgpt.common.errors import UserError
    from my_affectgpt.common.logger import setup_logging

    if registry is None:
        import my_affectgpt
        from my_affectgpt.common.registry import registry

        my_affectgpt.import_components()
    setup_logging()
    options = list(args.options) + (["inference.no_reasoning=True"] if args.no_reasoning else [])
    dist_info = None
    try:
        cfg = load_config(args.cfg_path, options)
        if args.video:
            if get_world_size() > 1:
                raise UserError("--video answers one clip in one process; start it with python, not torchrun")
            from my_affectgpt.inference.single_clip import run_single_clip

            dataset = (args.dataset or list(cfg.datasets))[0]
            return run_single_clip(cfg, registry, dataset, args.video, args.subtitle, args.au_json,
                                   cfg.inference.no_reasoning)
        from my_affectgpt.inference.engine import run

        dist_info = init_distributed(cfg.run.device)
        return run(cfg, registry, args.dataset, dist_info)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist_info is not None:
            cleanup_distributed(dist_info)
