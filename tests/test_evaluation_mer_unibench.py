"""Scoring as MER-UniBench does: original results folders (name2reason .npz and the cached
label files beside it), the official emotion wheels, and the caches inference writes."""
import json

import numpy as np
import pytest

from helpers_emotion_wheels import OFFICIAL_WHEEL_DIR
from my_affectgpt.evaluation import write_label_caches
from my_affectgpt.evaluation.__main__ import main
from my_affectgpt.evaluation.label_cache import read_label_cache
from my_affectgpt.evaluation.metrics import load_emotion_wheel
from my_affectgpt.evaluation.report import score_results
from my_affectgpt.evaluation.results_io import ResultsFileError, ResultsWriter, read_name2reason, results_files

# Answers that say nothing the lexicon knows: scores from them differ from the cached labels'.
NO_EMOTION = "The person talks about the weather."


def _original_results(folder, items, sentiment=None, answers=None):
    """An original AffectGPT results folder: ckpt.npz (name2reason) and its label caches."""
    folder.mkdir(parents=True, exist_ok=True)
    names = list(items)
    np.savez_compressed(folder / "checkpoint_000010.npz",
                        name2reason=answers or {name: NO_EMOTION for name in names})
    np.savez_compressed(folder / "checkpoint_000010-openset.npz", filenames=names,
                        fileitems=[items[name] for name in names])
    if sentiment:
        np.savez_compressed(folder / "checkpoint_000010-openset-sentiment.npz", filenames=names,
                            fileitems=[sentiment[name] for name in names])


@pytest.fixture
def original_run(tmp_path):
    out, labels = tmp_path / "output", tmp_path / "labels"
    labels.mkdir()
    # Discrete: the official-folder case of test_ew_metrics (hit rate 7/12). First candidates
    # after the lexicon: happy (right), worried (fear, right), happy (gold neutral), sad, angry (right).
    (labels / "mer2023.csv").write_text("name,label\n1,happy\n2,worried\n3,neutral\n4,surprise\n5,angry\n")
    _original_results(out / "results-mer2023", {"1": "[happy]", "2": "[fear]", "3": "[happy]", "4": "[sad]",
                                                "5": "[Angry, angry]"})
    # Open vocabulary: level-1 F = P = R = 0.6, level 2 all 0.5 (see test_ew_metrics).
    (labels / "ovlabel.csv").write_text('name,openset\na,"happy, sad"\nb,worried\nc,neutral\n')
    _original_results(out / "results-ovmerdplus", {"a": "[happiness, sad, neutral]", "b": "[fear]", "c": "[happy]"})
    # Sentiment: gold 0 is left out; "Positive" is not one of the three words, so it counts 0.
    (labels / "mosi.csv").write_text("name,valence\nm1,2.0\nm2,-1.5\nm3,0.0\nm4,1.0\nm5,-0.5\nm6,3.0\n")
    _original_results(out / "results-cmumosi", {m: "[]" for m in ("m1", "m2", "m3", "m4", "m5", "m6")},
                      sentiment={"m1": "positive", "m2": "positive", "m3": "negative", "m4": "Positive",
                                 "m5": "neutral", "m6": "positive"})
    args = ["--results-dir", str(out),
            "--dataset", f"mer2023:discrete:{labels / 'mer2023.csv'}",
            "--dataset", f"ovmerdplus:openset:{labels / 'ovlabel.csv'}",
            "--dataset", f"cmumosi:sentiment:{labels / 'mosi.csv'}"]
    return out, args


