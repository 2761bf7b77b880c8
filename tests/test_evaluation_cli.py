import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from my_affectgpt.evaluation.__main__ import main
from my_affectgpt.evaluation.report import format_table, load_scores, record_scores, score_results, write_scores
from my_affectgpt.evaluation.results_io import ResultsFileError, read_results

REPO = Path(__file__).resolve().parents[1]


def _write_results(path: Path, answers: dict, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for name, answer in answers.items():
            record = {"name": name, "answer": answer, "prompt_kind": "ovlabel"}
            record.update({k: v[name] for k, v in extra.items()})
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture
def run_dir(tmp_path):
    """Results of two checkpoints on a discrete set, one on a sentiment and an open-set set."""
    out = tmp_path / "output"
    labels = tmp_path / "labels"
    labels.mkdir()
    np.savez_compressed(
        labels / "label-6way.npz",
        train_corpus={"t0": {"emo": "happy", "val": 1.0}},
        test1_corpus={"s1": {"emo": "happy", "val": 1.0}, "s2": {"emo": "sad", "val": -1.0},
                      "s3": {"emo": "angry", "val": -2.0}, "s4": {"emo": "worried", "val": -1.0}},
        test2_corpus={"u1": {"emo": "sad", "val": -1.0}},
    )
    (labels / "mosi.csv").write_text("name,valence\ns1,2.0\ns2,-1.5\ns3,0.0\ns4,1.0\n")
    (labels / "ovlabel.csv").write_text("name,openset\ns1,\"['happy', 'excited']\"\ns2,\"worried, nervous\"\n")
    _write_results(out / "results-mer2023" / "checkpoint_000001.jsonl", {
        "s1": "The character's emotional state is happy, excited.",
        "s2": "He looks sad and lonely.",
        "s3": "She is not angry, she seems calm.",
        "s4": "The character's emotional state is anxious.",
    })
    _write_results(out / "results-mer2023" / "checkpoint_000002.jsonl", {
        "s1": "He is sad.", "s2": "He is sad.", "s3": "She is angry.", "s4": "She is happy.",
    })
    _write_results(out / "results-cmumosi" / "checkpoint_000001.jsonl", {
        "s1": "He is happy.", "s2": "He is angry.", "s3": "He is calm.", "s4": "He is not happy.",
    })
    _write_results(out / "results-ovmerdplus" / "checkpoint_000001.jsonl", {
        "s1": "The character's emotional state is happiness, surprised.",
        "s2": "The character's emotional state is anxious.",
    })
    return out, labels


def _args(out, labels, *extra):
    return [
        "--results-dir", str(out),
        "--dataset", f"mer2023:discrete:{labels / 'label-6way.npz'}", "--split", "mer2023=test1_corpus",
        "--dataset", f"cmumosi:sentiment:{labels / 'mosi.csv'}",
        "--dataset", f"ovmerdplus:openset:{labels / 'ovlabel.csv'}",
        *extra,
    ]


def test_cli_scores_every_checkpoint_and_writes_scores_json(run_dir, capsys):
    out, labels = run_dir
    assert main(_args(out, labels)) == 0
    printed = capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert "best" not in scores and "TEST set" not in printed

    mer = scores["datasets"]["mer2023"]
    assert mer["kind"] == "discrete"
    first, second = mer["checkpoints"]["checkpoint_000001"], mer["checkpoints"]["checkpoint_000002"]
    # ckpt 1: happy, sad, (calm -> neutral: not a candidate), worried -> 3/4 right
    assert first["accuracy"] == pytest.approx(0.75)
    assert first["weighted_f1"] == pytest.approx(0.75)
    assert first["unmatched_rate"] == pytest.approx(0.25)
    assert first["hit_rate"] == pytest.approx(0.75)
    assert first["n_samples"] == 4
    # ckpt 2: sad, sad, angry, happy -> happy F1 0, sad 2/3, angry 1, worried 0
    assert second["accuracy"] == pytest.approx(0.5)
    assert second["weighted_f1"] == pytest.approx((2 / 3 + 1) / 4)

    mosi = scores["datasets"]["cmumosi"]["checkpoints"]["checkpoint_000001"]
    # gold+ [T, F, T] (s3 has valence 0), pred+ [T, F, F]
    assert mosi["n_nonzero"] == 3
    assert mosi["accuracy"] == pytest.approx(2 / 3)
    assert mosi["weighted_f1"] == pytest.approx(2 / 3)

    ov = scores["datasets"]["ovmerdplus"]["checkpoints"]["checkpoint_000001"]
    # s1 {happy, surprised} vs {happy, excited}: P=R=1/2; s2 {anxious} vs {worried, nervous}: 0
    assert ov["precision"] == pytest.approx(0.25)
    assert ov["recall"] == pytest.approx(0.25)
    assert ov["fscore"] == pytest.approx(0.25)
    assert ov["hit_rate"] == pytest.approx(0.5)

    for dataset in ("mer2023 (discrete)", "cmumosi (sentiment)", "ovmerdplus (openset)"):
        assert dataset in printed
    assert "checkpoint_000002" in printed and "0.4167" in printed
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_cli_wheel_and_report_best_say_the_choice_was_made_on_the_test_set(run_dir, capsys):
    out, labels = run_dir
    wheel = labels / "wheel.json"
    wheel.write_text(json.dumps({"joy": ["happy", "excited"], "fear": ["worried", "nervous", "anxious"]}))
    target = out / "eval" / "my_scores.json"
    assert main(_args(out, labels, "--emotion-wheel", str(wheel), "--report-best", "--out", str(target))) == 0
    printed = capsys.readouterr().out
    scores = json.loads(target.read_text())
    ov = scores["datasets"]["ovmerdplus"]["checkpoints"]["checkpoint_000001"]
    # s1 {joy, surprised} vs {joy}: P=1/2, R=1; s2 {fear} vs {fear}: P=R=1
    assert ov["precision"] == pytest.approx(0.75)
    assert ov["recall"] == pytest.approx(1.0)
    assert ov["fscore"] == pytest.approx(6 / 7)
    assert ov["hit_rate"] == pytest.approx(1.0)
    assert scores["best"]["mer2023"] == {
        "checkpoint": "checkpoint_000001", "metric": "weighted_f1", "value": pytest.approx(0.75),
        "selected_on": "test set"}
    assert "TEST set" in scores["best_note"]
    assert "checkpoint_000001 *" in printed and "chosen on the TEST set" in printed


def test_cli_keeps_other_datasets_already_in_scores_json(run_dir, capsys):
    out, labels = run_dir
    previous = load_scores(out / "scores.json")
    record_scores(previous, "meld", "discrete", "checkpoint_000009", {"accuracy": 0.5, "weighted_f1": 0.4})
    write_scores(out / "scores.json", previous)
    assert main(_args(out, labels)) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["datasets"]) == {"meld", "mer2023", "cmumosi", "ovmerdplus"}


