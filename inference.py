"""Run a trained AffectGPT over test datasets, write results as it goes, and score them.

    python inference.py --cfg-path eval_configs/X.yaml [--options k=v ...]
                        [--no_reasoning] [--dataset NAME ...]

Per dataset and checkpoint: ``{run.output_dir}/results-{dataset}/{ckpt_name}.jsonl`` (one line
per sample, appended and flushed batch by batch, so a killed run restarted with the same
command continues where it stopped) and ``{ckpt_name}.npz`` (``name2reason``, the format the
public AffectGPT tools read). Scores go to ``{run.output_dir}/scores.json``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

logger = logging.getLogger("my_affectgpt")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg-path", required=True, help="eval config YAML")
    parser.add_argument("--options", nargs="+", default=[], help="overrides such as inference.batch_size=16")
    parser.add_argument("--no_reasoning", action="store_true", help="ask for the emotion labels only")
    parser.add_argument("--dataset", nargs="+", default=None, help="run only these datasets of the config")
    clip = parser.add_argument_group("single-clip mode: run the pipeline on one of your own videos")
    clip.add_argument("--video", help="a video file; prints the answer instead of running the datasets")
    clip.add_argument("--subtitle", default="", help="what is said in the clip")
    clip.add_argument("--au_json", help="the clip's MER-Factory AU JSON (or an OpenFace CSV beside it)")
    return parser.parse_args(argv)


def resolve_checkpoints(inf) -> List[Tuple[str, Path]]:
    """``(ckpt_name, path)`` pairs from ``inference.ckpt`` / ``ckpt_root`` + ``test_epoch(s)``."""
    if inf.ckpt:
        path = Path(inf.ckpt)
        chosen = [(path.stem if path.is_file() else path.name, path)]
    elif inf.ckpt_root and (inf.test_epoch is not None or inf.test_epochs):
        if inf.test_epoch is not None:
            epochs = [inf.test_epoch]
        else:
            try:
                first, last = (int(part) for part in str(inf.test_epochs).split("-"))
            except ValueError:
                raise ValueError(f"inference.test_epochs must look like '30-60', got {inf.test_epochs!r}") from None
            if inf.skip_epoch < 1 or last < first:
                raise ValueError("inference.test_epochs needs first <= last and inference.skip_epoch >= 1")
            epochs = list(range(first, last + 1, inf.skip_epoch))
        from my_affectgpt.common.checkpoint import checkpoint_path

        chosen = [(checkpoint_path(inf.ckpt_root, e).stem, checkpoint_path(inf.ckpt_root, e)) for e in epochs]
    else:
        raise ValueError(
            "no checkpoint chosen: set inference.ckpt (a checkpoint file or an exported folder), "
            "or inference.ckpt_root with inference.test_epoch or inference.test_epochs"
        )
    missing = [str(path) for _, path in chosen if not path.exists()]
    if missing:
        raise FileNotFoundError(f"checkpoint(s) not found: {', '.join(missing)}")
    return chosen


def checkpoint_identity(path: Path) -> dict:
    """What a results file's answers came from; a retrained checkpoint gets a new identity."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        "checkpoint": str(path.resolve()),
        "bytes": sum(f.stat().st_size for f in files),
        "mtime_ns": max(f.stat().st_mtime_ns for f in files),
    }


def inference_dataset_cfg(ds_cfg, inf):
    """A test dataset block with the ``inference.*`` overrides applied."""
    from omegaconf import OmegaConf

    block = OmegaConf.to_container(ds_cfg)
    for key in ("mer_factory_output", "frame_sampling", "frame_n_frms"):
        if inf[key]:
            block[key] = inf[key]
    return OmegaConf.create(block)


def build_test_dataset(cfg, name: str, ds_cfg, registry, no_reasoning: bool):
    from my_affectgpt.conversation.prompts import inference_question

    builder = registry.get_builder_class(name)(ds_cfg, cfg)
    splits = builder.build(question=inference_question(no_reasoning), au_realtime=cfg.inference.use_au_clip_realtime)
    (dataset,) = splits.values()
    return dataset