def test_an_original_results_folder_scores_as_mer_unibench(original_run, capsys):
    out, args = original_run
    assert main(args + ["--emotion-wheel", str(OFFICIAL_WHEEL_DIR)]) == 0
    printed = capsys.readouterr().out
    datasets = json.loads((out / "scores.json").read_text())["datasets"]

    mer = datasets["mer2023"]["checkpoints"]["checkpoint_000010"]
    assert mer["ew_hit_rate"] == pytest.approx(7 / 12, abs=1e-12)
    assert mer["accuracy"] == pytest.approx(3 / 5)  # happy, worried (fear), angry right
    assert mer["label_source"] == "cached"

    ov = datasets["ovmerdplus"]["checkpoints"]["checkpoint_000010"]
    for key, value in {"ew_fscore": 0.6, "ew_precision": 0.6, "ew_recall": 0.6,
                       "ew_level2_fscore": 0.5, "ew_level2_precision": 0.5, "ew_level2_recall": 0.5}.items():
        assert ov[key] == pytest.approx(value, abs=1e-12), key

    mosi = datasets["cmumosi"]["checkpoints"]["checkpoint_000010"]
    # non-zero gold m1 m2 m4 m5 m6: positive? gold T F T F T, predicted T T F F T
    assert mosi["accuracy"] == pytest.approx(3 / 5)
    assert mosi["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2) / 5)
    assert not any(key.startswith("ew_") for key in mosi)

    assert "mer2023 (discrete): MER-UniBench headline: ew_hit_rate (official emotion wheels)" in printed
    assert "ovmerdplus (openset): MER-UniBench headline: ew_fscore (official emotion wheels)" in printed
    assert "cmumosi (sentiment): MER-UniBench headline: weighted_f1 (no emotion wheel needed)" in printed
    assert "[ew_hit_rate]" in printed and "ew_*: MER-UniBench's emotion-wheel scores" in printed
    assert "TEST set" not in printed


def test_cached_labels_win_unless_ignored(original_run):
    out, args = original_run
    assert main(args + ["--ignore-label-cache"]) == 0
    mer = json.loads((out / "scores.json").read_text())["datasets"]["mer2023"]["checkpoints"]["checkpoint_000010"]
    assert mer["label_source"] == "extracted" and mer["accuracy"] == 0.0  # the answers name no emotion


def test_without_the_official_wheels_the_table_says_the_headline_is_missing(original_run, capsys):
    out, args = original_run
    assert main(args + ["--report-best"]) == 0
    printed = capsys.readouterr().out
    assert "MER-UniBench headline ew_hit_rate not computed" in printed
    assert "weighted_f1 is not comparable with the paper" in printed
    best = json.loads((out / "scores.json").read_text())["best"]
    assert best["mer2023"]["metric"] == "weighted_f1" and best["ovmerdplus"]["metric"] == "fscore"
    assert "chosen on the TEST set" in printed


def test_report_best_compares_by_the_headline_metric(original_run, capsys):
    out, args = original_run
    assert main(args + ["--emotion-wheel", str(OFFICIAL_WHEEL_DIR), "--report-best"]) == 0
    printed = capsys.readouterr().out
    best = json.loads((out / "scores.json").read_text())["best"]
    assert best["mer2023"]["metric"] == "ew_hit_rate"
    assert best["ovmerdplus"] == {"checkpoint": "checkpoint_000010", "metric": "ew_fscore",
                                  "value": pytest.approx(0.6), "selected_on": "test set"}
    assert "checkpoint_000010 *" in printed and "chosen on the TEST set" in printed


def test_all_neutral_gold_makes_the_wheel_scores_undefined(tmp_path, capsys):
    out, gold = tmp_path / "output", tmp_path / "gold.csv"
    gold.write_text("name,label\n1,neutral\n2,neutral\n")
    _original_results(out / "results-meld", {"1": "[happy]", "2": "[]"})
    args = ["--results-dir", str(out), "--dataset", f"meld:discrete:{gold}", "--emotion-wheel", str(OFFICIAL_WHEEL_DIR)]
    assert main(args) == 2
    assert "no sample's gold labels map onto wheel1" in capsys.readouterr().err


def _answers():
    return {
        "a": "The character's emotional state is happy, excited.",
        "b": "He looks worried and a bit nervous.",
        "c": "She is not angry; she seems calm.",
        "d": NO_EMOTION,
    }


@pytest.mark.parametrize("kind, gold", [
    ("openset", {"a": ["happy"], "b": ["anxious", "worried"], "c": ["calm"], "d": ["neutral"]}),
    ("discrete", {"a": "happy", "b": "worried", "c": "neutral", "d": "sad"}),
    ("sentiment", {"a": 1.5, "b": -2.0, "c": 0.4, "d": -0.2}),
])
def test_written_caches_give_the_scores_of_fresh_extraction(tmp_path, kind, gold):
    writer = ResultsWriter(tmp_path / "results-x" / "checkpoint_000001.jsonl")
    writer.append({"name": name, "answer": answer} for name, answer in _answers().items())
    writer.write_name2reason()
    wheel = load_emotion_wheel(OFFICIAL_WHEEL_DIR) if kind != "sentiment" else None
    fresh = score_results(writer.path, kind, gold, wheel=wheel)
    assert fresh.pop("label_source") == "extracted"

    written = write_label_caches(writer.path, kind)
    names = ["checkpoint_000001-openset.npz"] + (["checkpoint_000001-openset-sentiment.npz"] if kind == "sentiment" else [])
    assert [path.name for path in written] == names
    with np.load(written[0], allow_pickle=False) as npz:  # plain string arrays, as the original writes
        assert npz["filenames"].tolist() == ["a", "b", "c", "d"]
        assert npz["fileitems"].tolist() == ["[happy, excited]", "[worried, nervous]", "[calm]", "[]"]
    if kind == "sentiment":
        assert read_label_cache(written[1]) == {"a": "positive", "b": "negative", "c": "neutral", "d": "neutral"}

    for results in (writer.path, writer.path.with_suffix(".npz")):  # the JSONL or its name2reason twin
        cached = score_results(results, kind, gold, wheel=wheel)
        assert cached.pop("label_source") == "cached"
        assert cached == fresh
    assert results_files(tmp_path, "x") == [writer.path]


def test_write_label_caches_uses_the_given_extractor(tmp_path):
    writer = ResultsWriter(tmp_path / "ckpt.jsonl")
    writer.append([{"name": "a", "answer": "whatever"}, {"name": "b", "answer": "whatever"}])
    written = write_label_caches(writer.path, "sentiment", extractor=lambda text: ["joyful", "Tired"])
    assert read_label_cache(written[0]) == {"a": "[joyful, Tired]", "b": "[joyful, Tired]"}
    assert read_label_cache(written[1]) == {"a": "positive", "b": "positive"}  # mean polarity (1 + 0) / 2


def test_a_cache_for_other_results_is_an_error(tmp_path):
    folder = tmp_path / "results-x"
    _original_results(folder, {"a": "[happy]"}, answers={"a": "happy", "b": "sad"})
    with pytest.raises(ResultsFileError, match=r"no labels for 1 of the 2 samples.*\(first: 'b'\).*delete it"):
        score_results(folder / "checkpoint_000010.npz", "openset", {"a": ["happy"], "b": ["sad"]})
    scores = score_results(folder / "checkpoint_000010.npz", "openset", {"a": ["happy"], "b": ["sad"]},
                           use_label_cache=False)
    assert scores["label_source"] == "extracted" and scores["recall"] == 1.0


def test_results_files_and_their_errors(tmp_path):
    folder = tmp_path / "results-MELD"
    _original_results(folder, {"a": "[happy]"}, sentiment={"a": "positive"})
    np.savez_compressed(folder / "checkpoint_000020.npz", name2reason={"a": "sad"})
    (folder / "checkpoint_000020.jsonl").write_text('{"name": "a", "answer": "sad"}\n')
    assert [p.name for p in results_files(tmp_path, "meld")] == ["checkpoint_000010.npz", "checkpoint_000020.jsonl"]
    with pytest.raises(ResultsFileError, match="checkpoint_000010-openset.npz has the keys filenames, fileitems, "
                                               "not 'name2reason'"):
        read_name2reason(folder / "checkpoint_000010-openset.npz")
    (folder / "broken.npz").write_bytes(b"no zip")
    with pytest.raises(ResultsFileError, match="broken.npz is not a readable .npz"):
        read_name2reason(folder / "broken.npz")
    np.savez_compressed(folder / "pickled-openset.npz", filenames=np.array(["a"], dtype=object),
                        fileitems=np.array(["[x]"], dtype=object))
    with pytest.raises(ResultsFileError, match="pickled-openset.npz is not a readable .npz of strings"):
        read_label_cache(folder / "pickled-openset.npz")
