"""README command 1: build the demo assets, train on CPU, run inference on the test split, score.

    python scripts/run_demo.py [--keep-output]

Runs from the repository root (the demo configs use paths relative to it) and prints the
test accuracy and the wall time of the whole job.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-output", action="store_true",
                        help="keep output/demo from an earlier run (by default the demo starts fresh)")
    args = parser.parse_args(argv)

    os.chdir(REPO_ROOT)
    sys.path.insert(0, str(REPO_ROOT))
    import inference
    import train
    from my_affectgpt.demo_assets import build_demo_assets

    start = time.perf_counter()
    output_dir = REPO_ROOT / "output" / "demo"
    if output_dir.exists() and not args.keep_output:
        shutil.rmtree(output_dir)
    print("[demo] building tiny models and the synthetic dataset in demo_assets/", flush=True)
    build_demo_assets(REPO_ROOT / "demo_assets")
    built = time.perf_counter()
    print(f"[demo] assets ready in {built - start:.1f} s; training (train_configs/demo.yaml)", flush=True)
    if train.main(["--cfg-path", str(REPO_ROOT / "train_configs" / "demo.yaml")]) != 0:
        return 1
    trained = time.perf_counter()
    print(f"[demo] trained in {trained - built:.1f} s; inference on the test split (eval_configs/demo.yaml)", flush=True)
    if inference.main(["--cfg-path", str(REPO_ROOT / "eval_configs" / "demo.yaml")]) != 0:
        return 1
    scores = json.loads((output_dir / "scores.json").read_text())
    metrics = scores["datasets"]["demo"]["checkpoints"]
    (ckpt, values), = metrics.items()
    wall = time.perf_counter() - start
    wheel = f"  ew_hit_rate: {values['ew_hit_rate']:.4f}" if "ew_hit_rate" in values else ""
    print(f"[demo] test accuracy: {values['accuracy']:.4f}  weighted F1: {values['weighted_f1']:.4f}{wheel}  "
          f"({ckpt}, {int(values['n_samples'])} clips)")
    print(f"[demo] wall time: {wall:.1f} s (assets {built - start:.1f} s, train {trained - built:.1f} s, "
          f"inference + scoring {wall - (trained - start):.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
