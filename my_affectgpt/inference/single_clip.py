"""``inference.py --video clip.mp4``: one of the user's own clips through the same prompt,
media reader, encoders and model as a dataset sample; prints the answer."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Tuple

from my_affectgpt.common.errors import UserError, UserFileNotFoundError


def clip_config(cfg, name: str):
    """``cfg`` reduced to the dataset block ``name``, reading every stream from raw media. The
    AU block stays as trained (so the checkpoint fits); its texts come from ``--au_json``."""
    ds = cfg.datasets[name]
    raw = {f"use_preextracted_{s}": False for s in ("frame", "face", "audio", "au")}
    ds = dataclasses.replace(ds, use_preextracted_features=False, **raw,
                             use_au_clip_realtime=True, mer_factory_output=ds.mer_factory_output or ".")
    mode = "realtime" if cfg.au_mode(name) is not None else None
    return dataclasses.replace(cfg, datasets={name: ds}, au_modes={name: mode})


def clip_sample(cfg, name: str, video: Path, subtitle: str, au_json, no_reasoning: bool) -> Tuple[dict, str, object]:
    """The sample dict for ``--video``, a line saying where its AU block came from, and the reader."""
    from my_affectgpt.common.face_or_frame import parse_face_or_frame
    from my_affectgpt.conversation import prompts
    from my_affectgpt.processors.openface_csv import load_au_analysis_with_csv
    from my_affectgpt.processors.raw_media import MediaSources, RawMediaReader, SamplingSpec, encoder_inputs

    ds = cfg.datasets[name]
    layout = parse_face_or_frame(ds.face_or_frame)
    if "face" in layout.streams:
        raise UserError(
            f"single-clip mode reads frames from the video, but face_or_frame '{ds.face_or_frame}' needs face "
            f"crops; use a frame-based value, e.g. --options datasets.{name}.face_or_frame=multiframe_audio_frame_text"
        )
    analysis, au_line = None, "AU block left out: no --au_json given"
    if au_json:
        if cfg.au_mode(name) is None:
            raise UserError(f"--au_json given, but datasets.{name}.face_or_frame '{ds.face_or_frame}' has no AU "
                            f"block; leave out --au_json or use a model trained with an '_au' face_or_frame")
        analysis = load_au_analysis_with_csv(au_json)
        if not analysis.summary_texts:
            raise UserError(f"{au_json} has no summary_description; run scripts/generate_au_descriptions.py "
                            f"on it, or leave out --au_json")
        au_line = f"AU block: {len(analysis.summary_texts)} description(s) from {au_json}, CLIP-encoded"
    elif cfg.au_mode(name) is not None:
        au_line += " (the model was trained with one; answers may be worse)"
    spec = SamplingSpec(ds.frame_sampling, ds.frame_n_frms, ds.face_sampling, ds.face_n_frms,
                        ds.clips_per_video, ds.image_size)
    reader = RawMediaReader(MediaSources(), spec, dataset=video.name)
    streams = list(layout.streams)
    sample = {"name": video.stem, "max_length": ds.max_length}
    if analysis is not None and reader.needs_analysis(streams):
        sample.update(_read(reader, video, streams, analysis))
    else:
        sample.update(encoder_inputs(reader, video.stem, streams, media=video))
    if analysis is not None:
        sample["au_texts"] = analysis.summary_texts
    _, question = prompts.inference_question(no_reasoning)
    sample["prompt"] = prompts.build_prompt(ds.face_or_frame, subtitle, question, "au" if analysis else None)
    return sample, au_line, reader


def _read(reader, video: Path, streams, analysis) -> dict:
    """Encoder inputs sampled by the given AU analysis (``--au_json``), not a dataset's JSON."""
    from my_affectgpt.processors.media import clip_normalize
    from my_affectgpt.processors.raw_media import ENCODER_KEYS

    out = {}
    for stream in streams:
        value = reader.read(video.stem, stream, analysis, media=video).value
        out[ENCODER_KEYS[stream]] = clip_normalize(value) if stream != "audio" else value
    return out


def run_single_clip(cfg, registry, dataset: str, video: str, subtitle: str, au_json, no_reasoning: bool) -> int:
    from my_affectgpt.common.devices import autocast
    from my_affectgpt.datasets.collate import collate
    from my_affectgpt.evaluation.label_extraction import extract_labels
    from my_affectgpt.inference.engine import device_of, generation_settings
    from my_affectgpt.models.trained_weights import load_trained_weights, resolve_checkpoints

    if cfg.model.skip_encoders:
        raise UserError("single-clip mode encodes the raw video: set model.skip_encoders: False with "
                        "model.visual_encoder_path and model.acoustic_encoder_path")
    video = Path(video)
    if not video.is_file():
        raise UserFileNotFoundError(f"--video: {video} not found")
    cfg = clip_config(cfg.select([dataset]), dataset)
    sample, au_line, reader = clip_sample(cfg, dataset, video, subtitle, au_json, no_reasoning)
    model = registry.get_task_class(cfg.run.task)().build_model(cfg).to(device_of(cfg)).eval()
    _, ckpt_path = resolve_checkpoints(cfg)[0]
    load_trained_weights(model, ckpt_path)
    with autocast(cfg.run.device, cfg.run):
        answer = model.generate(collate([sample]), **generation_settings(cfg.inference))[0]
    fallbacks = reader.fallback_reports()
    lines = [au_line, *fallbacks, f"checkpoint: {ckpt_path}", f"answer: {answer}",
             f"labels: {', '.join(extract_labels(answer)) or '(none)'}"]
    print("\n".join(lines))
    return 0
