"""BaseDataset, the MER-Caption+/demo and MER-UniBench readers, collation and bad-sample policy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FIXTURES, demo_config
from my_affectgpt.common.config import validate
from my_affectgpt.common.errors import UserError
from my_affectgpt.datasets.errors import BadSampleError
from my_affectgpt.datasets.builders import DemoBuilder
from my_affectgpt.datasets.collate import collate
from my_affectgpt.datasets import unibench


def build_demo(assets: Path, tmp_path: Path, split="train", run=None, **ds_overrides):
    raw = demo_config(assets, tmp_path / "out")
    raw["datasets"]["demo"].update(ds_overrides)
    raw["datasets"]["demo"]["data_root"] = str(assets / "data" / split)
    raw["run"].update(run or {})
    cfg = validate(raw)
    return DemoBuilder(cfg, "demo").build()[cfg.datasets["demo"].split], cfg


def test_ovlabel_prompt_and_target_exact(demo_assets, tmp_path):
    dataset, _ = build_demo(demo_assets, tmp_path, label_type="ovlabel")
    sample = dataset[0]
    record = dataset.records[0]
    assert sample["prompt"] == (
        "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. "
        "The audio content is as follows: <Audio><AudioHere></Audio>. "
        "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: "
        "<Video><FaceHere></Video>. "
        "The AU (Action Unit) features are: <AU><AUHere></AU>. "
        f"The subtitle of this video is: <Subtitle>{record['subtitle']}</Subtitle>. "
        "Now, please answer my question based on all the provided information. "
        "Please recognize all possible emotional states of the character. ###Assistant: "
    )
    assert sample["answer"] == f"The character's emotional state is {record['label']}."
    assert sample["face"].shape == (8, 768) and sample["audio"].shape == (8, 1024)
    assert sample["au"].ndim == 2 and sample["au"].shape[1] == 512
    assert "frame" not in sample  # multiface prompts carry no frame features


def test_description_target_is_the_reason(demo_assets, tmp_path):
    dataset, _ = build_demo(demo_assets, tmp_path, label_type="description")
    sample = dataset[3]
    assert sample["prompt"].endswith("Please infer the person's emotional state and provide your reasoning process. ###Assistant: ")
    assert sample["answer"] == dataset.records[3]["reason"]


def test_hybrid_is_deterministic_per_pass_and_varies_across_passes(demo_assets, tmp_path):
    dataset, _ = build_demo(demo_assets, tmp_path, label_type="hybird")  # the original spelling
    first = [dataset[i]["answer"] for i in range(len(dataset))]
    assert first == [dataset[i]["answer"] for i in range(len(dataset))]
    assert {a.startswith("The face shows") or a.startswith("No facial") for a in first} == {True, False}
    dataset.set_epoch(1)
    second = [dataset[i]["answer"] for i in range(len(dataset))]
    assert first != second


def test_collate_pads_variable_au_rows(demo_assets, tmp_path):
    dataset, _ = build_demo(demo_assets, tmp_path)
    samples = [dataset[i] for i in range(6)]
    rows = [s["au"].shape[0] for s in samples]
    assert len(set(rows)) > 1, "the demo should have a varying number of AU rows"
    batch = collate(samples)
    assert batch["au"].shape == (6, max(rows), 512)
    assert batch["au_mask"].sum(1).tolist() == rows
    for i, n in enumerate(rows):
        assert torch.equal(batch["au"][i, :n], samples[i]["au"])
        assert batch["au"][i, n:].abs().sum() == 0
    assert batch["face"].shape == (6, 8, 768)
    assert batch["names"] == [s["name"] for s in samples] and len(batch["prompt"]) == 6


def _copy_assets(demo_assets: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "assets"
    shutil.copytree(demo_assets, copy, ignore=shutil.ignore_patterns("models"))
    (copy / "models").symlink_to(demo_assets / "models")
    return copy


def test_missing_feature_file_is_an_error_naming_it(demo_assets, tmp_path):
    assets = _copy_assets(demo_assets, tmp_path)
    dataset, _ = build_demo(assets, tmp_path)
    victim = assets / "data/features/face_CLIP_VIT_LARGE_8frms" / f"{dataset.records[1]['name']}.npy"
    victim.unlink()
    with pytest.raises(BadSampleError, match="face_CLIP_VIT_LARGE_8frms") as info:
        dataset[1]
    assert "on_bad_sample: skip" in str(info.value)


def test_nan_features_are_skipped_and_counted_under_skip_policy(demo_assets, tmp_path):
    assets = _copy_assets(demo_assets, tmp_path)
    dataset, _ = build_demo(assets, tmp_path, run={"on_bad_sample": "skip"})
    name = dataset.records[2]["name"]
    path = assets / "data/features/audio_HUBERT_LARGE_8clips" / f"{name}.npy"
    bad = np.load(path)
    bad[0, 0] = np.nan
    np.save(path, bad)
    batch = collate([dataset[i] for i in range(4)])
    assert name not in batch["names"] and len(batch["names"]) == 3
    assert len(batch["skipped"]) == 1 and "NaN" in batch["skipped"][0] and name in batch["skipped"][0]


def test_sample_names_with_path_parts_are_rejected(demo_assets, tmp_path):
    assets = _copy_assets(demo_assets, tmp_path)
    csv = assets / "data/train/track2_train_mercaptionplus.csv"
    frame = pd.read_csv(csv)
    frame.loc[0, "name"] = "../../etc/passwd"
    frame.to_csv(csv, index=False)
    with pytest.raises(ValueError, match="path separator or '..'"):
        build_demo(assets, tmp_path)


def test_empty_csv_is_a_clear_error(demo_assets, tmp_path):
    assets = _copy_assets(demo_assets, tmp_path)
    (assets / "data/train/track2_train_mercaptionplus.csv").write_text("")
    with pytest.raises(UserError, match="track2_train_mercaptionplus.csv is empty"):
        build_demo(assets, tmp_path)


def test_au_modes_give_features_texts_or_agent_frames(demo_assets, tmp_path):
    pre, _ = build_demo(demo_assets, tmp_path)
    realtime, _ = build_demo(demo_assets, tmp_path, use_au_clip_realtime=True)
    off, _ = build_demo(demo_assets, tmp_path, use_au=False)
    assert pre.au.mode == "preextracted" and realtime.au.mode == "realtime" and off.au.mode is None
    name = pre.records[0]["name"]
    path = demo_assets / "data/mer_factory_output/DEMO" / name / f"{name}_au_analysis.json"
    summary = json.loads(path.read_text())["summary_description"]
    expected = [summary[k] for k in sorted(summary, key=int)]
    assert realtime[0]["au_texts"] == expected
    assert pre[0]["au"].shape[0] == len(expected)
    assert "<AU>" not in off[0]["prompt"] and "au" not in off[0]


# -- MER-UniBench readers ---------------------------------------------------------------------

def _npz(path: Path, **splits):
    np.savez(path, **{k: np.array(v, dtype=object) for k, v in splits.items()})


def _subtitles(root: Path, names, file="transcription-engchi-polish.csv"):
    pd.DataFrame({"name": names, "chinese": ["" for _ in names], "english": [f"line {n}" for n in names]}).to_csv(
        root / file, index=False)


def _unibench(name: str, root: Path, tmp_path: Path, **overrides):
    block = {"data_root": str(root), "face_or_frame": "face_text", "preextracted_root": str(tmp_path / "feats"), **overrides}
    cfg = validate({"model": {}, "datasets": {name: block}, "run": {}})
    builder = unibench.registry.get_builder_class(name)(cfg, name)
    (dataset,) = builder.build(question=("labels", "Q?")).values()
    return dataset


def test_mer2023_reads_the_test1_split_of_label_6way(tmp_path):
    root = tmp_path / "mer2023"
    root.mkdir()
    _npz(root / "label-6way.npz",
         train_corpus={"a": {"emo": "happy", "val": 1.0}},
         test1_corpus={"s1": {"emo": "sad", "val": -1.0}, "s2": {"emo": "worried", "val": -0.5}})
    _subtitles(root, ["s1", "s2"])
    dataset = _unibench("mer2023", root, tmp_path)
    assert dataset.eval_kind == "discrete" and dataset.gold() == {"s1": "sad", "s2": "worried"}
    assert dataset.records[0]["subtitle"] == "line s1"
    assert dataset.au.locator is None and dataset.dataset_folder() == "MER2023"


def test_cmumosi_valence_and_meld_sub_folders(tmp_path):
    root = tmp_path / "mosi"
    root.mkdir()
    _npz(root / "label.npz", test_corpus={"v1": {"emo": 0, "val": 1.4}, "v2": {"emo": 0, "val": -2.0}})
    _subtitles(root, ["v1", "v2"])
    mosi = _unibench("cmumosi", root, tmp_path)
    assert mosi.eval_kind == "sentiment" and mosi.gold() == {"v1": 1.4, "v2": -2.0}
    assert mosi.media_root("video") == root / "subvideo"
    meld_root = tmp_path / "meld"
    meld_root.mkdir()
    _npz(meld_root / "label.npz", test_corpus={"m1": {"emo": "joy", "val": 0.0}})
    _subtitles(meld_root, ["m1"])
    meld = _unibench("meld", meld_root, tmp_path, video_root=str(tmp_path / "elsewhere"))
    assert meld.media_root("video") == tmp_path / "elsewhere" and meld.media_root("audio") == meld_root / "subaudio"


def test_ovmerdplus_reads_ovlabel_csv(tmp_path):
    root = tmp_path / "ovmerdplus"
    root.mkdir()
    pd.DataFrame({"name": ["o1", "o2"], "openset": ["['happy', 'excited']", "sad, tired"]}).to_csv(
        root / "ovlabel.csv", index=False)
    _subtitles(root, ["o1", "o2"], file="subtitle_eng.csv")
    dataset = _unibench("ovmerdplus", root, tmp_path)
    assert dataset.eval_kind == "openset"
    assert dataset.gold() == {"o1": ["happy", "excited"], "o2": ["sad", "tired"]}


def test_feature_files_never_unpickle(tmp_path):
    feature = tmp_path / "f.npy"
    with open(feature, "wb") as fh:
        np.save(fh, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    from my_affectgpt.datasets.features import load_feature_npy

    with pytest.raises(BadSampleError, match="unreadable feature file"):
        load_feature_npy("x", feature)


def test_upstream_json_with_openface_csv_feeds_the_au_agent(demo_assets, tmp_path):
    import shutil

    assets = _copy_assets(demo_assets, tmp_path)
    raw = demo_config(assets, tmp_path / "out")
    raw["model"].update(use_au_agent=True, au_agent_base_model=str(assets / "models" / "tiny-au-agent"))
    dataset = DemoBuilder(validate(raw), "demo").build()["train"]
    name = dataset.records[0]["name"]
    folder = assets / "data/mer_factory_output/DEMO" / name
    upstream = FIXTURES / "mer_factory_upstream"
    shutil.copy(upstream / "default_au_analysis.json", folder / f"{name}_au_analysis.json")
    shutil.copy(upstream / "default_openface.csv", folder / f"{name}.csv")
    frames = dataset[0]["au_agent_frames"]
    assert len(frames) == 1 and frames[0]["active_aus"]
    assert frames[0]["frame"] in (154, 177, 222)  # upstream's own peaks, located in the CSV


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_sample_gives_the_same_one_line_error_with_and_without_workers(demo_assets, tmp_path, capsys, workers):
    import train
    from conftest import write_config

    assets = _copy_assets(demo_assets, tmp_path)
    for path in sorted((assets / "data/features/face_CLIP_VIT_LARGE_8frms").glob("*.npy"))[::2]:
        path.unlink()  # every other sample: the first batch surely has one
    cfg = demo_config(assets, tmp_path / "out")
    cfg["run"].update(num_workers=workers, max_epoch=1, iters_per_epoch=2)
    assert train.main(["--cfg-path", str(write_config(cfg, tmp_path / "cfg.yaml"))]) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: sample '") and "face_CLIP_VIT_LARGE_8frms" in line
    assert "Traceback" not in err and "DataLoader worker" not in err
