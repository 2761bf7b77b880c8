import numpy as np
import pytest

from my_affectgpt.datasets.label_files import (
    LabelFileError,
    parse_openset,
    read_candidates_csv,
    read_emotion_npz,
    read_gold,
    read_label_csv,
    read_npz_labels,
    read_openset_csv,
    read_valence_csv,
    read_valence_npz,
)


def _merbench_npz(path, **splits):
    """Write a label file the way the MERBench preprocessing scripts do (pickled dicts)."""
    np.savez_compressed(path, **splits)
    return path


@pytest.fixture
def mer2023_npz(tmp_path):
    return _merbench_npz(
        tmp_path / "label-6way.npz",
        train_corpus={"sample_00000001": {"emo": "happy", "val": 1.5}},
        test1_corpus={"sample_00000002": {"emo": "worried", "val": -2.0},
                      "sample_00000003": {"emo": "neutral", "val": 0.0}},
        test2_corpus={"sample_00000004": {"emo": "sad", "val": -1.0}},
    )


def test_merbench_npz_is_pickled_and_read_by_split(mer2023_npz):
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(mer2023_npz)["test1_corpus"]  # the real format needs unpickling
    assert read_emotion_npz(mer2023_npz, split="test1_corpus") == {
        "sample_00000002": "worried", "sample_00000003": "neutral"}
    assert read_valence_npz(mer2023_npz, split="test1_corpus") == {
        "sample_00000002": -2.0, "sample_00000003": 0.0}


def test_several_splits_without_test_corpus_need_an_explicit_split(mer2023_npz):
    with pytest.raises(LabelFileError, match=r"label-6way.npz.*train_corpus, test1_corpus, test2_corpus.*split="):
        read_emotion_npz(mer2023_npz)
    with pytest.raises(LabelFileError, match="no key 'test3_corpus'.*test2_corpus"):
        read_emotion_npz(mer2023_npz, split="test3_corpus")


def test_test_corpus_or_the_only_split_is_the_default(tmp_path):
    mosi = _merbench_npz(
        tmp_path / "label.npz",
        train_corpus={"a": {"val": 1.0}},
        val_corpus={"b": {"val": -1.0}},
        test_corpus={"c": {"val": 2.2, "emo": "happy"}},
    )
    assert read_valence_npz(mosi) == {"c": 2.2}
    iemocap = _merbench_npz(tmp_path / "label_4way.npz",
                            whole_corpus={"Ses05F_impro01_F000": {"emo": "ang"}})
    assert read_emotion_npz(iemocap) == {"Ses05F_impro01_F000": "ang"}


def test_flat_npz_layouts(tmp_path):
    as_dict = tmp_path / "dict.npz"
    np.savez(as_dict, emo={"x": "happy", "y": "sad"})
    assert read_emotion_npz(as_dict) == {"x": "happy", "y": "sad"}
    as_arrays = tmp_path / "arrays.npz"
    np.savez(as_arrays, names=np.array(["x", "y"]), val=np.array([0.5, -1.0]))
    assert read_valence_npz(as_arrays) == {"x": 0.5, "y": -1.0}
    no_names = tmp_path / "no_names.npz"
    np.savez(no_names, val=np.array([0.5, -1.0]))
    with pytest.raises(LabelFileError, match="names"):
        read_valence_npz(no_names)


def test_class_indices_need_label_names(tmp_path):
    path = _merbench_npz(tmp_path / "label.npz", test_corpus={"x": {"emo": 2}, "y": {"emo": np.int64(0)}})
    assert read_emotion_npz(path, label_names=["neutral", "happy", "sad"]) == {"x": "sad", "y": "neutral"}
    with pytest.raises(LabelFileError, match="class index 2.*label_names"):
        read_emotion_npz(path)


