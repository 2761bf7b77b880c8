"""Mixed precision and placement on the CPU, as a GPU server runs them.

The three AU modes train (a couple of steps of the real runner, ``train.py``) and answer
(``inference.py``) with a half-precision LLM under bf16 autocast. A trace of the forward calls
says what ran under autocast and in which dtypes; the model's parts are checked afterwards.
Placement is checked with the meta device as the second device the CPU offers.
"""
from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace
from typing import List, NamedTuple

import pytest
import torch

import inference
import train
from conftest import demo_config, write_config
from my_affectgpt.common.checkpoint import load_checkpoint
from my_affectgpt.common.config import validate
from my_affectgpt.common.devices import autocast, grad_scaler, precision_as_placed
from my_affectgpt.models.affectgpt import AffectGPT, Placement
from my_affectgpt.models.au_clip import AUClipTextEncoder
from my_affectgpt.models.fusion import FusionBranch

LLM_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU, META = torch.device("cpu"), torch.device("meta")
TRAIN_OPTIONS = ["run.max_epoch=1", "run.iters_per_epoch=2", "run.batch_size_train=2", "run.num_workers=0",
                 "run.amp=True", "run.visualize_training=False"]


class Call(NamedTuple):
    module: torch.nn.Module
    autocast: bool
    float_inputs: List[torch.dtype]


@pytest.fixture
def trace(monkeypatch):
    """Every AffectGPT built, and every fusion-branch and LLM forward call with whether CPU
    autocast was on and the dtypes of its floating-point inputs."""
    from transformers import PreTrainedModel

    built, calls = [], []
    real_from_config = AffectGPT.from_config.__func__

    def recording_from_config(cls, cfg, llm=None):
        built.append(real_from_config(cls, cfg, llm))
        return built[-1]

    def record(module, args, kwargs, output):
        if isinstance(module, (FusionBranch, PreTrainedModel)):
            tensors = [*args, *kwargs.values()]
            floats = [t.dtype for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point()]
            calls.append(Call(module, torch.is_autocast_enabled("cpu"), floats))

    monkeypatch.setattr(AffectGPT, "from_config", classmethod(recording_from_config))
    handle = torch.nn.modules.module.register_module_forward_hook(record, with_kwargs=True)
    yield SimpleNamespace(built=built, calls=calls)
    handle.remove()


def calls_of(trace, module) -> List[Call]:
    return [c for c in trace.calls if c.module is module]


def base_llm(model: AffectGPT):
    return model.llama_model.get_base_model() if model.cfg.use_lora else model.llama_model


def au_mode(raw: dict, mode: int, assets) -> None:
    """Switch a demo config to AU mode 1 (pre-extracted, as shipped), 2 (realtime CLIP) or 3 (AU Agent)."""
    if mode == 2:
        raw["datasets"]["demo"]["use_au_clip_realtime"] = True
    if mode == 3:
        raw["model"].update(use_au_agent=True, au_agent_base_model=str(assets / "models" / "tiny-au-agent"),
                            au_agent_max_new_tokens=2)


def assert_ran_as_planned(trace, model: AffectGPT, llm_dtype: torch.dtype, au_branch: bool) -> None:
    """Fusion branches and the LLM ran under autocast, features entered the branches in float32,
    the fusion output entered the LLM in its dtype, and the AU Agent ran in its own precision."""
    assert ("au" in model.branches) == au_branch
    for name, branch in model.branches.items():
        branch_calls = calls_of(trace, branch)
        assert branch_calls, f"the {name} branch never ran"
        assert all(c.autocast for c in branch_calls), name
        assert {dtype for c in branch_calls for dtype in c.float_inputs} == {torch.float32}, name
    llm_calls = calls_of(trace, base_llm(model))
    assert llm_calls and all(c.autocast for c in llm_calls)
    assert {dtype for c in llm_calls for dtype in c.float_inputs} == {llm_dtype}  # inputs_embeds
    if model.cfg.use_au_agent:
        agent_calls = calls_of(trace, model._au_agent_model().llm)
        assert agent_calls and not any(c.autocast for c in agent_calls)


