"""Datasets read the original AffectGPT's data and feature folders, and say which file and
row is wrong when one is (open-set spellings, CSV problems, gold labels, feature files)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from my_affectgpt.common.config import validate
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.registry import registry
from my_affectgpt.datasets import unibench  # noqa: F401 - registers the test-set builders
from my_affectgpt.datasets.collate import collate
from my_affectgpt.datasets.errors import BadSampleError
from my_affectgpt.datasets.features import FeatureFolderNotFoundError, FeatureLayout

REFERENCE_DATA = Path(__file__).parent / "fixtures" / "affectgpt_data" / "mer2025-dataset"
QUESTION = ("ovlabel", "Please recognize all possible emotional states of the character.")


def _build(name: str, block: dict, model: dict | None = None, run: dict | None = None, question=None):
    cfg = validate({"model": model or {}, "datasets": {name: block}, "run": run or {}})
    builder = registry.get_builder_class(name)(cfg, name)
    (dataset,) = builder.build(question=question).values()
    return dataset


def _features(root: Path, names, folders: dict) -> Path:
    """``folders``: folder name -> (rows, width) of every sample's matrix."""
    rng = np.random.default_rng(0)
    for folder, (rows, width) in folders.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            np.save(root / folder / f"{name}.npy", rng.standard_normal((rows, width)).astype(np.float32))
    return root


def _data_copy(tmp_path: Path) -> Path:
    root = tmp_path / "mer2025-dataset"
    shutil.copytree(REFERENCE_DATA, root)
    return root


NAMES = [f"sample_0000000{i}" for i in range(1, 5)]
FACE_AUDIO = {"face_CLIP_VIT_LARGE_8frms": (8, 768), "audio_HUBERT_LARGE_8clips": (8, 1024)}


def _mercaptionplus(root: Path, feats: Path, **block):
    base = {"data_root": str(root), "face_or_frame": "multiface_audio_face_text", "label_type": "hybird",
            "preextracted_root": str(feats), "use_preextracted_features": True, "use_au": False}
    return base | block


# -- the original's MER-Caption+ data folder --------------------------------------------------


def test_reference_data_folder_trains_and_tests(tmp_path):
    feats = _features(tmp_path / "feats", NAMES, FACE_AUDIO)
    train = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats))
    assert [r["name"] for r in train.records] == NAMES
    assert train.records[0]["openset"] == ["angry", "surprised"]
    assert train.records[0]["reason"].startswith("In the video, the man frowns")
    assert train.records[1]["subtitle"] == "Oh wow, we finally won the game!"
    chinese = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats, subtitle_column="chinese"))
    assert chinese.records[0]["subtitle"] == ""  # an empty subtitle cell, as the original reads it
    # the reference's inference block: split test, names from the training label CSV
    test = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats, split="test"), question=QUESTION)
    assert [r["name"] for r in test.records] == NAMES
    assert test.gold()["sample_00000003"] == ["sad"]
    sample = test[0]
    assert sample["answer"] == "" and sample["face"].shape == (8, 768)


def test_open_set_cells_in_every_original_spelling(tmp_path):
    root = _data_copy(tmp_path)
    (root / "track2_train_mercaptionplus.csv").write_text(
        "name,openset\nsample_00000001,[joyful]\nsample_00000002,\"[happy, excited]\"\n"
        "sample_00000003,\"sad, tired\"\nsample_00000004,\n", encoding="utf-8")
    dataset = _build("mercaptionplus", _mercaptionplus(root, tmp_path / "feats"))
    assert [r["openset"] for r in dataset.records] == [["joyful"], ["happy", "excited"], ["sad", "tired"], ["neutral"]]