def generate_dataset(model, dataset, writer, cfg, extract_labels) -> int:
    """Generate answers for the samples ``writer`` has not seen; returns how many were written."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    inf = cfg.inference
    todo = [i for i, record in enumerate(dataset.records) if record["name"] not in writer.done]
    if not todo:
        return 0
    loader = DataLoader(
        Subset(dataset, todo),
        batch_size=inf.batch_size,
        shuffle=False,
        num_workers=cfg.run.num_workers,
        collate_fn=dataset.collater,
    )
    gen_kwargs = dict(max_new_tokens=inf.max_new_tokens, do_sample=inf.do_sample,
                      temperature=inf.temperature, top_p=inf.top_p)
    prompt_kind = dataset.question[0]
    written = 0
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"{writer.path.parent.name}/{writer.path.stem}", disable=not sys.stderr.isatty()):
            for reason in batch["skipped"]:
                logger.warning("skipped sample: %s", reason)
            if not batch["names"]:
                continue
            answers = model.generate(batch, **gen_kwargs)
            writer.append([
                {"name": name, "prompt_kind": prompt_kind, "answer": answer, "labels": extract_labels(answer)}
                for name, answer in zip(batch["names"], answers)
            ])
            written += len(answers)
    return written


def llm_label_extractor(inf):
    """The optional LLM label extractor (``inference.label_extractor``: a local model path)."""
    if inf.label_extractor == "lexicon":
        return None
    from my_affectgpt.evaluation.label_extraction import LLMLabelExtractor

    return LLMLabelExtractor(inf.label_extractor)


def score(dataset, results_path: Path, llm_extractor, wheel):
    from my_affectgpt.evaluation.report import score_results

    gold = dataset.gold()
    if not gold:
        return None
    return score_results(results_path, dataset.eval_kind, gold=gold, wheel=wheel, extractor=llm_extractor)


def main(argv: Optional[Sequence[str]] = None, registry=None) -> int:
    args = parse_args(argv)
    from my_affectgpt.common.config import ConfigError, load_config
    from my_affectgpt.common.logger import setup_logging

    setup_logging()
    options = list(args.options) + (["inference.no_reasoning=True"] if args.no_reasoning else [])
    try:
        cfg = load_config(args.cfg_path, options)
        if args.video:
            return run_single_clip(cfg, args, registry)
        return run(cfg, args.dataset, registry)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def single_clip_sample(ds_cfg, args) -> Tuple[dict, str]:
    """The sample dict for ``--video`` (raw frames and audio, AU texts when ``--au_json``) and
    a line saying where its AU channel came from."""
    from my_affectgpt.common.config_schema import feature_modalities
    from my_affectgpt.conversation import prompts
    from my_affectgpt.processors.frame_sampling import FrameSampler
    from my_affectgpt.processors.openface_csv import load_au_analysis_with_csv
    from my_affectgpt.processors.raw_media import audio_clips, video_frames

    modalities = feature_modalities(ds_cfg.face_or_frame)
    if "face" in modalities:
        raise ValueError(
            f"single-clip mode reads frames from the video, but face_or_frame '{ds_cfg.face_or_frame}' needs "
            f"face crops; use a frame-based value, e.g. --options datasets.<name>.face_or_frame=multiframe_audio_frame_text"
        )
    analysis, au_line = None, "AU block left out: no --au_json given"
    if args.au_json:
        analysis = load_au_analysis_with_csv(args.au_json)
        if not analysis.summary_texts:
            raise ValueError(f"{args.au_json} has no summary_description; run scripts/generate_au_descriptions.py "
                             f"on it, or leave out --au_json")
        au_line = f"AU block: {len(analysis.summary_texts)} description(s) from {args.au_json}, CLIP-encoded"
    sample = {"name": Path(args.video).stem, "max_length": ds_cfg.max_length}
    if "frame" in modalities:
        sampler = FrameSampler(ds_cfg.frame_sampling, ds_cfg.frame_n_frms)
        sample["frame_pixels"] = video_frames(args.video, sampler, analysis, ds_cfg.image_size).pixels()
    if "audio" in modalities:
        sample["audio_wave"] = audio_clips(args.video, ds_cfg.clips_per_video)
    if analysis is not None:
        sample["au_texts"] = analysis.summary_texts
    _, question = prompts.inference_question(args.no_reasoning)
    sample["prompt"] = prompts.build_prompt(ds_cfg.face_or_frame, args.subtitle, question, "au" if analysis else None)
    return sample, au_line


def run_single_clip(cfg, args, registry=None) -> int:
    """``--video``: one clip through the same prompt, encoders and model; prints the answer."""
    from omegaconf import OmegaConf

    import my_affectgpt
    from my_affectgpt.datasets.collate import collate
    from my_affectgpt.evaluation.label_extraction import extract_labels
    from my_affectgpt.tasks.video_text_pretrain import load_trained_weights

    if registry is None:
        my_affectgpt.import_components()
        from my_affectgpt.common.registry import registry
    if cfg.model.skip_encoders:
        raise ValueError("single-clip mode encodes the raw video: set model.skip_encoders: False with "
                         "model.visual_encoder_path and model.acoustic_encoder_path")
    if not Path(args.video).is_file():
        raise FileNotFoundError(f"--video: {args.video} not found")
    name = (args.dataset or list(cfg.datasets))[0]
    block = OmegaConf.to_container(cfg.datasets[name])
    # The model is built as configured (so the checkpoint fits), reading raw media; without
    # --au_json only the prompt leaves the AU block out.
    block["use_preextracted_features"] = False
    if args.au_json:
        block.update(use_au_clip_realtime=True, mer_factory_output=str(Path(args.au_json).parent))
    ds_cfg = OmegaConf.create(block)
    sample, au_line = single_clip_sample(ds_cfg, args)
    model = registry.get_task_class(cfg.run.task)().build_model(cfg, {name: ds_cfg}, au_realtime=bool(args.au_json))
    model = model.to(cfg.run.device).eval()
    ckpt_name, ckpt_path = resolve_checkpoints(cfg.inference)[0]
    load_trained_weights(model, ckpt_path)
    inf = cfg.inference
    answer = model.generate(collate([sample]), max_new_tokens=inf.max_new_tokens, do_sample=inf.do_sample,
                            temperature=inf.temperature, top_p=inf.top_p)[0]
    print(f"{au_line}\ncheckpoint: {ckpt_path}\nanswer: {answer}\nlabels: {', '.join(extract_labels(answer)) or '(none)'}")
    return 0


def run(cfg, dataset_names: Optional[List[str]], registry=None) -> int:
    import torch

    import my_affectgpt
    from my_affectgpt.processors.raw_media import sampling_reports
    from my_affectgpt.evaluation.metrics import EmotionWheel, load_emotion_wheel
    from my_affectgpt.evaluation.report import format_table, load_scores, record_scores, write_scores
    from my_affectgpt.evaluation.results_io import ResultsWriter

    if registry is None:
        my_affectgpt.import_components()
        from my_affectgpt.common.registry import registry
    names = dataset_names or list(cfg.datasets)
    unknown = [n for n in names if n not in cfg.datasets]
    if unknown:
        raise ValueError(f"--dataset {', '.join(unknown)}: not in the config's datasets ({', '.join(cfg.datasets)})")
    checkpoints = resolve_checkpoints(cfg.inference)
    device = cfg.run.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("run.device is cuda but no GPU is visible; use --options run.device=cpu")
    out_dir = Path(cfg.run.output_dir)
    cfg.save(out_dir / "inference_config.yaml")  # beside, not over, the training config.yaml
    from my_affectgpt.tasks.video_text_pretrain import load_trained_weights

    ds_cfgs = {name: inference_dataset_cfg(cfg.datasets[name], cfg.inference) for name in names}
    task = registry.get_task_class(cfg.run.task)()
    model = task.build_model(cfg, ds_cfgs, au_realtime=cfg.inference.use_au_clip_realtime).to(device).eval()
    datasets = {
        name: build_test_dataset(cfg, name, ds_cfgs[name], registry, cfg.inference.no_reasoning) for name in names
    }
    from my_affectgpt.evaluation.label_extraction import extract_labels, extract_open_labels

    llm_extractor = llm_label_extractor(cfg.inference)
    wheel = load_emotion_wheel(cfg.inference.emotion_wheel) if cfg.inference.emotion_wheel else EmotionWheel({})
    scores_path = out_dir / "scores.json"
    scores = load_scores(scores_path)
    for ckpt_name, ckpt_path in checkpoints:
        load_trained_weights(model, ckpt_path)
        for name, dataset in datasets.items():
            writer = ResultsWriter(out_dir / f"results-{name}" / f"{ckpt_name}.jsonl", checkpoint_identity(ckpt_path))
            start = time.perf_counter()
            extract = llm_extractor or (extract_open_labels if dataset.eval_kind == "openset" else extract_labels)
            written = generate_dataset(model, dataset, writer, cfg, extract)
            logger.info("%s / %s: %d new answers in %.1f s (%d in total)", name, ckpt_name, written,
                        time.perf_counter() - start, len(writer.done))
            writer.write_name2reason()
            metrics = score(dataset, writer.path, llm_extractor, wheel)
            if metrics is not None:
                record_scores(scores, name, dataset.eval_kind, ckpt_name, metrics)
                write_scores(scores_path, scores)
    sampling_reports()  # emotion_peak fallbacks to uniform, one line per dataset (logged)
    if scores["datasets"]:
        print(format_table(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
