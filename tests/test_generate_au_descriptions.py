"""scripts/generate_au_descriptions.py: fill AU JSONs with AU Agent descriptions."""

import json
import math
import shutil
from pathlib import Path

import pytest
from helpers_au_agent import build_tiny_agent_llm, load_script

from my_affectgpt.processors.au_json import assistant_text, load_au_analysis
from my_affectgpt.models.au_agent import AUAgent

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mer_factory_upstream"
NUM_FRAMES = 3
gen = load_script("generate_au_descriptions")


def _extended_json(name: str, peak_position: int) -> dict:
    """Ten frames (frames 4 and 8 without active AUs), one peak, Chinese text and extra keys."""
    frames = []
    for i in range(10):
        active = {} if i in (3, 7) else {"AU06_r": round(0.9 + i / 10, 2), "AU25_r": round(2.5 - i / 5, 2)}
        frames.append({
            "frame": i + 1,
            "timestamp": float("nan") if i == 5 else round(i / 15, 3),
            "au_description": "Cheek raiser (intensity: 1.00)" if active else "",
            "active_aus": active,
            "is_peak_frame": i == peak_position,
        })
    return {
        "video_note": "说话人正在微笑",
        "per_frame_au_descriptions": frames,
        "au_info": {"total_frames": 10, "peak_frames": [{"peak_index": peak_position}]},
        "model_version": {"unknown": [1, 2]},
    }


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=True), encoding="utf-8")  # Chinese \u-escaped, as some writers do
    return path


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory) -> Path:
    return build_tiny_agent_llm(tmp_path_factory.mktemp("tiny_au_agent"))


@pytest.fixture
def dataset(tmp_path) -> Path:
    """``root/MER2023/{s1,s2}/<name>_au_analysis.json``; returns the root."""
    root = tmp_path / "mer_factory_output"
    for name, peak in (("s1", 5), ("s2", 8)):
        _write(root / "MER2023" / name / f"{name}_au_analysis.json", _extended_json(name, peak))
    return root


def _args(agent_dir: Path, *extra: str) -> list:
    return ["--base-model", str(agent_dir), "--device", "cpu", "--batch-size", "4", "--max-new-tokens", "5",
            "--num-frames", str(NUM_FRAMES), *extra]


def _run_dataset(root: Path, agent_dir: Path, *extra: str) -> int:
    return gen.main(["--mer-factory-output", str(root), "--dataset-folder", "MER2023", *_args(agent_dir, *extra)])


def _report(root: Path) -> dict:
    return json.loads((root / "MER2023" / gen.REPORT_NAME).read_text())


def _json_path(root: Path, name: str) -> Path:
    return root / "MER2023" / name / f"{name}_au_analysis.json"


def test_fills_summary_and_fine_grained_descriptions(dataset, agent_dir, capsys):
    before = json.loads(_json_path(dataset, "s1").read_text())
    assert _run_dataset(dataset, agent_dir) == 0

    path = _json_path(dataset, "s1")
    after = json.loads(path.read_text(encoding="utf-8"))
    summary = after["summary_description"]
    assert len(summary) == NUM_FRAMES and all(summary.values())
    assert "6" in summary, "the peak frame (position 5 -> frame 6) is described"
    assert not {"4", "8"} & set(summary), "frames without active AUs are not described"
    assert list(summary) == sorted(summary, key=int)

    described = {str(f["frame"]): f["fine_grained_description"]
                 for f in after["per_frame_au_descriptions"] if "fine_grained_description" in f}
    assert set(described) == set(summary)
    for frame, transcript in described.items():
        assert transcript.startswith("system\n") and "\nuser\n" in transcript
        assert assistant_text(transcript) == summary[frame]

    # every other key and value is kept; Chinese is written as text, not \u escapes
    for key in ("video_note", "au_info", "model_version"):
        assert after[key] == before[key]
    assert math.isnan(after["per_frame_au_descriptions"][5]["timestamp"])
    assert "说话人正在微笑" in path.read_text(encoding="utf-8")
    assert load_au_analysis(path).summary_source == "summary_description"

    report = _report(dataset)
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 0, "emotion_word_violations": 0}
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out


def test_rerun_skips_done_files_and_overwrite_redoes_them(dataset, agent_dir, monkeypatch):
    assert _run_dataset(dataset, agent_dir) == 0
    written = {name: _json_path(dataset, name).read_bytes() for name in ("s1", "s2")}

    loaded = []
    real_init = AUAgent.__init__

    def counting_init(self, *args, **kwargs):
        loaded.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(AUAgent, "__init__", counting_init)
    assert _run_dataset(dataset, agent_dir) == 0
    report = _report(dataset)
    assert report["counts"]["skipped"] == 2 and report["counts"]["done"] == 0
    assert "already has summary_description" in report["skipped"][0]["reason"]
    assert {name: _json_path(dataset, name).read_bytes() for name in written} == written
    assert not loaded, "nothing to do: the AU Agent is not even loaded"

    assert _run_dataset(dataset, agent_dir, "--overwrite") == 0
    assert _report(dataset)["counts"]["done"] == 2 and loaded