def test_stored_labels_never_decide_the_score(tmp_path, capsys):
    """Inference stores the labels it extracted; scoring extracts again from the answer."""
    out = tmp_path / "output"
    _write_results(out / "results-heldout" / "checkpoint_000003.jsonl",
                   {"a": "The character's emotional state is happy.", "b": "The character's emotional state is sad."},
                   labels={"a": ["happy", "excited"], "b": ["angry"]})
    gold = tmp_path / "track2_heldout.csv"
    gold.write_text('name,openset\na,"[\'happy\', \'excited\']"\nb,angry\n')
    assert main(["--results-dir", str(out), "--dataset", f"heldout:openset:{gold}"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    ckpt = scores["datasets"]["heldout"]["checkpoints"]["checkpoint_000003"]
    assert ckpt["precision"] == pytest.approx(0.5) and ckpt["recall"] == pytest.approx(0.25)


def test_cli_missing_gold_fails_unless_skipped(run_dir, capsys):
    out, labels = run_dir
    args = ["--results-dir", str(out), "--dataset", f"mer2023:discrete:{labels / 'label-6way.npz'}",
            "--split", "mer2023=test2_corpus"]
    assert main(args) == 2
    assert "4 of 4 samples have no gold label" in capsys.readouterr().err
    _write_results(out / "results-mer2023" / "checkpoint_000001.jsonl",
                   {"u1": "He is sad.", "zz": "He is happy."})
    (out / "results-mer2023" / "checkpoint_000002.jsonl").unlink()
    assert main(args) == 2
    assert main(args + ["--skip-missing-gold"]) == 0
    ckpt = json.loads((out / "scores.json").read_text())["datasets"]["mer2023"]["checkpoints"]["checkpoint_000001"]
    assert ckpt["n_samples"] == 1 and ckpt["n_skipped_no_gold"] == 1 and ckpt["accuracy"] == 1.0


def test_cli_errors_are_one_clear_line(run_dir, capsys):
    out, labels = run_dir
    assert main(["--results-dir", str(out), "--dataset", f"meld:openset:{labels / 'ovlabel.csv'}"]) == 2
    assert "no folder results-meld in" in capsys.readouterr().err
    assert main(["--results-dir", str(out), "--dataset", f"mer2023:discrete:{labels / 'label-6way.npz'}"]) == 2
    assert "no 'test_corpus'; choose one with split=... (CLI: --split NAME=KEY)" in capsys.readouterr().err
    assert main(_args(out, labels, "--label-set", "cmumosi=happy,sad")) == 2
    assert "apply to discrete datasets" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--results-dir", str(out), "--dataset", "mer2023:valence:labels.csv"])
    assert "KIND one of discrete, sentiment, openset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--results-dir", str(out), "--dataset", "mer2023:discrete"])
    assert "NAME:KIND:LABEL_FILE" in capsys.readouterr().err