def assert_dtypes_kept(model: AffectGPT, llm_dtype: torch.dtype) -> None:
    """The frozen LLM in its dtype; what trains (fusion, LoRA) in float32."""
    frozen = {p.dtype for n, p in model.llama_model.named_parameters() if "lora_" not in n}
    assert frozen == {llm_dtype}
    assert {p.dtype for p in model.branches.parameters()} == {torch.float32}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}


@pytest.mark.parametrize("mode", [1, 2, 3])
@pytest.mark.parametrize("llm_dtype", ["bf16", "fp16"])
def test_half_precision_llm_trains_and_answers_under_bf16_autocast(demo_assets, tmp_path, trace, mode, llm_dtype):
    dtype = LLM_DTYPES[llm_dtype]
    run_dir = tmp_path / "run"
    train_cfg = demo_config(demo_assets, run_dir)
    train_cfg["model"]["llm_dtype"] = llm_dtype
    au_mode(train_cfg, mode, demo_assets)
    assert train.main(["--cfg-path", str(write_config(train_cfg, tmp_path / "train.yaml")),
                       "--options", *TRAIN_OPTIONS]) == 0
    (trained,) = trace.built
    loss = json.loads((run_dir / "log.txt").read_text())["train_loss"]
    assert math.isfinite(loss)
    assert_ran_as_planned(trace, trained, dtype, au_branch=mode != 3)
    assert_dtypes_kept(trained, dtype)
    if mode == 2:
        assert trained._au_encoder().dtype == dtype and trained._au_encoder().device == CPU

    trace.calls.clear()
    eval_cfg = demo_config(demo_assets, run_dir, shipped="eval_configs/demo.yaml")
    eval_cfg["model"].update(train_cfg["model"])
    au_mode(eval_cfg, mode, demo_assets)
    eval_cfg["datasets"]["demo"]["ratio"] = 0.2  # 2 of the 12 test clips
    eval_cfg["run"].update(amp=True, output_dir=str(tmp_path / "eval"))
    eval_cfg["inference"].update(test_epoch=1, batch_size=2, max_new_tokens=2)
    assert inference.main(["--cfg-path", str(write_config(eval_cfg, tmp_path / "eval.yaml"))]) == 0
    answering = trace.built[1]
    assert_ran_as_planned(trace, answering, dtype, au_branch=mode != 3)
    lines = (tmp_path / "eval" / "results-demo" / "checkpoint_000001.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all("answer" in json.loads(line) for line in lines)


def test_fp16_autocast_trains_with_its_gradient_scaler(demo_assets, tmp_path, trace):
    cfg = demo_config(demo_assets, tmp_path / "run")
    cfg["model"]["llm_dtype"] = "fp16"
    assert train.main(["--cfg-path", str(write_config(cfg, tmp_path / "train.yaml")),
                       "--options", *TRAIN_OPTIONS, "run.amp_dtype=fp16"]) == 0
    state = load_checkpoint(tmp_path / "run" / "checkpoint_000001.pth")
    assert "scale" in state["scaler"]
    assert all(torch.isfinite(w).all() for w in state["model"].values())
    assert_ran_as_planned(trace, trace.built[0], torch.float16, au_branch=True)


def test_autocast_follows_run_amp():
    def run(amp, amp_dtype="bf16"):
        return SimpleNamespace(amp=amp, amp_dtype=amp_dtype)

    with autocast("cpu", run(False)):
        assert not torch.is_autocast_enabled("cpu")
    for name, dtype in LLM_DTYPES.items():
        with autocast(torch.device("cpu"), run(True, name)):
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype
            with precision_as_placed("cpu"):
                assert not torch.is_autocast_enabled("cpu")
    assert [grad_scaler("cpu", run(amp, d)).is_enabled() for amp, d in
            [(False, "fp16"), (True, "bf16"), (True, "fp16")]] == [False, False, True]


# --------------------------------------------------------------------------- placement
def placement_model(assets, tmp_path, tiny_encoders, au_agent_device: str) -> AffectGPT:
    """A bf16 model with every kind of part: fusion branches, raw-media encoders, the AU CLIP
    text tower and the AU Agent (both loaded)."""
    clip, hubert = tiny_encoders
    raw = demo_config(assets, tmp_path)
    raw["datasets"]["demo"].update(use_preextracted_frame=False, use_preextracted_audio=False)
    raw["datasets"]["demo"]["face_or_frame"] = "multiframe_audio_frame_au_text"
    au_mode(raw, 3, assets)
    raw["model"].update(llm_dtype="bf16", skip_encoders=False, visual_encoder_path=str(clip),
                        acoustic_encoder_path=str(hubert), preextracted_visual_dim=16, preextracted_acoustic_dim=32,
                        au_agent_device=au_agent_device)
    model = AffectGPT.from_config(validate(raw))
    model._au_encoder()
    model._au_agent_model()
    return model


def devices_and_dtypes(module) -> set:
    return {(p.device, p.dtype) for p in module.parameters()}


def test_moving_the_model_moves_every_part_it_owns(demo_assets, tmp_path, tiny_encoders):
    model = placement_model(demo_assets, tmp_path, tiny_encoders, au_agent_device="")
    assert model.placement == Placement(CPU, torch.bfloat16, au_agent_device=CPU)
    assert devices_and_dtypes(model.branches) == {(CPU, torch.float32)}
    assert devices_and_dtypes(model.visual_encoder) == devices_and_dtypes(model.acoustic_encoder) == {(CPU, torch.bfloat16)}

    model.to(device=META, dtype=torch.float16)
    assert model.placement == Placement(META, torch.float16, au_agent_device=META)
    assert {p.device for p in model.llama_model.parameters()} == {META}
    assert devices_and_dtypes(model.branches) == {(META, torch.float32)}  # fusion stays float32
    for encoder in (model.visual_encoder, model.acoustic_encoder):
        assert devices_and_dtypes(encoder) == {(META, torch.float16)}
    au_clip = model._au_encoder()
    assert (au_clip.device, au_clip.dtype) == (META, torch.float16)
    agent = model._au_agent_model()
    assert agent.device == META and {p.device for p in agent.llm.parameters()} == {META}


def test_au_agent_stays_on_its_own_device(demo_assets, tmp_path, tiny_encoders):
    model = placement_model(demo_assets, tmp_path, tiny_encoders, au_agent_device="cpu:0")
    assert model.placement == Placement(CPU, torch.bfloat16, au_agent_device=torch.device("cpu", 0))
    model.to(META)
    agent = model._au_agent_model()
    assert agent.device == torch.device("cpu", 0) and {p.device for p in agent.llm.parameters()} == {CPU}
    frame = {"frame": 3, "active_aus": {"AU12": 2.5}, "au_description": "lip corners pulled"}
    (text,) = model.au_agent_texts({"au_agent_frames": [[frame]]}, ["clip"])  # still answers
    assert text.startswith("Frame 3:")


def test_au_clip_tower_computes_in_its_dtype_and_returns_float32(demo_assets, tmp_path):
    from my_affectgpt.datasets.builders import DemoBuilder

    # a copy of the tiny CLIP, so this test starts with a tower (and feature caches) of its own
    clip_dir = shutil.copytree(demo_assets / "models" / "tiny-au-clip", tmp_path / "tiny-au-clip")
    clip = (str(clip_dir / "tiny-au-clip.json"), str(clip_dir / "tiny-au-clip.pt"))
    raw = demo_config(demo_assets, tmp_path)
    preextracted = DemoBuilder(validate(raw), "demo").build()["train"][0]
    raw["datasets"]["demo"]["use_au_clip_realtime"] = True
    texts = DemoBuilder(validate(raw), "demo").build()["train"][0]["au_texts"]

    in_bf16 = AUClipTextEncoder(*clip, dtype=torch.bfloat16).encode(texts)
    with torch.autocast("cpu", dtype=torch.float16):  # the caller's autocast changes nothing
        in_fp32 = AUClipTextEncoder(*clip).encode(texts)
    # the float32 tower is the extraction's, untouched by the bf16 copy made first
    assert torch.equal(in_fp32, torch.as_tensor(preextracted["au"]))
    assert in_bf16.dtype == torch.float32 and not torch.equal(in_bf16, in_fp32)
    assert torch.nn.functional.cosine_similarity(in_bf16, in_fp32).min() > 0.99