def test_interrupted_run_leaves_no_partial_json_and_resumes(dataset, agent_dir):
    originals = {name: _json_path(dataset, name).read_bytes() for name in ("s1", "s2")}
    calls = []
    real_dump = gen.dump_json

    def dump_then_die(data, fh):
        calls.append(1)
        if len(calls) == 2:  # the second JSON: half written, then the process is "killed"
            fh.write(json.dumps(data).encode()[:50])
            raise KeyboardInterrupt
        real_dump(data, fh)

    gen.dump_json = dump_then_die
    try:
        assert _run_dataset(dataset, agent_dir) == 130
    finally:
        gen.dump_json = real_dump
    assert "summary_description" in json.loads(_json_path(dataset, "s1").read_text())
    assert _json_path(dataset, "s2").read_bytes() == originals["s2"], "the interrupted file is untouched"
    assert not list(dataset.rglob("*.tmp")), "no temp files are left behind"
    report = _report(dataset)
    assert report["interrupted"] and report["counts"]["done"] == 1

    assert _run_dataset(dataset, agent_dir) == 0
    report = _report(dataset)
    assert report["counts"]["done"] == 1 and report["counts"]["skipped"] == 1
    assert "summary_description" in json.loads(_json_path(dataset, "s2").read_text())


def test_emotion_words_in_descriptions_are_reported(dataset, agent_dir, monkeypatch, capsys):
    real_generate = AUAgent.generate
    monkeypatch.setattr(AUAgent, "generate", lambda self, msgs: [f"{r} The person looks happy." for r in real_generate(self, msgs)])
    assert _run_dataset(dataset, agent_dir) == 0, "violations are reported, not failures"
    report = _report(dataset)
    assert report["counts"]["emotion_word_violations"] == 2 * NUM_FRAMES
    assert report["violations"][0]["words"] == ["happy"]
    assert "EMOTION WORDS" in capsys.readouterr().out


def test_unreadable_and_frameless_files_are_reported(tmp_path, agent_dir, capsys):
    folder = tmp_path / "jsons"
    _write(folder / "good_au_analysis.json", _extended_json("good", 2))
    (folder / "cut_au_analysis.json").write_text('{"per_frame_au_descriptions": [{"frame": 1,')
    _write(folder / "still_au_analysis.json", {"per_frame_au_descriptions": [{"frame": 1, "active_aus": {}}]})
    _write(folder / "nocsv" / "nocsv_au_analysis.json", {"source_path": "x.mp4", "chronological_emotion_peaks": []})
    report_path = tmp_path / "report.json"

    assert gen.main(["--json-dir", str(folder), "--report", str(report_path), *_args(agent_dir)]) == 1
    report = json.loads(report_path.read_text())
    assert report["done"] == [str(folder / "good_au_analysis.json")]
    failed = {Path(f["file"]).name: f["reason"] for f in report["failed"]}
    assert "not valid JSON" in failed["cut_au_analysis.json"]
    assert "no OpenFace CSV" in failed["nocsv_au_analysis.json"]
    assert "no frame has active AUs" in report["skipped"][0]["reason"]
    assert "FAILED" in capsys.readouterr().out


def test_upstream_json_gets_its_frames_from_the_openface_csv(tmp_path, agent_dir):
    from my_affectgpt.processors.openface_csv import augment_from_csv

    sample = tmp_path / "out" / "default"
    sample.mkdir(parents=True)
    json_path = sample / "default_au_analysis.json"
    shutil.copy(FIXTURES / "default_au_analysis.json", json_path)
    shutil.copy(FIXTURES / "default_openface.csv", sample / "default.csv")
    original = json.loads(json_path.read_text())

    assert gen.main(["--mer-factory-output", str(tmp_path / "out"), *_args(agent_dir)]) == 0
    after = json.loads(json_path.read_text())
    assert {k: after[k] for k in original} == original
    assert "per_frame_au_descriptions" not in after, "the upstream shape is kept"
    summary = after["summary_description"]
    assert len(summary) == NUM_FRAMES
    assert set(after["fine_grained_descriptions"]) == set(summary)

    analysis = augment_from_csv(load_au_analysis(json_path), sample / "default.csv")
    peaks = {str(analysis.frames[p].frame) for p in analysis.peak_positions if analysis.frames[p].active_aus}
    assert peaks and peaks <= set(summary), "upstream's emotion peaks are among the described frames"
    assert load_au_analysis(json_path).summary_texts == [summary[k] for k in sorted(summary, key=int)]