def test_read_results_rejects_broken_lines_and_duplicates(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"name": "a", "answer": "happy"}\n{"name": "b", "ans')
    with pytest.raises(ResultsFileError, match="broken.jsonl, line 2 is not valid JSON.*rerun inference"):
        read_results(broken)
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"name": "a", "answer": "x"}\n\n{"name": "a", "answer": "y"}\n')
    with pytest.raises(ResultsFileError, match="'a' appears on lines 1 and 3"):
        read_results(twice)
    no_answer = tmp_path / "no_answer.jsonl"
    no_answer.write_text('{"name": "a"}\n')
    with pytest.raises(ResultsFileError, match="line 1: expected an object with string 'name' and 'answer'"):
        read_results(no_answer)


def test_score_results_candidates_shared_and_per_sample(tmp_path):
    path = _write_results(tmp_path / "ckpt.jsonl", {
        "a": "The character's emotional state is excited, surprised.",
        "b": "He is worried and sad.",
    })
    gold = {"a": "surprise", "b": "sad"}
    default = score_results(path, "discrete", gold)  # candidates = gold labels {surprise, sad}
    assert default["accuracy"] == 1.0
    shared = score_results(path, "discrete", gold, candidates=["joy", "surprise", "fear", "sad"])
    assert shared["accuracy"] == 0.0  # a -> happy (joy), b -> worried (fear)
    per_sample = score_results(path, "discrete", gold, candidates={"a": ["surprise"], "b": ["sad", "fear"]})
    assert per_sample["accuracy"] == 0.5


def test_score_results_with_an_extractor_callable(tmp_path):
    path = _write_results(tmp_path / "ckpt.jsonl", {"a": "whatever", "b": "whatever"})
    scores = score_results(path, "sentiment", {"a": 1.0, "b": -1.0}, extractor=lambda text: ["joyful"])
    assert scores["accuracy"] == 0.5


def test_format_table_lists_checkpoints_per_dataset():
    scores = {"datasets": {}}
    record_scores(scores, "sims", "sentiment", "checkpoint_000002", {"weighted_f1": 0.5, "n_samples": 10.0})
    record_scores(scores, "sims", "sentiment", "checkpoint_000001", {"weighted_f1": 0.25, "accuracy": 0.3})
    lines = format_table(scores).splitlines()
    assert lines[0] == "sims (sentiment): MER-UniBench headline: weighted_f1 (no emotion wheel needed)"
    assert lines[1].split() == ["checkpoint", "[weighted_f1]", "accuracy", "n_samples"]
    assert lines[2].split() == ["checkpoint_000001", "0.2500", "0.3000", "-"]
    assert lines[3].split() == ["checkpoint_000002", "0.5000", "-", "10"]
    with pytest.raises(ValueError, match="scored as sentiment"):
        record_scores(scores, "sims", "discrete", "checkpoint_000003", {})


def test_module_entry_point_runs(run_dir):
    out, labels = run_dir
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "my_affectgpt.evaluation", "--results-dir", str(out),
         "--dataset", f"ovmerdplus:openset:{labels / 'ovlabel.csv'}"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ovmerdplus (openset)" in proc.stdout and "scores written to" in proc.stdout
