"""benchmarks/bench_scale.py: its production shapes, its FLOP and target bookkeeping, and a
``--tiny`` run on the CPU that prints the whole table (no timings are asserted)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import bench_scale  # noqa: E402


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_real_shapes_are_the_production_models():
    """Counted on the meta device: Qwen2.5-7B has 7.62 B weights (its embedding table 0.54 B),
    CLIP ViT-L/14's vision tower 303 M, HuBERT-large 315 M."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, HubertConfig, HubertModel, Qwen2Config

    shape = bench_scale.LLMShape.of_config(Qwen2Config(**bench_scale.QWEN25_7B))
    assert (shape.layers, shape.hidden) == (28, 3584)
    assert shape.frozen_matmul_params + 152064 * 3584 == 7_615_616_512
    with torch.device("meta"):
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**bench_scale.CLIP_VIT_L14))
        hubert = HubertModel(HubertConfig(**bench_scale.HUBERT_LARGE))
    assert count(clip.vision_model) == 303_179_776
    assert clip.visual_projection.out_features == 768
    assert count(hubert) == pytest.approx(316e6, rel=0.01)
    assert hubert.config.hidden_size == 1024


def test_training_flops_count_frozen_weights_without_their_gradients():
    shape = bench_scale.LLMShape(frozen_matmul_params=1000, layers=2, hidden=8)
    # two sequences of 10 and 20 tokens, 50 LoRA weights
    expected = 30 * (4 * 1000 + 6 * 50) + 12 * 2 * 8 * (10**2 + 20**2)
    assert shape.train_flops([10, 20], lora_params=50) == expected


@pytest.mark.parametrize("name,tflops", [
    ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989),
    ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA GeForce RTX 3090", None),
])
def test_peak_flops_by_device_name(name, tflops):
    assert bench_scale.peak_flops(name, None) == (None if tflops is None else tflops * 1e12)
    assert bench_scale.peak_flops(name, 123.0) == 123e12


def test_target_checks_mark_batch_one_memory_best_mfu_and_the_24_gib_card():
    Row, MODES = bench_scale.Row, bench_scale.MODES
    rows = [
        Row("train", MODES[1], "ckpt off", 1, 10, 1, "tok/s", mfu=0.30, peak_gib=16.0),
        Row("train", MODES[1], "ckpt on", 1, 10, 1, "tok/s", mfu=0.20, peak_gib=14.5),
        Row("train", MODES[1], "ckpt off", 8, 10, 1, "tok/s", mfu=0.45, peak_gib=30.0),
        Row("train", MODES[2], "ckpt off", 1, 10, 1, "tok/s", mfu=0.35, peak_gib=16.9),
        Row("train", MODES[3], "ckpt off", 8, 10, 1, "tok/s", mfu=0.10, peak_gib=40.0),
        Row("qlora", MODES[1], "4-bit NF4, ckpt on", 4, 10, 1, "tok/s", mfu=0.2, peak_gib=25.0),
    ]
    bench_scale.add_target_checks(rows)
    assert [r.checks for r in rows] == [
        ["peak <= 15 GiB: MISS"],
        ["peak <= 15 GiB: ok"],
        ["best MFU >= 40%: ok"],
        ["peak <= 17 GiB: ok", "best MFU >= 40%: MISS"],
        [],  # a mode-3 step waits for the AU Agent's generation: no MFU target
        ["fits 24 GiB: MISS"],
    ]


def parse_table(stdout: str):
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return header, rows


def number(text: str) -> float:
    return float(text.split()[0].rstrip("%").replace(",", ""))


def test_tiny_run_prints_every_row_of_the_table():
    """The CLI, on tiny shapes on the CPU: every section, AU mode, batch size and setting of
    the GPU table, with numbers that agree with each other."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_scale.py"), "--tiny", "--peak-tflops", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tiny shapes" in result.stdout.splitlines()[0]
    header, rows = parse_table(result.stdout)
    assert tuple(header) == bench_scale.COLUMNS

    def select(section, **where):
        return [r for r in rows if r["section"] == section and all(r[k] == v for k, v in where.items())]

    modes = bench_scale.MODES.values()
    for mode in modes:
        got = {(r["setting"], r["batch"]) for r in select("train", **{"AU mode / encoder": mode})}
        assert got == {(f"ckpt {c}", str(b)) for c in ("off", "on") for b in (1, 4, 8)}
        assert {r["batch"] for r in select("infer", **{"AU mode / encoder": mode})} == {"1", "16"}
    assert {r["AU mode / encoder"] for r in select("extract")} == {
        "CLIP ViT-L/14 (faces + frames)", "HuBERT-large (audio)", "CLIP ViT-B/32 text (AU)", "all encoders"}
    assert len(select("au agent")) == 1
    assert {(r["setting"], r["batch"]) for r in select("qlora")} == {
        (f"{q}, ckpt on", str(b)) for q in ("4-bit NF4", "8-bit") for b in (1, 4)}
    assert len(rows) == 18 + 6 + 4 + 1 + 4

    for r in select("train") + select("qlora"):
        ms, rate, seq = number(r["ms"]), number(r["throughput"]), number(r["tokens/seq"])
        assert r["throughput"].endswith("tok/s") and 0 < number(r["MFU"]) < 100
        assert seq > 100  # the prompt alone is longer
        assert rate == pytest.approx(seq * int(r["batch"]) * 1e3 / ms, rel=0.02)
        assert r["peak GiB"] == "-"  # no GPU memory on the CPU
    for r in select("infer") + select("au agent"):
        assert number(r["throughput"]) == pytest.approx(int(r["batch"]) * 1e3 / number(r["ms"]), rel=0.02)
    for r in select("extract"):
        assert number(r["throughput"]) == pytest.approx(int(r["batch"]) * 1e3 / number(r["ms"]), rel=0.02)
    for mode in modes:
        for r in select("train", **{"AU mode / encoder": mode}) + select("infer", **{"AU mode / encoder": mode}):
            assert ("AU Agent on the CPU" in r["check"]) == (mode == bench_scale.MODES[3])
    marked = [r for r in rows if "best MFU" in r["check"]]
    assert sorted(r["AU mode / encoder"] for r in marked) == [bench_scale.MODES[1], bench_scale.MODES[2]]
