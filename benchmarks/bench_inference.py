#!/usr/bin/env python
"""Generation throughput of the demo model: ``inference.batch_size`` 16 against 1.

Setup (not timed): the demo assets are built into a temporary folder, a copy of
``eval_configs/demo.yaml`` is pointed at them (once with ``inference.batch_size=16``, once with
1) and the model and test dataset are built the way ``inference.py`` builds them.

The model is not trained: LoRA starts as the identity and the fusion branches are random, so
greedy decoding never produces ``###`` or the end token and every answer runs exactly
``inference.max_new_tokens`` (40) new tokens. That keeps the work per sample equal at both
batch sizes; training does not change the cost of a decoding step. The benchmark checks the
token count by recording the shape of what the LLM's ``generate`` returns, and prints it.

Timed: ``inference.generate_dataset`` (the loop ``inference.py`` runs per dataset and
checkpoint: DataLoader with the dataset's collater and ``run.num_workers``,
``model.generate``, label extraction, results appended to a JSONL file) over the same
``--samples`` test clips, into a fresh results file each round. After one untimed warm-up
round at each batch size, the two batch sizes alternate for ``--rounds`` rounds and the
median round is reported. Prints::

    batch 1: X samples/s  batch 16: Y samples/s  speedup: Zx (target >= 5x)

    python benchmarks/bench_inference.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable, List

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from bench_train import interleaved_rounds, quiet_libraries, set_threads, write_demo_config  # noqa: E402

SPEEDUP_TARGET = 5.0
MAX_NEW_TOKENS = 40
DATASET = "demo"


class DecodeSteps:
    """Wraps the LLM's ``generate`` to record how many tokens each call produced."""

    def __init__(self, llm):
        self.llm = llm
        self.inner = llm.generate
        self.steps: List[int] = []
        llm.generate = self

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        self.steps.append(out.shape[1])  # prompts given as embeddings: only new tokens come back
        return out


def build_inference_parts(cfg):
    """Model (eval mode, on ``run.device``) and test dataset, as ``inference.engine.run`` builds them."""
    import my_affectgpt
    from my_affectgpt.common.registry import registry
    from my_affectgpt.inference.engine import build_test_datasets

    my_affectgpt.import_components()
    cfg = cfg.select([DATASET]).for_inference()
    model = registry.get_task_class(cfg.run.task)().build_model(cfg).to(cfg.run.device).eval()
    return model, build_test_datasets(cfg, registry)[DATASET]


def generation_round(model, dataset, cfg, out_dir: Path) -> Callable[[], None]:
    """One ``generate_dataset`` (the inference loop) over the whole dataset into a new results file."""
    from my_affectgpt.evaluation.label_extraction import extract_labels
    from my_affectgpt.evaluation.results_io import ResultsWriter
    from my_affectgpt.inference.engine import generate_dataset

    count = [0]

    def one_round() -> None:
        count[0] += 1
        writer = ResultsWriter(out_dir / f"batch{cfg.inference.batch_size}" / f"round{count[0]}.jsonl")
        written, _ = generate_dataset(model, dataset, list(range(len(dataset))), writer, cfg, extract_labels)
        if written != len(dataset):
            raise RuntimeError(f"generated {written} answers for {len(dataset)} samples")

    return one_round


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds (a smoke run)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--samples", type=int, help="test clips per round (default 64, quick 32)")
    parser.add_argument("--rounds", type=int, help="timed rounds per batch size (default 3, quick 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process (default 1)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    quiet_libraries()
    samples = args.samples or (32 if args.quick else 64)
    rounds = args.rounds or (1 if args.quick else 3)

    from my_affectgpt.common.config import load_config
    from my_affectgpt.demo_assets import build_demo_assets

    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        tmp = Path(tmp)
        cfg_path = write_demo_config("eval_configs/demo.yaml", tmp / "assets", tmp / "out", tmp / "eval.yaml")
        base = [f"run.device={args.device}", f"inference.max_new_tokens={MAX_NEW_TOKENS}"]
        cfgs = {bs: load_config(cfg_path, base + [f"inference.batch_size={bs}"]) for bs in (1, 16)}
        build_demo_assets(tmp / "assets", n_train=6, n_test=samples)
        model, dataset = build_inference_parts(cfgs[16])
        steps = DecodeSteps(model.llama_model)
        times = interleaved_rounds({bs: generation_round(model, dataset, cfg, tmp / "results")
                                    for bs, cfg in cfgs.items()}, rounds, args.device)

    rates = {bs: samples / statistics.median(t.wall for t in timings) for bs, timings in times.items()}
    print(f"batch 1: {rates[1]:.1f} samples/s  batch 16: {rates[16]:.1f} samples/s  "
          f"speedup: {rates[16] / rates[1]:.1f}x (target >= {SPEEDUP_TARGET:.0f}x)")
    print(f"({samples} samples x {rounds} round(s) per batch size, {args.device}, {args.threads} thread(s); "
          f"new tokens per generate call: {min(steps.steps)}..{max(steps.steps)}, "
          f"max_new_tokens {MAX_NEW_TOKENS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
