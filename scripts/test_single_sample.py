"""Run ONE sample through the real dataset and model and show what every stage produced.

    python scripts/test_single_sample.py --cfg-path eval_configs/demo.yaml --sample demo_test_00600
        [--dataset demo] [--ckpt output/demo/checkpoint_000002.pth] [--no_reasoning] [--options k=v ...]

Prints the AU source used (mode and file), the frame indices, each input's shape, the prompt,
the AU Agent's text (mode 3), the generated answer and the labels extracted from it. The
checkpoint is ``--ckpt``, else the eval config's ``inference.ckpt`` / ``ckpt_root`` +
``test_epoch``; without one the answer comes from untrained fusion and LoRA weights (said so).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg-path", required=True)
    parser.add_argument("--sample", required=True, help="sample name, e.g. sample_00000001")
    parser.add_argument("--dataset", help="dataset block of the config (default: the first one)")
    parser.add_argument("--ckpt", help="checkpoint file or exported folder")
    parser.add_argument("--no_reasoning", action="store_true")
    parser.add_argument("--options", nargs="+", default=[])
    return parser.parse_args(argv)


def describe_value(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"tensor {list(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, list):
        return f"list of {len(value)}"
    return repr(value)


def au_source_line(dataset, name: str) -> str:
    mode = dataset.au.mode
    if mode is None:
        return "AU channel: off"
    if mode == "preextracted":
        return f"AU channel: pre-extracted features {dataset.features.path('au', name)}"
    return f"AU channel: {mode} from {dataset.au.locator.path(name)}"


def frame_indices_line(dataset, name: str) -> str:
    """Which frames the sample's visual rows come from (read through the dataset's media reader)."""
    cfg = dataset.cfg
    visual = [s for s in dataset.layout.streams if s in ("frame", "face")]
    if not visual:
        return "frames: none (the prompt uses no frames or faces)"
    lines = []
    for stream in visual:
        sampling = cfg.frame_sampling if stream == "frame" else cfg.face_sampling
        if getattr(cfg, f"use_preextracted_{stream}"):
            lines.append(f"{stream}: pre-extracted (sampled '{sampling}' at extraction time: "
                         f"{dataset.features.path(stream, name)})")
            continue
        reader = dataset.media
        analysis = reader.analysis(name) if reader.needs_analysis([stream]) else None
        decoded = reader.read(name, stream, analysis)
        fallback = f" (fell back to uniform: {decoded.fallback})" if decoded.fallback else ""
        lines.append(f"{stream}: {sampling} indices {list(decoded.indices)}{fallback}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    import my_affectgpt
    from my_affectgpt.common.config import load_config
    from my_affectgpt.common.errors import UserError
    from my_affectgpt.common.logger import setup_logging
    from my_affectgpt.common.registry import registry
    from my_affectgpt.evaluation.label_extraction import extract_labels
    from my_affectgpt.inference.engine import build_test_datasets
    from my_affectgpt.models.trained_weights import load_trained_weights, resolve_checkpoints

    setup_logging()
    my_affectgpt.import_components()
    try:
        cfg = load_config(args.cfg_path, args.options + (["inference.no_reasoning=True"] if args.no_reasoning else []))
        name = args.dataset or next(iter(cfg.datasets), None)
        cfg = cfg.select([name]).for_inference()
        dataset = build_test_datasets(cfg, registry)[name]
        names = [r["name"] for r in dataset.records]
        if args.sample not in names:
            raise UserError(f"sample {args.sample!r} is not in dataset {name} ({len(names)} samples, e.g. "
                            f"{', '.join(names[:3])})")
        sample = dataset[names.index(args.sample)]
        if "skipped" in sample:
            raise UserError(f"the sample cannot be loaded: {sample['skipped']}")
        print(f"== dataset {name} ({type(dataset).__name__}), sample {args.sample}")
        print(au_source_line(dataset, args.sample))
        print(frame_indices_line(dataset, args.sample))
        for key, value in sample.items():
            if key not in ("prompt", "answer", "name"):
                print(f"  {key}: {describe_value(value)}")
        print(f"== prompt\n{sample['prompt']}")

        device = cfg.run.device if torch.cuda.is_available() else "cpu"
        model = registry.get_task_class(cfg.run.task)().build_model(cfg).to(device)
        ckpts = [("--ckpt", Path(args.ckpt))] if args.ckpt else (
            resolve_checkpoints(cfg) if cfg.inference.ckpt or cfg.inference.ckpt_root else [])
        if ckpts:
            load_trained_weights(model, ckpts[0][1])
            print(f"== weights: {ckpts[0][1]}")
        else:
            print("== weights: none given (--ckpt or inference.ckpt): fusion and LoRA weights are untrained")
        batch = dataset.collater([sample])  # the model moves inputs to its device
        if "au_agent_frames" in batch:
            batch["au_agent_texts"] = model.au_agent_texts(batch, batch["names"])
            print(f"== AU Agent text\n{batch['au_agent_texts'][0]}")
        answer = model.eval().generate(batch, max_new_tokens=cfg.inference.max_new_tokens)[0]
        print(f"== answer\n{answer}\n== labels: {', '.join(extract_labels(answer)) or '(none found)'}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