def test_conflicting_duplicate_rows_name_both_lines(tmp_path):
    root = _data_copy(tmp_path)
    track2 = root / "track2_train_mercaptionplus.csv"
    track2.write_text(track2.read_text() + "sample_00000001,\"['angry', 'surprised']\"\n")
    assert len(_build("mercaptionplus", _mercaptionplus(root, tmp_path / "feats")).records) == 4  # identical: fine
    track2.write_text(track2.read_text() + "sample_00000003,['happy']\n")
    with pytest.raises(UserError, match=r"track2_train_mercaptionplus.csv, lines 4 and 7: sample 'sample_00000003' "
                                        r"appears twice with different openset"):
        _build("mercaptionplus", _mercaptionplus(root, tmp_path / "feats"))
    track3 = root / "track3_train_mercaptionplus.csv"
    track3.write_text(track3.read_text() + "sample_00000002,Another reason.\n")
    track2.write_bytes((REFERENCE_DATA / track2.name).read_bytes())
    with pytest.raises(UserError, match="track3_train_mercaptionplus.csv, lines 3 and 6: sample 'sample_00000002'"):
        _build("mercaptionplus", _mercaptionplus(root, tmp_path / "feats"))
    track3.write_bytes((REFERENCE_DATA / track3.name).read_bytes())
    subtitles = root / "subtitle_chieng.csv"
    subtitles.write_text(subtitles.read_text() + "sample_00000002,,We lost the game.\n")
    with pytest.raises(UserError, match=r"subtitle_chieng.csv, lines 3 and 6: sample 'sample_00000002' appears twice "
                                        r"with different english"):
        _build("mercaptionplus", _mercaptionplus(root, tmp_path / "feats"))


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("subtitle_chieng.csv", "name,chinese,english\nsample_00000001,,fine\nsample_00000002,".encode()
         + "愤怒".encode("gbk") + b",x\n",
         r"subtitle_chieng.csv, line 3: not UTF-8 text \(byte 0x[0-9a-f]{2}\); save the file as UTF-8"),
        ("track3_train_mercaptionplus.csv", b"name,reason\nsample_00000001,a\nsample_00000002,he frowns, then smiles\n",
         r"track3_train_mercaptionplus.csv, line 3: 3 cells, but the header has 2 \(name, reason\); quote a cell "
         r"that contains commas"),
        ("track2_train_mercaptionplus.csv", b"name,openset\nsample_00000001,happy\nsample_00000002,\"[sad\n",
         r"track2_train_mercaptionplus.csv, line 3: unexpected end of data; quote a cell"),
        ("track2_train_mercaptionplus.csv", b"name,openset\nsample_00000001,\"[['a'], ['b']]\"\n",
         r"track2_train_mercaptionplus.csv, line 2: open-set value .* is a nested list"),
    ],
)
def test_csv_problems_name_the_file_and_the_line(tmp_path, file, content, message):
    root = _data_copy(tmp_path)
    (root / file).write_bytes(content)
    with pytest.raises(UserError, match=message):
        _build("mercaptionplus", _mercaptionplus(root, tmp_path / "feats"))


# -- feature folders under both namings -------------------------------------------------------


def test_frame_features_under_the_original_folder_name(tmp_path, caplog):
    block = _mercaptionplus(REFERENCE_DATA, tmp_path / "feats", face_or_frame="frame", frame_sampling="emotion_peak")
    original = {"frame_CLIP_VIT_LARGE_emotion_peak_8frms": (8, 768), "audio_HUBERT_LARGE_8clips": (8, 1024)}
    _features(tmp_path / "feats", NAMES, original)
    dataset = _build("mercaptionplus", block)
    expected = np.load(tmp_path / "feats/frame_CLIP_VIT_LARGE_emotion_peak_8frms/sample_00000001.npy")
    assert np.array_equal(dataset[0]["frame"].numpy(), expected)
    # both names present: the one naming the configured sampling is read, and the log says so
    _features(tmp_path / "feats", NAMES, {"frame_CLIP_VIT_LARGE_8frms": (8, 768)})
    dataset = _build("mercaptionplus", block)
    with caplog.at_level(logging.DEBUG, logger="my_affectgpt"):
        assert np.array_equal(dataset[0]["frame"].numpy(), expected)
        dataset[1]
    logged = [r.getMessage() for r in caplog.records if "both" in r.getMessage()]
    assert len(logged) == 1 and "reading frame_CLIP_VIT_LARGE_emotion_peak_8frms" in logged[0]


def test_seed_frame_folder_name_still_works(tmp_path):
    _features(tmp_path / "feats", NAMES, {"frame_CLIP_VIT_LARGE_8frms": (8, 768), "audio_HUBERT_LARGE_8clips": (8, 1024)})
    dataset = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, tmp_path / "feats", face_or_frame="frame"))
    assert dataset[0]["frame"].shape == (8, 768)


def test_a_missing_feature_folder_names_every_folder_tried(tmp_path):
    _features(tmp_path / "feats", NAMES, {"frame_CLIP_VIT_LARGE_uniform_8frms": (8, 768)})
    layout = FeatureLayout(tmp_path / "feats", "CLIP_VIT_LARGE", "HUBERT_LARGE", 8, 8, "emotion_peak")
    with pytest.raises(FeatureFolderNotFoundError) as info:
        layout.locate("frame", "sample_00000001")
    message = str(info.value)
    assert "frame_CLIP_VIT_LARGE_emotion_peak_8frms, " in message and message.count("frame_CLIP_VIT_LARGE_8frms") == 1
    assert "(found: frame_CLIP_VIT_LARGE_uniform_8frms)" in message and "frame_sampling" in message
    assert layout.folders("face") == [tmp_path / "feats/face_CLIP_VIT_LARGE_8frms"]
    assert FeatureLayout(tmp_path, "V", "A", 8, 8, face_n_frms=4).folder("face").name == "face_V_4frms"


# -- one feature file of the wrong width or dtype ---------------------------------------------


