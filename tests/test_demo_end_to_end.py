"""The real CLIs on the tiny demo: train.py, then inference.py (results, resume, scores)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import inference
import train
from conftest import demo_config, write_config
from my_affectgpt.demo_assets import CLASS_PROTOTYPES

TRAIN_OPTIONS = [
    "run.max_epoch=2", "run.iters_per_epoch=60", "run.warmup_steps=10", "run.log_freq=20", "run.num_workers=0",
]


@pytest.fixture(scope="module")
def trained_run(demo_assets, tmp_path_factory):
    """A demo model trained for 120 steps; returns (output dir, per-step losses)."""
    out = tmp_path_factory.mktemp("demo_run")
    cfg_path = write_config(demo_config(demo_assets, out), out / "train.yaml")
    assert train.main(["--cfg-path", str(cfg_path), "--options", *TRAIN_OPTIONS]) == 0
    losses = np.load(out / "training_curves" / "training_data_epoch2.npz")["losses"]
    return out, losses


def eval_config(demo_assets: Path, run_dir: Path, out: Path, **inference_keys) -> Path:
    cfg = demo_config(demo_assets, run_dir, shipped="eval_configs/demo.yaml")
    cfg["run"]["output_dir"] = str(out)
    cfg["run"]["num_workers"] = 0
    cfg["inference"].update({"test_epoch": 1, "max_new_tokens": 24, **inference_keys})
    return write_config(cfg, out.parent / f"{out.name}.yaml")


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_demo_loss_falls_well_below_its_start(trained_run):
    out, losses = trained_run
    assert len(losses) == 120
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    assert (out / "checkpoint_000001.pth").is_file() and (out / "checkpoint_000002.pth").is_file()
    assert (out / "config.yaml").is_file() and len((out / "log.txt").read_text().splitlines()) == 2


def test_inference_writes_results_name2reason_and_scores(demo_assets, trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "eval"
    assert inference.main(["--cfg-path", str(eval_config(demo_assets, run_dir, out))]) == 0
    results = out / "results-demo" / "checkpoint_000001.jsonl"
    records = read_jsonl(results)
    assert sorted(r["name"] for r in records) == sorted(f"demo_test_{i:05d}" for i in range(48, 60))
    assert {r["prompt_kind"] for r in records} == {"reasoning"}
    name2reason = np.load(results.with_suffix(".npz"), allow_pickle=True)["name2reason"].item()
    assert name2reason == {r["name"]: r["answer"] for r in records}
    scores = json.loads((out / "scores.json").read_text())
    metrics = scores["datasets"]["demo"]["checkpoints"]["checkpoint_000001"]
    assert metrics["n_samples"] == 12 and metrics["label_source"] == "cached"


@pytest.mark.parametrize("flags, least", [([], 1.5), (["--no_reasoning"], 3.0)])
def test_the_trained_demo_answers_better_than_chance(demo_assets, trained_run, tmp_path, flags, least):
    """After 120 steps the answers name the right emotion well above chance (1 in 6): with the
    reasoning question (long answers, the label at the end) and with the labels question."""
    run_dir, _ = trained_run
    out = tmp_path / "eval"
    cfg_path = eval_config(demo_assets, run_dir, out, test_epoch=2, max_new_tokens=48)
    assert inference.main(["--cfg-path", str(cfg_path), *flags]) == 0
    metrics = json.loads((out / "scores.json").read_text())["datasets"]["demo"]["checkpoints"]["checkpoint_000002"]
    chance = 1 / len(CLASS_PROTOTYPES)
    assert metrics["accuracy"] >= least * chance, f"not well above chance ({chance:.2f}): {metrics}"


def test_batched_generation_equals_batch_size_one(demo_assets, trained_run, tmp_path):
    run_dir, _ = trained_run
    answers = {}
    for size in (1, 4):
        out = tmp_path / f"b{size}"
        assert inference.main(["--cfg-path", str(eval_config(demo_assets, run_dir, out, batch_size=size))]) == 0
        answers[size] = {r["name"]: r["answer"] for r in read_jsonl(out / "results-demo" / "checkpoint_000001.jsonl")}
    assert answers[1] == answers[4]


def test_a_killed_run_resumes_without_duplicates_or_gaps(demo_assets, trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "eval"
    cfg_path = eval_config(demo_assets, run_dir, out, batch_size=4)
    assert inference.main(["--cfg-path", str(cfg_path)]) == 0
    results = out / "results-demo" / "checkpoint_000001.jsonl"
    full = read_jsonl(results)
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # killed mid-write
    assert inference.main(["--cfg-path", str(cfg_path)]) == 0
    resumed = read_jsonl(results)
    assert len(resumed) == len(full) == 12
    assert {r["name"]: r["answer"] for r in resumed} == {r["name"]: r["answer"] for r in full}


def test_no_reasoning_asks_for_labels(demo_assets, trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "labels"
    assert inference.main(["--cfg-path", str(eval_config(demo_assets, run_dir, out)), "--no_reasoning"]) == 0
    records = read_jsonl(out / "results-demo" / "checkpoint_000001.jsonl")
    assert {r["prompt_kind"] for r in records} == {"labels"}


def test_epoch_range_evaluates_each_checkpoint(demo_assets, trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "range"
    cfg_path = eval_config(demo_assets, run_dir, out, test_epoch=None, test_epochs="1-2", skip_epoch=1)
    assert inference.main(["--cfg-path", str(cfg_path), "--dataset", "demo"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert sorted(scores["datasets"]["demo"]["checkpoints"]) == ["checkpoint_000001", "checkpoint_000002"]


def test_missing_checkpoint_and_unknown_dataset_are_one_line_errors(demo_assets, trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    cfg_path = eval_config(demo_assets, run_dir, tmp_path / "e", test_epoch=7)
    assert inference.main(["--cfg-path", str(cfg_path)]) == 2
    assert "checkpoint_000007.pth" in capsys.readouterr().err
    cfg_path = eval_config(demo_assets, run_dir, tmp_path / "e2")
    assert inference.main(["--cfg-path", str(cfg_path), "--dataset", "mer2023"]) == 2
    assert "not in the config's datasets" in capsys.readouterr().err


def test_single_sample_script_shows_every_stage(demo_assets, trained_run, tmp_path, capsys):
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("test_single_sample", REPO_ROOT / "scripts" / "test_single_sample.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run_dir, _ = trained_run
    cfg_path = eval_config(demo_assets, run_dir, tmp_path / "single", use_au_clip_realtime=True)
    assert script.main(["--cfg-path", str(cfg_path), "--sample", "demo_test_00050"]) == 0
    out = capsys.readouterr().out
    assert "AU channel: realtime from" in out and "demo_test_00050_au_analysis.json" in out
    assert "au_texts: list of" in out and "face: tensor [8, 768]" in out
    assert "== prompt\n###Human:" in out and "checkpoint_000001.pth" in out and "== answer" in out
    assert script.main(["--cfg-path", str(cfg_path), "--sample", "nope"]) == 2


def test_exported_folder_gives_the_same_answers_as_its_checkpoint(demo_assets, trained_run, tmp_path):
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("export_model", REPO_ROOT / "scripts" / "export_model.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run_dir, _ = trained_run
    exported = tmp_path / "exported"
    assert script.main(["--run-dir", str(run_dir), "--ckpt", str(run_dir / "checkpoint_000001.pth"),
                        "--out", str(exported)]) == 0
    assert {p.name for p in exported.iterdir()} == {"adapter", "fusion.safetensors", "config.yaml"}
    answers = {}
    for name, ckpt in (("ckpt", run_dir / "checkpoint_000001.pth"), ("export", exported)):
        out = tmp_path / name
        cfg_path = eval_config(demo_assets, run_dir, out, ckpt=str(ckpt), test_epoch=None, max_new_tokens=12)
        assert inference.main(["--cfg-path", str(cfg_path)]) == 0
        (results,) = (out / "results-demo").glob("*.jsonl")
        answers[name] = {r["name"]: r["answer"] for r in read_jsonl(results)}
    assert answers["ckpt"] == answers["export"]


def frame_based_clip_setup(demo_assets, tmp_path, max_new_tokens, **dataset_keys):
    """A run trained on frames (the only inputs a user's clip has), a synthetic clip, and an eval
    config that loads tiny encoders for it: (run_dir, video, eval_cfg)."""
    from helpers_tiny_encoders import write_synthetic_clip
    from my_affectgpt.common.tiny_models import build_tiny_clip_vision, build_tiny_hubert

    run_dir = tmp_path / "frame_run"
    train_cfg = demo_config(demo_assets, run_dir)
    train_cfg["datasets"]["demo"]["face_or_frame"] = "multiframe_audio_frame_au_text"
    assert train.main(["--cfg-path", str(write_config(train_cfg, tmp_path / "t.yaml")), "--options",
                       "run.max_epoch=1", "run.iters_per_epoch=1", "run.num_workers=0"]) == 0
    video = write_synthetic_clip(tmp_path / "my_clip.mp4", n_frames=12, audio_seconds=3.0)
    eval_cfg = demo_config(demo_assets, run_dir, shipped="eval_configs/demo.yaml")
    eval_cfg["datasets"]["demo"].update(face_or_frame="multiframe_audio_frame_au_text", **dataset_keys)
    eval_cfg["model"].update(skip_encoders=False,
                             visual_encoder_path=str(build_tiny_clip_vision(tmp_path / "clip", projection_dim=768)),
                             acoustic_encoder_path=str(build_tiny_hubert(tmp_path / "hubert", hidden_size=1024)))
    eval_cfg["inference"].update(test_epoch=1, max_new_tokens=max_new_tokens)
    return run_dir, video, eval_cfg


def test_single_clip_mode_answers_for_a_users_video(demo_assets, tmp_path, capsys):
    run_dir, video, eval_cfg = frame_based_clip_setup(demo_assets, tmp_path, max_new_tokens=8)
    cfg_path = write_config(eval_cfg, tmp_path / "e.yaml")

    name = "demo_test_00050"
    au_json = demo_assets / "data/mer_factory_output/DEMO" / name / f"{name}_au_analysis.json"
    for extra, au_line in (([], "AU block left out"), (["--au_json", str(au_json)], "AU block: ")):
        assert inference.main(["--cfg-path", str(cfg_path), "--video", str(video), "--subtitle", "hi", *extra]) == 0
        out = capsys.readouterr().out
        assert au_line in out and "answer: " in out and "checkpoint_000001.pth" in out

    shipped_demo = write_config(demo_config(demo_assets, run_dir, shipped="eval_configs/demo.yaml"), tmp_path / "d.yaml")
    assert inference.main(["--cfg-path", str(shipped_demo), "--video", str(video)]) == 2
    assert "skip_encoders: False" in capsys.readouterr().err


def test_results_of_a_replaced_checkpoint_are_not_mixed_in(demo_assets, trained_run, tmp_path, capsys):
    import os
    import shutil

    run_dir, _ = trained_run
    ckpt_dir = tmp_path / "ckpts"
    ckpt_dir.mkdir()
    shutil.copy(run_dir / "checkpoint_000001.pth", ckpt_dir / "checkpoint_000001.pth")
    out = tmp_path / "eval"
    cfg_path = eval_config(demo_assets, ckpt_dir, out, max_new_tokens=4)
    assert inference.main(["--cfg-path", str(cfg_path)]) == 0
    shutil.copy(run_dir / "checkpoint_000002.pth", ckpt_dir / "checkpoint_000001.pth")  # retrained
    os.utime(ckpt_dir / "checkpoint_000001.pth", ns=(1, 1))
    assert inference.main(["--cfg-path", str(cfg_path)]) == 2
    assert "move the results folder away" in capsys.readouterr().err


@pytest.mark.parametrize("change, differs", [
    (["--no_reasoning"], "prompt_kind: 'reasoning' -> 'labels'"),
    (["--options", "inference.max_new_tokens=6"], "generation.max_new_tokens: 4 -> 6"),
    (["--options", "inference.use_au_clip_realtime=True"], "au_mode: 'preextracted' -> 'realtime'"),
    (["--options", "datasets.demo.frame_n_frms=4"], "dataset.frame_n_frms: 8 -> 4"),
])
def test_a_results_file_of_other_settings_is_not_resumed(demo_assets, trained_run, tmp_path, capsys, change, differs):
    """Rerunning into a results folder with anything that changes an answer is refused, naming
    what changed, instead of answering '0 new answers' and rescoring the old ones."""
    run_dir, _ = trained_run
    out = tmp_path / "eval"
    cfg_path = eval_config(demo_assets, run_dir, out, max_new_tokens=4)
    assert inference.main(["--cfg-path", str(cfg_path)]) == 0
    capsys.readouterr()
    assert inference.main(["--cfg-path", str(cfg_path), *change]) == 2
    err = capsys.readouterr().err
    assert "made with other settings" in err and differs in err
    assert inference.main(["--cfg-path", str(cfg_path)]) == 0  # the same settings resume


def test_single_clip_says_when_emotion_peak_falls_back(demo_assets, tmp_path, capsys):
    """--video with frame_sampling emotion_peak and an AU JSON without peaks says it sampled uniformly."""
    _, video, eval_cfg = frame_based_clip_setup(demo_assets, tmp_path, max_new_tokens=4, frame_sampling="emotion_peak")
    au_json = tmp_path / "my_clip" / "my_clip_au_analysis.json"
    au_json.parent.mkdir()
    au_json.write_text(json.dumps({"summary_description": {"3": "The cheeks rise."}}))  # no peaks, no CSV
    cfg_path = write_config(eval_cfg, tmp_path / "e.yaml")
    assert inference.main(["--cfg-path", str(cfg_path), "--video", str(video), "--au_json", str(au_json)]) == 0
    out = capsys.readouterr().out
    assert "frame_sampling=emotion_peak for my_clip.mp4: 1 of 1 sample(s) fell back to uniform sampling" in out
    assert "without AU peaks" in out
