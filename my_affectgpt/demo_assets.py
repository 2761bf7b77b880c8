"""The bundled demo: tiny models and a synthetic dataset in the real on-disk formats.

The emotion of every clip is a known function of its facial Action Units (FACS prototypes),
written as MER-Factory-style AU JSONs with per-frame values and ``summary_description`` texts;
the AU ``.npy`` features are those texts encoded by the (tiny) AU CLIP text tower, exactly as
``extract_multimodal_features_precompute.py --modality au`` would. Frame, face and audio
features carry a weaker class signal. Everything is seeded, so two builds are identical.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Dict, List

import numpy as np

from my_affectgpt.processors.facs import AU_NAMES
from my_affectgpt.datasets.features import FeatureLayout

DEMO_FOLDER = "DEMO"
CLASS_PROTOTYPES: Dict[str, tuple] = {
    "happy": ("AU06", "AU12"),
    "sad": ("AU01", "AU04", "AU15"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "angry": ("AU04", "AU05", "AU07", "AU23"),
    "worried": ("AU01", "AU02", "AU04", "AU20"),
    "neutral": (),
}
DISTRACTOR_AUS = ("AU09", "AU10", "AU14", "AU17", "AU25", "AU45")
SUBTITLES = (
    "I did not expect to see you here today.",
    "Well, that is what happened this morning.",
    "Can you tell me what is going on?",
    "I am fine, really.",
    "We should talk about it later.",
    "Nobody told me anything about this.",
)
VISUAL_DIM, ACOUSTIC_DIM, N_FRAMES, N_CLIPS, JSON_FRAMES = 768, 1024, 8, 8, 24


def describe(aus: Dict[str, float]) -> str:
    """MER-Factory's per-frame style: ``Cheek raiser (intensity: 2.31), ...``."""
    return ", ".join(f"{AU_NAMES[code]} (intensity: {value:.2f})" for code, value in aus.items())


def summary_text(aus: Dict[str, float]) -> str:
    """An objective, muscle-only sentence like the AU Agent writes."""
    if not aus:
        return "The face stays still, with no clear muscle movement."
    strong = [AU_NAMES[c].lower() for c, v in aus.items() if v >= 1.5]
    weak = [AU_NAMES[c].lower() for c, v in aus.items() if v < 1.5]
    text = f"Clear movement: {', '.join(strong)}." if strong else "No strong movement."
    return text + (f" Slight movement: {', '.join(weak)}." if weak else "")


def reason_text(label: str) -> str:
    aus = CLASS_PROTOTYPES[label]
    if not aus:
        return "No facial action unit is clearly active. The character's emotional state is neutral."
    names = ", ".join(AU_NAMES[c].lower() for c in aus)
    return f"The face shows {names}. The character's emotional state is {label}."


def make_au_json(label: str, rng: random.Random) -> Dict:
    """An extended-shape AU JSON: a peak in the clip, prototype AUs around it, noise AUs."""
    peak = rng.randrange(6, JSON_FRAMES - 6)
    frames = []
    for position in range(JSON_FRAMES):
        envelope = max(0.0, 1.0 - abs(position - peak) / 6.0)
        aus = {c: round(rng.uniform(1.6, 3.6) * envelope, 2) for c in CLASS_PROTOTYPES[label]}
        if rng.random() < 0.3:
            aus[rng.choice(DISTRACTOR_AUS)] = round(rng.uniform(0.4, 1.4), 2)
        aus = {c: v for c, v in aus.items() if v >= 0.3}
        frames.append({
            "frame": position + 1,
            "timestamp": round(position / 15.0, 3),
            "au_description": describe(aus),
            "active_aus": {f"{c}_r": v for c, v in aus.items()},
            "is_peak_frame": position == peak,
        })
    chosen = sorted({peak} | set(rng.sample(range(JSON_FRAMES), rng.randint(2, 7))))
    summaries = {}
    for position in chosen:
        aus = {k[:4]: v for k, v in frames[position]["active_aus"].items()}
        summaries[str(position + 1)] = summary_text(aus)
    return {
        "per_frame_au_descriptions": frames,
        "au_info": {"total_frames": JSON_FRAMES, "peak_frames": [{"peak_index": peak}]},
        "summary_description": summaries,
    }


def demo_feature_layout(data_dir: Path) -> FeatureLayout:
    """The demo's features, named as the extractor names CLIP ViT-L/14 and HuBERT-large ones."""
    return FeatureLayout(data_dir / "features", "CLIP_VIT_LARGE", "HUBERT_LARGE", N_FRAMES, N_CLIPS)