def test_a_feature_file_of_another_width_is_a_bad_sample_naming_it(tmp_path):
    feats = _features(tmp_path / "feats", NAMES, FACE_AUDIO)
    victim = feats / "face_CLIP_VIT_LARGE_8frms" / "sample_00000002.npy"
    np.save(victim, np.zeros((8, 512), np.float32))
    dataset = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats))
    with pytest.raises(BadSampleError, match=r"sample 'sample_00000002': has width 512, expected 768 "
                                             r"\(model.preextracted_visual_dim\) \(.*sample_00000002.npy\)"):
        dataset[1]
    skipping = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats), run={"on_bad_sample": "skip"})
    batch = collate([skipping[i] for i in range(4)])  # no stack error: the odd one is left out
    assert batch["face"].shape == (3, 8, 768) and "sample_00000002" not in batch["names"]
    assert len(batch["skipped"]) == 1 and str(victim) in batch["skipped"][0]
    audio = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats), model={"preextracted_acoustic_dim": 768})
    with pytest.raises(BadSampleError, match=r"width 1024, expected 768 \(model.preextracted_acoustic_dim\)"):
        audio[0]


def test_a_feature_file_of_strings_is_a_bad_sample_naming_it(tmp_path):
    feats = _features(tmp_path / "feats", NAMES, FACE_AUDIO)
    victim = feats / "audio_HUBERT_LARGE_8clips" / "sample_00000001.npy"
    np.save(victim, np.full((8, 1024), "x"))
    dataset = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats))
    with pytest.raises(BadSampleError, match=r"holds <U1 \[8, 1024\], expected a float32 .*sample_00000001.npy"):
        dataset[0]


def test_au_features_of_another_width_are_a_bad_sample(tmp_path):
    feats = _features(tmp_path / "feats", NAMES, FACE_AUDIO | {"au_CLIP_VITB32_8frms": (3, 512)})
    np.save(feats / "au_CLIP_VITB32_8frms" / "sample_00000004.npy", np.zeros((3, 768), np.float32))
    dataset = _build("mercaptionplus", _mercaptionplus(REFERENCE_DATA, feats, use_au=True,
                                                       face_or_frame="multiface_audio_face_text"))
    assert dataset[0]["au"].shape == (3, 512)
    with pytest.raises(BadSampleError, match=r"width 768, expected 512 \(model.preextracted_au_dim\)"):
        dataset[3]


# -- gold labels of the test sets -------------------------------------------------------------


def _npz(path: Path, **splits):
    np.savez(path, **{k: np.array(v, dtype=object) for k, v in splits.items()})


def _unibench(name: str, root: Path, tmp_path: Path, **block):
    base = {"data_root": str(root), "face_or_frame": "audioonly", "preextracted_root": str(tmp_path / "feats"),
            "use_preextracted_features": True}
    return _build(name, base | block, question=("labels", "Q?"))


def test_class_index_label_files_map_to_the_original_names(tmp_path):
    meld = tmp_path / "meld"
    meld.mkdir()
    _npz(meld / "label.npz", test_corpus={"m1": {"emo": 1, "val": 0}, "m2": {"emo": np.int64(6), "val": 0}})
    assert _unibench("meld", meld, tmp_path).gold() == {"m1": "joy", "m2": "surprise"}
    iemocap = tmp_path / "iemocap"
    iemocap.mkdir()
    _npz(iemocap / "label_4way.npz", whole_corpus={"Ses05F_impro01_F000": {"emo": 3, "val": -10}})
    assert _unibench("iemocapfour", iemocap, tmp_path).gold() == {"Ses05F_impro01_F000": "anger"}


def test_a_gold_label_outside_the_dataset_labels_is_an_error(tmp_path):
    root = tmp_path / "mer2024"
    root.mkdir()
    _npz(root / "label-6way.npz", test1_corpus={"s1": {"emo": "happy", "val": 1.0}, "s2": {"emo": "joyful", "val": 1.0}})
    with pytest.raises(UserError, match=r"label-6way.npz: sample 's2' has label 'joyful', which is not one of the "
                                        r"dataset's 6 labels \(neutral, angry, happy, sad, worried, surprise\)"):
        _unibench("mer2024", root, tmp_path)
    _npz(root / "label-6way.npz", test1_corpus={"s1": {"emo": 9, "val": 1.0}})
    with pytest.raises(UserError, match="class index 9"):
        _unibench("mer2024", root, tmp_path)


def test_an_empty_open_set_gold_label_is_an_error(tmp_path):
    root = tmp_path / "ovmerd"
    root.mkdir()
    (root / "ovlabel.csv").write_text("name,openset\no1,\"['happy']\"\no2,\n")
    with pytest.raises(UserError, match=r"ovlabel.csv, line 3: sample 'o2' has an empty open-set label"):
        _unibench("ovmerd", root, tmp_path)
    (root / "ovlabel.csv").write_text("name,openset\no1,\"['happy']\"\no2,[sad]\no1,[sad]\n")
    with pytest.raises(UserError, match=r"ovlabel.csv, lines 2 and 4: sample 'o1' appears twice with different openset"):
        _unibench("ovmerd", root, tmp_path)
