"""Every config of the original AffectGPT (both revisions) with only its paths changed.

``tests/fixtures/affectgpt_configs/`` holds each distinct config of the original repository:
the revision this project follows (447851e, plain names) and the later one (``later_revision__*``,
which added the nonverbal-text prompt). The test rewrites only their paths (LLM, encoders,
Q-Former config folder, data, feature and MER-Factory roots, result roots) to tiny local models
and data built here; each config then passes ``--check``, or, where it could not have worked in
the original either, ``--check`` names the exact problem. The four configs of the issue train
two iterations on CPU through ``train.py``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import train
from conftest import FIXTURES
from helpers_tiny_encoders import write_synthetic_clip
from my_affectgpt.common.config import main as config_main
from my_affectgpt.common.face_or_frame import FaceOrFrameError, parse_face_or_frame
from my_affectgpt.conversation.prompts import build_prompt

CONFIGS = FIXTURES / "affectgpt_configs"
LATER = "later_revision__"
N_SAMPLES = 4
CSVS = ("track2_train_mercaptionplus.csv", "track3_train_mercaptionplus.csv", "subtitle_chieng.csv")

NONVERBAL_PROBLEMS = [
    "inference.use_nonverbal_text: True is not supported: a later AffectGPT revision's nonverbal text",
    "datasets.mercaptionplus.use_nonverbal_text: True is not supported: a later AffectGPT revision's nonverbal text",
    "datasets.mercaptionplus: the AU block is on (face_or_frame '{}') but has no source",
]
# Configs that cannot pass, with the problems --check must list (every one, in one run).
CONTRADICTIONS = {
    # skip_encoders: True leaves the original's model without its CLIP and HuBERT, yet the dataset
    # block decodes raw media (use_preextracted_features: False): the original raised "Visual
    # encoder is None but trying to use real-time mode" at the first batch.
    "recommended_train_with_preextracted_au.yaml.yaml": [
        "model.skip_encoders is True but datasets.mercaptionplus reads face, audio, frame from raw media",
    ],
    # The later revision's nonverbal text (use_nonverbal_text: True) is not part of this project;
    # without it, its '_au' part asks for AU features, and these configs name no AU source.
    **{f"{LATER}emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_lz_{variant}.yaml":
       [p.format(f"multiface_audio_face{frame}_au_text") for p in NONVERBAL_PROBLEMS]
       for variant, frame in (("face_au_Nonverbal", ""), ("face_au_Nonverbal1", ""), ("face_frame_au", "_frame"),
                              ("face_frame_au_Nonverbal", "_frame"), ("face_frame_au_Nonverbal1", "_frame"))},
    # No revision's prompt builder has a 'face_frame_audio_au' template (the original stopped
    # with an UnboundLocalError); evaluation_datasets_cfg and ann_paths pass as ignored.
    f"{LATER}eval_mer2023_frame_preextract.yaml": [
        "datasets.mer2023.face_or_frame: 'face_frame_audio_au' is not valid. Did you mean 'faceframe_au'?",
    ],
}
# The four configs of the issue -> what they mean in the original: frame/face/audio from
# pre-extracted features (else raw media), model.skip_encoders, and the AU mode.
ISSUE_CONFIGS = {
    "emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_lz_face_frame_au.yaml": (True, True, "preextracted"),
    "emotionllama_affectgpt_UniBench.yaml": (False, False, None),
    "mercaptionplus_outputhybird_bestsetup_bestfusion_frame_lz.yaml": (False, False, None),
    f"{LATER}emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_lz_face_frame_au_peak.yaml":
        (True, False, "preextracted"),
}


@dataclass(frozen=True)
class World:
    llm: Path
    qformer: Path
    clip: Path
    hubert: Path
    agent: Path
    agent_lora: Path
    data: Path  # MER-Caption+ CSVs, video/ and openface_face/ for N_SAMPLES demo samples
    features: Path  # the demo's pre-extracted frame/face/audio/AU features
    mer: Path  # the demo's MER-Factory AU JSONs


def write_lora_adapter(base: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(str(out))
    return out


def write_raw_media(data: Path, demo_train: Path) -> None:
    """The first demo samples' CSV rows, with a synthetic clip and face crops each."""
    names = pd.read_csv(demo_train / CSVS[0])["name"][:N_SAMPLES].tolist()
    data.mkdir(parents=True)
    for csv in CSVS:
        table = pd.read_csv(demo_train / csv, keep_default_na=False)
        table[table["name"].isin(names)].to_csv(data / csv, index=False)
    (data / "video").mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        write_synthetic_clip(data / "video" / f"{name}.mp4", n_frames=12, tone_hz=300 + 100 * i)
        (data / "openface_face" / name).mkdir(parents=True)
        np.save(data / "openface_face" / name / f"{name}.npy", rng.integers(0, 255, (10, 48, 48, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def world(demo_assets, tmp_path_factory) -> World:
    from my_affectgpt.common.tiny_models import build_tiny_clip_vision, build_tiny_hubert

    root = tmp_path_factory.mktemp("original_configs")
    models = demo_assets / "models"
    write_raw_media(root / "data", demo_assets / "data" / "train")
    return World(
        llm=models / "tiny-qwen2", qformer=models / "tiny-bert",
        clip=build_tiny_clip_vision(root / "clip", projection_dim=768),
        hubert=build_tiny_hubert(root / "hubert", hidden_size=1024),
        agent=models / "tiny-au-agent", agent_lora=write_lora_adapter(models / "tiny-au-agent", root / "agent_lora"),
        data=root / "data", features=demo_assets / "data" / "features",
        mer=demo_assets / "data" / "mer_factory_output" / "DEMO",
    )


def path_options(cfg_path: Path, w: World, out: Path) -> list:
    """``--options`` that move every path the config has (and the model paths the original
    looked up by name) to this machine; nothing else."""
    raw = OmegaConf.to_container(OmegaConf.load(cfg_path))
    options = []
    if "model" in raw:
        model = raw["model"]
        options += [f"model.llama_model={w.llm}", f"model.qformer_config={w.qformer}",
                    f"model.visual_encoder_path={w.clip}", f"model.acoustic_encoder_path={w.hubert}"]
        options += [f"model.{key}={value}" for key, value in (("au_agent_base_model", w.agent),
                                                              ("au_agent_lora_weights", w.agent_lora)) if key in model]
    block_paths = {"preextracted_root": w.features, "mer_factory_output": w.mer, "video_root": w.data / "video",
                   "audio_root": w.data / "video", "face_root": w.data / "openface_face"}
    for name, block in (raw.get("datasets") or {}).items():
        options.append(f"datasets.{name}.data_root={w.data}")
        options += [f"datasets.{name}.{key}={value}" for key, value in block_paths.items() if key in block]
    inference = raw.get("inference") or {}
    inference_paths = {"base_root": out / "results", "mer_factory_output": w.mer}
    options += [f"inference.{key}={value}" for key, value in inference_paths.items() if key in inference]
    return options


def all_configs():
    return sorted(p.name for p in CONFIGS.glob("*.yaml"))


def short_id(name: str) -> str:
    """A test id under pytest's length limit (the common stem of the emercoarse configs dropped)."""
    return name.replace("emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_", "").removesuffix(".yaml")


def check(name: str, w: World, tmp_path: Path, *extra: str) -> int:
    """``python -m my_affectgpt.common.config --check`` on a fixture config with its paths moved."""
    path = CONFIGS / name
    return config_main(["--check", str(path), "--options", *path_options(path, w, tmp_path), *extra])


def test_the_fixtures_hold_both_revisions():
    names = all_configs()
    assert len(names) == 22
    assert sum(n.startswith(LATER) for n in names) == 9
    assert set(CONTRADICTIONS) | set(ISSUE_CONFIGS) <= set(names)


@pytest.mark.parametrize("name", all_configs(), ids=short_id)
def test_original_config_passes_check_with_paths_changed(world, tmp_path, capsys, name):
    rc = check(name, world, tmp_path)
    err = capsys.readouterr().err
    if name not in CONTRADICTIONS:
        assert rc == 0, err
        return
    assert rc == 2
    expected = CONTRADICTIONS[name]
    listed = [line[4:] for line in err.splitlines() if line.startswith("  - ")] or [err.split(": ", 2)[2]]
    assert len(listed) == len(expected), err
    for problem, start in zip(listed, expected):
        assert problem.startswith(start), err


def test_keys_without_effect_are_reported_once(world, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        assert check("emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_lz.yaml", world, tmp_path) == 0
    (note,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignored (")]
    ignored = note.split("): ", 1)[1].split(", ")
    assert "inference.clips_per_video" in ignored and "model.model_type" in ignored
    assert len(ignored) == len(set(ignored))


def test_nonverbal_text_switched_off_is_accepted(world, tmp_path):
    """The later revision's nonverbal configs load once the unsupported feature is switched off
    and their '_au' part has an AU source (its pre-extracted AU features)."""
    name = f"{LATER}emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_lz_face_au_Nonverbal.yaml"
    off = ["datasets.mercaptionplus.use_nonverbal_text=False", "inference.use_nonverbal_text=False",
           "datasets.mercaptionplus.use_preextracted_au=True"]
    assert check(name, world, tmp_path, *off) == 0


def test_later_revision_prompt_value_has_its_template():
    """``multiface_audio_face_au_text`` (later revision): with its AU part off, the later
    revision's text word for word; with it on, the AU sentence where that revision put its cues."""
    layout = parse_face_or_frame("multiface_audio_face_au_text")
    assert (layout.base, layout.has_au) == ("multiface_audio_face_text", True)
    later = ("###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. "
             "The audio content is as follows: <Audio><AudioHere></Audio>. "
             "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: "
             "<Video><FaceHere></Video>. The subtitle of this video is: <Subtitle>Hi.</Subtitle>. "
             "Now, please answer my question based on all the provided information. Q? ###Assistant: ")
    assert build_prompt("multiface_audio_face_au_text", "Hi.", "Q?") == later
    with_au = build_prompt("multiface_audio_face_au_text", "Hi.", "Q?", "au")
    au_sentence = "The AU (Action Unit) features are: <AU><AUHere></AU>. "
    assert with_au == later.replace("The subtitle", au_sentence + "The subtitle")


def test_single_image_value_is_refused_with_why():
    with pytest.raises(FaceOrFrameError, match="'image' is not supported: .*no dataset here has single images"):
        parse_face_or_frame("image")


@pytest.mark.parametrize("name", ISSUE_CONFIGS, ids=short_id)
def test_issue_config_trains_two_iterations_on_cpu(world, tmp_path, name):
    from my_affectgpt.common.checkpoint import load_checkpoint
    from my_affectgpt.common.config import load_config

    out = tmp_path / "out"
    run = ["run.max_epoch=1", "run.iters_per_epoch=2", "run.device=cpu", "run.num_workers=0", f"run.output_dir={out}"]
    assert train.main(["--cfg-path", str(CONFIGS / name), "--options", *path_options(CONFIGS / name, world, tmp_path),
                       *run]) == 0
    (line,) = (out / "log.txt").read_text().splitlines()
    assert np.isfinite(OmegaConf.create(line)["train_loss"])
    # the original's meaning: its defaults read raw media with the encoders; '_au' adds the AU branch
    preextracted, skip_encoders, au_mode = ISSUE_CONFIGS[name]
    saved = load_config(out / "config.yaml")
    block = saved.datasets["mercaptionplus"]
    assert [getattr(block, f"use_preextracted_{s}") for s in ("frame", "face", "audio")] == [preextracted] * 3
    assert saved.model.skip_encoders is skip_encoders
    assert saved.au_mode("mercaptionplus") == au_mode
    trained = load_checkpoint(out / "checkpoint_000001.pth")["model"]
    assert {"multi_llama_proj.weight", "audio_llama_proj.weight", "affectgpt_proj.weight"} <= set(trained)
    assert ("au_llama_proj.weight" in trained) is (au_mode is not None)
