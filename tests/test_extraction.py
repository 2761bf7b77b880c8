"""Feature pre-extraction and the raw-media path it shares with the model (skip_encoders: False).

Synthetic clips are written with PyAV; the encoders are tiny random CLIP / HuBERT / open_clip
models saved as model directories and loaded through the production code.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers_tiny_encoders import write_synthetic_clip
from my_affectgpt.common.tiny_models import build_tiny_clip_vision, build_tiny_hubert, build_tiny_open_clip
from my_affectgpt.processors.au_json import load_au_analysis
from my_affectgpt.processors.frame_sampling import FrameSampler
from my_affectgpt.processors.au_json import AUJsonLocator
from my_affectgpt.processors.raw_media import (
    MediaSources,
    RawMediaReader,
    SampleMediaError,
    SamplingSpec,
    encoder_inputs,
    repeat_to_length,
    video_frames,
)
from my_affectgpt.extraction import runner as runner_module
from my_affectgpt.datasets.features import feature_problem as npy_problem
from my_affectgpt.extraction import cli
from my_affectgpt.extraction.cli import main
from my_affectgpt.extraction.encode import whole_sample_passes
from my_affectgpt.models.au_clip import AUClipTextEncoder
from my_affectgpt.models.encoders import build_encoder

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MEGAMIND = FIXTURES / "media" / "Megamind.avi"

GOOD = ("clip_a", "clip_b", "clip_c", "short")  # "short" has 5 frames, fewer than frame_n_frms
VISUAL_DIM, ACOUSTIC_DIM, AU_DIM = 768, 64, 512
FRAME_DIR, FACE_DIR = "frame_CLIP_VIT_LARGE_8frms", "face_CLIP_VIT_LARGE_8frms"
AUDIO_DIR, AU_DIR = "audio_HUBERT_LARGE_8clips", "au_CLIP_VITB32_8frms"


def raw_inputs(world, name, modalities, frame_sampling="uniform", audio_root=None):
    """Encoder inputs through the reader the dataset uses (``model.skip_encoders: False``)."""
    reader = RawMediaReader(MediaSources(world["video"], audio_root, world["face"]),
                            SamplingSpec(frame_sampling=frame_sampling), AUJsonLocator(world["mer"], "DEMO"))
    return encoder_inputs(reader, name, modalities)


def au_json(n_frames, peak, summaries):
    """An extended-shape MER-Factory AU JSON (6 fps timeline, one peak)."""
    return {
        "per_frame_au_descriptions": [
            {"frame": i + 1, "timestamp": round(i / 6, 3), "active_aus": {"AU12_r": 1.0 + (i == peak)},
             "au_description": "Lip corner puller", "is_peak_frame": i == peak}
            for i in range(n_frames)
        ],
        "au_info": {"total_frames": n_frames, "peak_frames": [{"peak_index": peak}]},
        "summary_description": {str(frame): text for frame, text in summaries.items()},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("extraction")
    models = root / "models"
    au_json_path, au_weights = build_tiny_open_clip(models / "au_clip")
    w = {
        "root": root,
        "clip": build_tiny_clip_vision(models / "clip", projection_dim=VISUAL_DIM),
        "hubert": build_tiny_hubert(models / "hubert", hidden_size=ACOUSTIC_DIM),
        "au_model": au_json_path,
        "au_weights": au_weights,
        "video": root / "video",
        "face": root / "faces",
        "mer": root / "mer_factory_output",
    }
    w["video"].mkdir()
    for i, name in enumerate(GOOD[:3]):
        write_synthetic_clip(w["video"] / f"{name}.mp4", n_frames=24, tone_hz=300 + 100 * i)
    write_synthetic_clip(w["video"] / "short.mp4", n_frames=5, audio_seconds=0.5)
    write_synthetic_clip(w["video"] / "silent.mp4", n_frames=12, audio_seconds=None)
    (w["video"] / "broken.mp4").write_bytes(b"\x00not a video" * 300)
    rng = np.random.default_rng(0)
    for name in GOOD:
        (w["face"] / name).mkdir(parents=True)
        np.save(w["face"] / name / f"{name}.npy", rng.integers(0, 255, (10, 48, 48, 3), dtype=np.uint8))
    for name, peak in (("clip_a", 20), ("clip_b", 10)):  # clip_c and short have no AU JSON
        folder = w["mer"] / "DEMO" / name
        folder.mkdir(parents=True)
        texts = {4: f"{name}: the lip corners rise.", peak + 1: f"{name}: a broad smile at the peak."}
        (folder / f"{name}_au_analysis.json").write_text(json.dumps(au_json(24, peak, texts)))
    return w


def args_for(w, save_root, *extra, modality="frame", workers="0"):
    return [
        "--dataset", "demo", "--modality", modality, "--device", "cpu", "--save_root", str(save_root),
        "--video_root", str(w["video"]), "--visual_encoder_path", str(w["clip"]),
        "--acoustic_encoder_path", str(w["hubert"]), "--au_clip_model", str(w["au_model"]),
        "--au_clip_pretrained", str(w["au_weights"]), "--num_workers", workers, "--batch_size", "3",
        "--no_progress", *extra,
    ]


def names_csv(path, names, column="name"):
    path.write_text(column + "\n" + "".join(f"{n}\n" for n in names))
    return path


def report_of(save_root):
    return json.loads((save_root / "demo" / "extraction_report.json").read_text())


@pytest.fixture(scope="module")
def full_run(world):
    """Every modality over every sample, decoded in two DataLoader workers."""
    save_root = world["root"] / "full"
    rc = main(args_for(world, save_root, "--face_root", str(world["face"]), "--mer-factory-output",
                       str(world["mer"]), modality="all", workers="2"))
    return rc, save_root / "demo"


# -- outputs, shapes, report ------------------------------------------------------------------

def test_all_modalities_written_with_spec_shapes(full_run):
    rc, out = full_run
    for name in GOOD:
        for folder, width in ((FRAME_DIR, VISUAL_DIM), (FACE_DIR, VISUAL_DIM), (AUDIO_DIR, ACOUSTIC_DIM)):
            array = np.load(out / folder / f"{name}.npy")
            assert array.shape == (8, width) and array.dtype == np.float32 and np.isfinite(array).all()
    for name in ("clip_a", "clip_b"):
        assert np.load(out / AU_DIR / f"{name}.npy").shape == (2, AU_DIM)
    assert not list(out.rglob("*.tmp"))


def test_corrupt_and_silent_videos_are_reported_and_others_written(full_run):
    rc, out = full_run
    assert rc == 1
    report = report_of(out.parent)
    failed = {(f["name"], f["modality"]): f["reason"] for f in report["failed"]}
    assert "broken.mp4" in failed[("broken", "frame")] and "broken.mp4" in failed[("broken", "audio")]
    assert "no audio stream" in failed[("silent", "audio")]
    assert ("silent", "frame") not in failed and (out / FRAME_DIR / "silent.npy").is_file()
    assert "no AU analysis JSON for sample 'clip_c'" in failed[("clip_c", "au")]
    assert report["counts"]["frame"] == {"done": 5, "skipped": 0, "failed": 1, "redone_invalid": 0}
    assert report["counts"]["audio"]["done"] == 4 and report["counts"]["audio"]["failed"] == 2
    assert report["counts"]["au"]["done"] == 2


def test_raw_media_through_the_encoder_equals_the_extracted_npy(world, full_run):
    """What the model computes from frame_pixels/face_pixels/audio_wave equals the .npy files."""
    _, out = full_run
    visual = build_encoder("CLIP_VIT_LARGE", str(world["clip"]))
    acoustic = build_encoder("HUBERT_LARGE", str(world["hubert"]))
    for name in ("clip_a", "short"):
        raw = raw_inputs(world, name, ("frame", "face", "audio"))
        assert raw["frame_pixels"].shape == (8, 3, 224, 224) and raw["audio_wave"].shape == (8, 32000)
        batch = {key: value[None] for key, value in raw.items()}  # as collate stacks them
        for key, folder, encoder in (("frame_pixels", FRAME_DIR, visual), ("face_pixels", FACE_DIR, visual)):
            np.testing.assert_allclose(encoder(batch[key]).numpy(), np.load(out / folder / f"{name}.npy"), atol=2e-5)
        np.testing.assert_allclose(acoustic(batch["audio_wave"].flatten(0, 1)).numpy(),
                                   np.load(out / AUDIO_DIR / f"{name}.npy"), atol=2e-5)


def test_au_features_equal_realtime_encoding(world, full_run):
    _, out = full_run
    encoder = AUClipTextEncoder(str(world["au_model"]), str(world["au_weights"]))
    analysis = load_au_analysis(world["mer"] / "DEMO" / "clip_a" / "clip_a_au_analysis.json")
    np.testing.assert_allclose(encoder.encode(analysis.summary_texts).numpy(), np.load(out / AU_DIR / "clip_a.npy"),
                               atol=1e-5)


def test_encoder_passes_take_whole_samples_up_to_the_row_limit():
    assert whole_sample_passes([8, 8, 8, 8, 8], 32) == [slice(0, 4), slice(4, 5)]
    assert whole_sample_passes([8, 8, 8], 8) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert whole_sample_passes([8, 40, 8], 32) == [slice(0, 1), slice(1, 2), slice(2, 3)]  # too big: alone
    assert whole_sample_passes([3], 32) == [slice(0, 1)]


def test_cpu_runs_leave_the_decode_workers_their_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cli, "usable_cores", lambda: 8)
    assert cli.default_workers() == 4 and cli.encoding_threads("cpu", 4) == 4
    assert cli.encoding_threads("cpu", 0) is None  # no workers: torch's own setting
    assert cli.encoding_threads("cuda:0", 4) is None
    monkeypatch.setattr(cli, "usable_cores", lambda: 2)
    assert cli.default_workers() == 1 and cli.encoding_threads("cpu", 1) == 1
    assert cli.encoding_threads("cpu", 3) == 1
    monkeypatch.setattr(cli, "usable_cores", lambda: 1)
    assert cli.default_workers() == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cli.encoding_threads("cpu", 1) is None  # the user's choice stands


def test_the_cli_restores_torch_threads_after_a_run(world, tmp_path):
    before = torch.get_num_threads()
    main(args_for(world, tmp_path / "threads", "--csv_path", str(names_csv(tmp_path / "n.csv", ["clip_a"])),
                  workers="1"))
    assert torch.get_num_threads() == before


# -- the raw-media loader ---------------------------------------------------------------------

def test_short_video_repeats_its_frames_in_order(world):
    assert repeat_to_length([0, 1, 2, 3, 4], 8) == [0, 0, 1, 1, 2, 3, 3, 4]
    sampled = video_frames(world["video"] / "short.mp4", FrameSampler("uniform", 8))
    assert sampled.indices == (0, 0, 1, 1, 2, 3, 3, 4)
    assert sampled.frames.dtype == torch.uint8 and sampled.frames.shape == (8, 224, 224, 3)
    torch.testing.assert_close(sampled.frames[0], sampled.frames[1])


def test_bad_media_raise_an_error_naming_sample_and_file(world):
    with pytest.raises(SampleMediaError, match="broken.mp4"):
        raw_inputs(world, "broken", ("frame",))
    with pytest.raises(SampleMediaError, match="no audio stream"):
        raw_inputs(world, "silent", ("audio",))
    with pytest.raises(SampleMediaError, match="face crops"):
        raw_inputs(world, "silent", ("face",))


def test_emotion_peak_uses_the_au_json_and_counts_fallbacks(world, tmp_path):
    save_root = tmp_path / "peak"
    csv = names_csv(tmp_path / "names.csv", ["clip_a", "clip_c"])
    rc = main(args_for(world, save_root, "--csv_path", str(csv), "--frame_sampling", "emotion_peak",
                       "--mer-factory-output", str(world["mer"])))
    assert rc == 0
    fallbacks = report_of(save_root)["frame_sampling_fallbacks"]
    assert fallbacks == {"reasons": {"without AU data": 1}, "names": ["clip_c"]}
    analysis = load_au_analysis(world["mer"] / "DEMO" / "clip_a" / "clip_a_au_analysis.json")
    sampled = video_frames(world["video"] / "clip_a.mp4", FrameSampler("emotion_peak", 8), analysis)
    assert 20 in sampled.indices and sampled.fallback is None
    pixels = raw_inputs(world, "clip_a", ("frame",), frame_sampling="emotion_peak")["frame_pixels"]
    visual = build_encoder("CLIP_VIT_LARGE", str(world["clip"]))
    np.testing.assert_allclose(visual(pixels[None]).numpy(), np.load(save_root / "demo" / FRAME_DIR / "clip_a.npy"),
                               atol=2e-5)


# -- resuming, interruption, sharding, overwrite ----------------------------------------------

def test_rerun_skips_valid_outputs_and_redoes_a_truncated_one(world, tmp_path, capsys):
    save_root = tmp_path / "resume"
    csv = names_csv(tmp_path / "names.csv", ["clip_a", "clip_b"])
    assert main(args_for(world, save_root, "--csv_path", str(csv))) == 0
    target = save_root / "demo" / FRAME_DIR / "clip_b.npy"
    good = np.load(target)
    target.write_bytes(target.read_bytes()[:100])
    assert npy_problem(target, 8) is not None
    assert main(args_for(world, save_root, "--csv_path", str(csv))) == 0
    counts = report_of(save_root)["counts"]["frame"]
    assert counts == {"done": 1, "skipped": 1, "failed": 0, "redone_invalid": 1}
    assert "frame: 1 done (of which 1 replaced invalid files), 1 skipped" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(target), good, atol=1e-6)


def test_overwrite_redoes_valid_outputs(world, tmp_path):
    save_root = tmp_path / "overwrite"
    csv = names_csv(tmp_path / "names.csv", ["clip_a"])
    assert main(args_for(world, save_root, "--csv_path", str(csv))) == 0
    target = save_root / "demo" / FRAME_DIR / "clip_a.npy"
    np.save(target, np.zeros((8, VISUAL_DIM), np.float32))  # valid, but not what the encoder gives
    assert main(args_for(world, save_root, "--csv_path", str(csv))) == 0
    assert not np.load(target).any()
    assert main(args_for(world, save_root, "--csv_path", str(csv), "--overwrite")) == 0
    assert np.load(target).any() and report_of(save_root)["counts"]["frame"]["done"] == 1


def test_interrupted_run_resumes_to_complete_valid_outputs(world, tmp_path, monkeypatch):
    """Killed mid-write after two outputs: the restart finishes and leaves no temp file."""
    save_root = tmp_path / "killed"
    csv = names_csv(tmp_path / "names.csv", GOOD)
    real_save = runner_module.save_npy_atomic
    written = []

    def dying_save(path, array, tag):
        if len(written) == 2:  # the process dies while writing the third file
            (Path(path).parent / f".{tag}.{Path(path).name}.abc123.tmp").write_bytes(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        real_save(path, array, tag=tag)
        written.append(path)

    monkeypatch.setattr(runner_module, "save_npy_atomic", dying_save)
    assert main(args_for(world, save_root, "--csv_path", str(csv))) == 130
    assert report_of(save_root)["interrupted"] is True
    assert len(list((save_root / "demo" / FRAME_DIR).glob("*.npy"))) == 2
    monkeypatch.setattr(runner_module, "save_npy_atomic", real_save)

    assert main(args_for(world, save_root, "--csv_path", str(csv))) == 0
    report = report_of(save_root)
    assert report["counts"]["frame"] == {"done": 2, "skipped": 2, "failed": 0, "redone_invalid": 0}
    assert report["removed_temp_files"] == 1
    out = save_root / "demo" / FRAME_DIR
    assert sorted(p.stem for p in out.glob("*.npy")) == sorted(GOOD)
    assert all(npy_problem(p, 8) is None for p in out.glob("*.npy"))
    assert not [p for p in (save_root / "demo").rglob("*") if p.name.endswith(".tmp")]


def test_two_shards_together_equal_one_full_run(world, full_run, tmp_path, monkeypatch):
    _, full_out = full_run
    save_root = tmp_path / "sharded"
    rcs = [main(args_for(world, save_root, "--shard", "0/2", modality="audio"))]
    monkeypatch.setenv("RANK", "1")  # the second shard as torchrun would start it
    monkeypatch.setenv("WORLD_SIZE", "2")
    rcs.append(main(args_for(world, save_root, modality="audio")))
    assert rcs == [1, 1]  # shard 0 holds broken.mp4, shard 1 silent.mp4
    out = save_root / "demo" / AUDIO_DIR
    expected = sorted(p.name for p in (full_out / AUDIO_DIR).glob("*.npy"))
    assert sorted(p.name for p in out.glob("*.npy")) == expected
    for name in expected:
        np.testing.assert_allclose(np.load(out / name), np.load(full_out / AUDIO_DIR / name), atol=2e-5)
    merged = report_of(save_root)
    assert merged["counts"]["audio"]["done"] == len(expected) and merged["counts"]["audio"]["failed"] == 2
    assert (save_root / "demo" / "extraction_report.shard1of2.json").is_file()


def test_a_decoder_crash_costs_only_its_sample(world, tmp_path, monkeypatch):
    """A native crash while decoding one file (simulated: SIGSEGV in the worker) is reported."""
    import os
    import signal

    from my_affectgpt.extraction import decode

    real_decode = decode.decode_sample

    def crashing_decode(job, reader):
        if job.ref.name == "clip_b":
            os.kill(os.getpid(), signal.SIGSEGV)
        return real_decode(job, reader)

    monkeypatch.setattr(decode, "decode_sample", crashing_decode)
    save_root = tmp_path / "crash"
    csv = names_csv(tmp_path / "names.csv", ["clip_a", "clip_b", "clip_c"])
    assert main(args_for(world, save_root, "--csv_path", str(csv), workers="1")) == 1
    report = report_of(save_root)
    assert [(f["name"], f["modality"]) for f in report["failed"]] == [("clip_b", "frame")]
    assert "crashed" in report["failed"][0]["reason"]
    assert sorted(p.stem for p in (save_root / "demo" / FRAME_DIR).glob("*.npy")) == ["clip_a", "clip_c"]


# -- inputs and usage -------------------------------------------------------------------------

def test_csv_paths_and_unsafe_names(world, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(world["video"] / "clip_b.mp4", elsewhere / "moved.mp4")
    rows = [str(elsewhere / "moved.mp4"), "clip_a.mp4", "bad..name", "gone/missing.mp4", "clip_a"]
    csv = names_csv(tmp_path / "list.csv", rows, column="video")
    save_root = tmp_path / "csv"
    rc = main(args_for(world, save_root, "--csv_path", str(csv), "--csv_column", "video"))
    assert rc == 1
    failed = {f["name"]: f["reason"] for f in report_of(save_root)["failed"]}
    assert "path separator or '..'" in failed["bad..name"]
    assert str(tmp_path / "gone" / "missing.mp4") in failed["missing"]
    report = report_of(save_root)
    assert report["duplicate_names_dropped"] == 1
    assert sorted(p.stem for p in (save_root / "demo" / FRAME_DIR).glob("*.npy")) == ["clip_a", "moved"]


def test_repo_root_script_exposes_main(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "extract_multimodal_features_precompute.py"
    spec = importlib.util.spec_from_file_location("extract_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as info:
        script.main(["--help"])
    assert info.value.code == 0 and "--mer-factory-output" in capsys.readouterr().out


def test_usage_errors(world, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(args_for(world, tmp_path, "--frame_sampling", "emotion_peak"))
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["--dataset", "demo", "--modality", "face", "--save_root", str(tmp_path)])
    rc = main(args_for(world, tmp_path, "--visual_encoder_path", str(tmp_path / "no_model")))
    assert rc == 2


def test_megamind_fixture(world, tmp_path):
    csv = names_csv(tmp_path / "list.csv", [str(MEGAMIND)])
    save_root = tmp_path / "megamind"
    rc = main(args_for(world, save_root, "--csv_path", str(csv), modality="all"))
    assert rc == 0
    out = save_root / "demo"
    assert np.load(out / FRAME_DIR / "Megamind.npy").shape == (8, VISUAL_DIM)
    audio = np.load(out / AUDIO_DIR / "Megamind.npy")
    assert audio.shape == (8, ACOUSTIC_DIM) and np.isfinite(audio).all()