def _class_directions(dim: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    return {label: rng.standard_normal(dim).astype(np.float32) for label in CLASS_PROTOTYPES}


def _write_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array.astype(np.float32), allow_pickle=False)


def _write_split(split_dir: Path, rows: List[Dict]) -> None:
    import pandas as pd

    split_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"name": [r["name"] for r in rows], "openset": [str([r["label"]]) for r in rows]}).to_csv(
        split_dir / "track2_train_mercaptionplus.csv", index=False)
    pd.DataFrame({"name": [r["name"] for r in rows], "reason": [reason_text(r["label"]) for r in rows]}).to_csv(
        split_dir / "track3_train_mercaptionplus.csv", index=False)
    pd.DataFrame({"name": [r["name"] for r in rows], "english": [r["subtitle"] for r in rows],
                  "chinese": ["" for _ in rows]}).to_csv(split_dir / "subtitle_chieng.csv", index=False)


def build_demo_data(data_dir: Path, n_train: int, n_test: int, seed: int, signal: float = 0.35) -> List[Dict]:
    """Write CSVs, AU JSONs and frame/face/audio features; return the sample rows."""
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    directions = {"visual": _class_directions(VISUAL_DIM, np_rng), "audio": _class_directions(ACOUSTIC_DIM, np_rng)}
    labels = list(CLASS_PROTOTYPES)
    layout = demo_feature_layout(data_dir)
    rows = []
    for i in range(n_train + n_test):
        split = "train" if i < n_train else "test"
        row = {"name": f"demo_{split}_{i:05d}", "label": labels[i % len(labels)], "split": split,
               "subtitle": rng.choice(SUBTITLES)}
        rows.append(row)
        json_dir = data_dir / "mer_factory_output" / DEMO_FOLDER / row["name"]
        json_dir.mkdir(parents=True, exist_ok=True)
        (json_dir / f"{row['name']}_au_analysis.json").write_text(json.dumps(make_au_json(row["label"], rng), indent=1))
        for modality, dim, key in (("frame", VISUAL_DIM, "visual"), ("face", VISUAL_DIM, "visual"),
                                   ("audio", ACOUSTIC_DIM, "audio")):
            signal_vec = signal * directions[key][row["label"]]
            array = np_rng.standard_normal((layout.rows(modality), dim)).astype(np.float32) + signal_vec
            _write_npy(layout.path(modality, row["name"]), array)
    for split in ("train", "test"):
        _write_split(data_dir / split, [r for r in rows if r["split"] == split])
    return rows


def build_demo_assets(out_dir: Path, n_train: int = 600, n_test: int = 120, seed: int = 0) -> Dict[str, Path]:
    """Build everything the demo configs point at, under ``out_dir``."""
    from my_affectgpt.common.tiny_models import build_tiny_bert_config, build_tiny_llm, build_tiny_open_clip
    from my_affectgpt.extraction.au import extract_au_features

    out_dir = Path(out_dir)
    models_dir, data_dir = out_dir / "models", out_dir / "data"
    corpus = [reason_text(label) for label in CLASS_PROTOTYPES] + list(SUBTITLES)
    llm = build_tiny_llm(models_dir / "tiny-qwen2", extra_texts=corpus, seed=seed)
    clip_json, clip_weights = build_tiny_open_clip(models_dir / "tiny-au-clip", seed=seed)
    agent = build_tiny_llm(models_dir / "tiny-au-agent", extra_texts=corpus, seed=seed + 1)
    qformer = build_tiny_bert_config(models_dir / "tiny-bert")
    rows = build_demo_data(data_dir, n_train, n_test, seed)
    extract_au_features(
        json_root=data_dir / "mer_factory_output",
        dataset_folder=DEMO_FOLDER,
        names=[r["name"] for r in rows],
        save_dir=demo_feature_layout(data_dir).folder("au"),
        clip_model=str(clip_json),
        clip_pretrained=str(clip_weights),
    )
    return {"llm": llm, "au_clip_json": clip_json, "au_clip_weights": clip_weights, "au_agent": agent,
            "qformer_config": qformer, "data": data_dir}


def main(argv=None) -> int:
    """``python -m my_affectgpt.demo_assets [--out demo_assets]``: build what the demo configs use."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m my_affectgpt.demo_assets", description=main.__doc__)
    parser.add_argument("--out", default="demo_assets", help="folder to build into (default: demo_assets)")
    args = parser.parse_args(argv)
    built = build_demo_assets(Path(args.out))
    print("\n".join(f"{key}: {path}" for key, path in built.items()))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
