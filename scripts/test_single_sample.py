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
    """Which frames the sample's visual rows come from."""
    from my_affectgpt.processors.frame_sampling import FrameSampler

    cfg = dataset.cfg
    if cfg.use_preextracted_features:
        return (f"frames: pre-extracted ({cfg.frame_n_frms} rows, sampled '{cfg.frame_sampling}' at extraction time: "
                f"{dataset.features.path('face' if 'face' in dataset.modalities else 'frame', name)})")
    if not {"frame", "face"} & set(dataset.modalities):
        return "frames: none (the prompt uses no frames or faces)"
    from my_affectgpt.processors.raw_media import find_media, video_frames

    analysis = dataset.au.analysis_for_sampling(name)
    sampled = video_frames(find_media(dataset.media_root("video"), name),
                           FrameSampler(cfg.frame_sampling, cfg.frame_n_frms), analysis, cfg.image_size)
    fallback = f" (fell back to uniform: {sampled.fallback})" if sampled.fallback else ""
    return f"frames: {cfg.frame_sampling} indices {list(sampled.indices)}{fallback}"


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    import inference
    import my_affectgpt
    from my_affectgpt.common.config import ConfigError, load_config
    from my_affectgpt.common.logger import setup_logging
    from my_affectgpt.common.registry import registry
    from my_affectgpt.evaluation.label_extraction import extract_labels
    from my_affectgpt.tasks.video_text_pretrain import load_trained_weights

    setup_logging()
    my_affectgpt.import_components()
    try:
        cfg = load_config(args.cfg_path, args.options)
        name = args.dataset or next(iter(cfg.datasets), None)
        if name not in cfg.datasets:
            raise ValueError(f"dataset {name!r} is not in the config ({', '.join(cfg.datasets) or 'none'})")
        ds_cfg = inference.inference_dataset_cfg(cfg.datasets[name], cfg.inference)
        dataset = inference.build_test_dataset(cfg, name, ds_cfg, registry, args.no_reasoning)
        names = [r["name"] for r in dataset.records]
        if args.sample not in names:
            raise ValueError(f"sample {args.sample!r} is not in dataset {name} ({len(names)} samples, e.g. "
                             f"{', '.join(names[:3])})")
        sample = dataset[names.index(args.sample)]
        if "skipped" in sample:
            raise ValueError(f"the sample cannot be loaded: {sample['skipped']}")
        print(f"== dataset {name} ({type(dataset).__name__}), sample {args.sample}")
        print(au_source_line(dataset, args.sample))
        print(frame_indices_line(dataset, args.sample))
        for key, value in sample.items():
            if key not in ("prompt", "answer", "name"):
                print(f"  {key}: {describe_value(value)}")
        print(f"== prompt\n{sample['prompt']}")

        device = cfg.run.device if torch.cuda.is_available() else "cpu"
        task = registry.get_task_class(cfg.run.task)()
        model = task.build_model(cfg, {name: ds_cfg}, au_realtime=cfg.inference.use_au_clip_realtime).to(device)
        ckpts = [("--ckpt", Path(args.ckpt))] if args.ckpt else (
            inference.resolve_checkpoints(cfg.inference) if cfg.inference.ckpt or cfg.inference.ckpt_root else [])
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
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