def test_npz_errors_name_the_file_and_the_expected_keys(tmp_path):
    missing_field = _merbench_npz(tmp_path / "label.npz", test_corpus={"x": {"val": 1.0}})
    with pytest.raises(LabelFileError, match=r"label.npz.*'x'.*\['val'\], expected 'emo'"):
        read_emotion_npz(missing_field)
    bad_valence = _merbench_npz(tmp_path / "nan.npz", test_corpus={"x": {"val": float("nan")}})
    with pytest.raises(LabelFileError, match="nan.npz.*finite"):
        read_valence_npz(bad_valence)
    unknown = tmp_path / "other.npz"
    np.savez(unknown, something=np.zeros(3))
    with pytest.raises(LabelFileError, match="other.npz.*something.*test_corpus"):
        read_npz_labels(unknown, "emo")
    not_npz = tmp_path / "broken.npz"
    not_npz.write_text("not a zip")
    with pytest.raises(LabelFileError, match="broken.npz"):
        read_emotion_npz(not_npz)
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        read_emotion_npz(tmp_path / "absent.npz")


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("['happy', 'excited']", ["happy", "excited"]),
        ("happy, excited", ["happy", "excited"]),
        ("开心，兴奋", ["开心", "兴奋"]),
        ("", []),
        ("[]", []),
        (["sad"], ["sad"]),
    ],
)
def test_parse_openset(cell, expected):
    assert parse_openset(cell) == expected


def test_parse_openset_rejects_a_broken_list():
    with pytest.raises(ValueError, match="not a valid list"):
        parse_openset("['happy', 'sad'")


def test_ovlabel_csv_in_both_spellings_and_empty_means_neutral(tmp_path):
    path = tmp_path / "ovlabel.csv"
    path.write_text('name,openset\ns1,"[\'happy\', \'excited\']"\ns2,"worried, tense"\ns3,\n', encoding="utf-8")
    assert read_openset_csv(path) == {"s1": ["happy", "excited"], "s2": ["worried", "tense"], "s3": ["neutral"]}


def test_plain_csv_readers(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("\ufeffname,discrete,valence\na,happy,1\nb,sad,-2\n", encoding="utf-8")
    assert read_label_csv(labels) == {"a": "happy", "b": "sad"}
    assert read_valence_csv(labels) == {"a": 1.0, "b": -2.0}
    candidates = tmp_path / "candidates.csv"
    candidates.write_text("name,candidates\na,\"['happy', 'sad']\"\nb,\"neutral, angry\"\n")
    assert read_candidates_csv(candidates) == {"a": ["happy", "sad"], "b": ["neutral", "angry"]}


def test_csv_errors_name_the_file_and_the_expected_columns(tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("video,emotion\na,happy\n")
    expected = r"wrong.csv has columns \['video', 'emotion'\].*'name' and one of 'label'"
    with pytest.raises(LabelFileError, match=expected):
        read_label_csv(wrong)
    twice = tmp_path / "twice.csv"
    twice.write_text("name,valence\na,1\na,2\n")
    with pytest.raises(LabelFileError, match="twice.csv, line 3.*'a' appears twice"):
        read_valence_csv(twice)
    text_valence = tmp_path / "text.csv"
    text_valence.write_text("name,valence\na,high\n")
    with pytest.raises(LabelFileError, match="text.csv, line 2.*'high'"):
        read_valence_csv(text_valence)
    header_only = tmp_path / "header.csv"
    header_only.write_text("name,label\n")
    with pytest.raises(LabelFileError, match="header.csv has a header but no rows"):
        read_label_csv(header_only)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LabelFileError, match="empty.csv has columns none"):
        read_openset_csv(empty)


def test_read_gold_dispatches_on_kind_and_suffix(tmp_path, mer2023_npz):
    assert read_gold(mer2023_npz, "discrete", split="test2_corpus") == {"sample_00000004": "sad"}
    assert read_gold(mer2023_npz, "sentiment", split="test2_corpus") == {"sample_00000004": -1.0}
    ov = tmp_path / "ovlabel.csv"
    ov.write_text("name,openset\ns1,happy\n")
    assert read_gold(ov, "openset") == {"s1": ["happy"]}
    with pytest.raises(LabelFileError, match="openset label file must be a .csv"):
        read_gold(mer2023_npz, "openset")
    with pytest.raises(ValueError, match="unknown kind 'valence'"):
        read_gold(ov, "valence")
