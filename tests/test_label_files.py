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
        # the spellings the original AffectGPT's string_to_list reads
        ("['happy', 'excited']", ["happy", "excited"]),
        ('["happy", "excited"]', ["happy", "excited"]),
        ("[joyful]", ["joyful"]),
        ("[happy, excited]", ["happy", "excited"]),
        ("happy, excited", ["happy", "excited"]),
        ("['happy', 'sad'", ["happy", "sad"]),  # a missing bracket is read, as there
        ("['a','b',]", ["a", "b"]),
        # only commas and quotes separate labels there
        ("开心，兴奋", ["开心，兴奋"]),
        ("happy; sad", ["happy; sad"]),
        # empty: pandas' missing-value cells, as the original reads its CSVs with pandas
        ("", []),
        ("  ", []),
        ("[]", []),
        ("nan", []),
        (float("nan"), []),
        (None, []),
        (["sad"], ["sad"]),
        (np.array(["sad", "tired"]), ["sad", "tired"]),
    ],
)
def test_parse_openset_reads_what_the_original_reads(cell, expected):
    assert parse_openset(cell) == expected


def test_parse_openset_rejects_a_nested_list():
    with pytest.raises(ValueError, match=r"nested list; write one list: \['a', 'b'\], \[a, b\] or a, b"):
        parse_openset("[['happy'], ['sad']]")


def test_open_set_gold_cells_must_not_be_empty(tmp_path):
    path = tmp_path / "ovlabel.csv"
    path.write_text('name,openset\ns1,"[\'happy\', \'excited\']"\ns2,"worried, tense"\ns3,\n', encoding="utf-8")
    with pytest.raises(LabelFileError, match=r"ovlabel.csv, line 4: sample 's3' has an empty open-set label.*\['neutral'\]"):
        read_openset_csv(path)
    with pytest.raises(LabelFileError, match="line 4: sample 's3' has an empty"):
        read_gold(path, "openset")
    # training files (MER-Caption+/OV-MERD) read an empty cell as neutral, as the original does
    assert read_openset_csv(path, empty="neutral") == {
        "s1": ["happy", "excited"], "s2": ["worried", "tense"], "s3": ["neutral"]}


def test_an_unreadable_open_set_cell_names_the_file_and_line(tmp_path):
    path = tmp_path / "track2.csv"
    path.write_text('name,openset\ns1,happy\ns2,"[[\'sad\']]"\n', encoding="utf-8")
    with pytest.raises(LabelFileError, match="track2.csv, line 3: open-set value.*nested list"):
        read_openset_csv(path, empty="neutral")


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
    twice.write_text("name,valence\na,1\nb,0\na,2\n")
    with pytest.raises(ValueError, match=r"twice.csv, lines 2 and 4: sample 'a' appears twice with different valence \('1' / '2'\)"):
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
    with pytest.raises(LabelFileError, match="empty.csv is empty; expected the columns 'name' and one of 'openset'"):
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


def test_identical_duplicate_rows_are_accepted(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("name,label\na,happy\nb,sad\na,happy\n")
    assert read_label_csv(path) == {"a": "happy", "b": "sad"}


def test_gold_labels_outside_the_label_set_are_errors(tmp_path, mer2023_npz):
    labels = ("neutral", "angry", "happy", "sad", "worried", "surprise")
    assert read_gold(mer2023_npz, "discrete", split="test1_corpus", label_set=labels) == {
        "sample_00000002": "worried", "sample_00000003": "neutral"}
    odd = _merbench_npz(tmp_path / "odd.npz", test_corpus={"x": {"emo": "happy"}, "y": {"emo": "bored"}})
    with pytest.raises(LabelFileError, match=r"odd.npz: sample 'y' has label 'bored', which is not one of "
                                             r"the dataset's 6 labels \(neutral, angry"):
        read_gold(odd, "discrete", label_set=labels)
    csv = tmp_path / "labels.csv"
    csv.write_text("name,label\na,Happy\nb,excited\n")
    with pytest.raises(LabelFileError, match="labels.csv, line 3: sample 'b' has label 'excited'"):
        read_gold(csv, "discrete", label_set=labels)
    csv.write_text("name,label\na,Happy \n")
    assert read_label_csv(csv, label_set=labels) == {"a": "happy"}  # the set's spelling


# -- pickled label files are unpickled as plain data only ------------------------------------


def test_merbench_npz_with_numpy_values_loads(tmp_path):
    path = tmp_path / "label.npz"
    np.savez(path, test_corpus={"a": {"emo": "happy", "val": 1.0}},
             whole_corpus={"b": {"emo": np.int64(2), "val": np.float64(-0.5), "extra": np.arange(2), "s": {1}}})
    assert read_emotion_npz(path, split="test_corpus") == {"a": "happy"}
    assert read_valence_npz(path, split="whole_corpus") == {"b": -0.5}
    assert read_emotion_npz(path, split="whole_corpus", label_names=["x", "y", "z"]) == {"b": "z"}


def test_label_npz_written_by_numpy_1_loads(tmp_path):
    """numpy 1.x pickles name ``numpy.core.multiarray`` (numpy 2: ``numpy._core``)."""
    import io
    import pickle
    import zipfile

    array = np.array({"a": {"emo": "sad", "val": np.float32(-1.0)}}, dtype=object)
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(array))
    stream.write(pickle.dumps(array, protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    path = tmp_path / "label.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("test_corpus.npy", stream.getvalue())
    assert read_valence_npz(path) == {"a": -1.0}


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_label_npz_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "label.npz"
    np.savez(path, test_corpus={"a": {"emo": _RunsCode(marker), "val": 1.0}})
    with pytest.raises(LabelFileError, match=r"label.npz refused: its pickled data calls (posix|os|nt)\.system"):
        read_emotion_npz(path)
    assert not marker.exists()
    np.savez(path, test_corpus=np.array([_RunsCode(marker)], dtype=object))
    with pytest.raises(LabelFileError, match="refused"):
        read_gold(path, "sentiment")
    assert not marker.exists()
