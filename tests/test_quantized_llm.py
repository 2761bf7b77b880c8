"""``model.load_in_4bit`` / ``load_in_8bit``: the base LLM loaded in 4 or 8 bit by bitsandbytes
(which also runs on the CPU), LoRA trained on top; and the errors when it cannot run."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from my_affectgpt.common.config import validate
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.tiny_models import build_tiny_bert_config, build_tiny_llm
from my_affectgpt.models import llm_utils
from my_affectgpt.models.affectgpt import AffectGPT

PROMPT = ("###Human: We uniformly sample raw frames from the video and extract faces from these frames: "
          "<Video><FaceHere></Video>. The subtitle of this video is: <Subtitle>I am fine</Subtitle>. Now, please "
          "answer my question based on all the provided information. Please recognize all possible emotional "
          "states of the character. ###Assistant: ")
ANSWERS = ["The character's emotional state is happy.", "The character's emotional state is sad, worried."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantized")
    return build_tiny_llm(root / "llm"), build_tiny_bert_config(root / "bert", hidden_size=32, num_heads=4)


def build(tiny, **model):
    llm, bert = tiny
    cfg = validate({
        "model": {"llama_model": str(llm), "qformer_config": str(bert), "skip_encoders": True, "lora_r": 4,
                  "lora_alpha": 8, "video_fusion_type": "attention", **model},
        "datasets": {"ds": {"face_or_frame": "face_text", "use_preextracted_features": True,
                            "preextracted_root": str(llm)}},
        "run": {},
    })
    torch.manual_seed(0)
    return AffectGPT.from_config(cfg)


def batch():
    return {"names": ["a", "b"], "prompt": [PROMPT] * 2, "answer": ANSWERS, "max_length": 1024,
            "face": torch.randn(2, 8, 768, generator=torch.Generator().manual_seed(1))}


def first_q_proj(model):
    return model.llama_model.base_model.model.model.layers[0].self_attn.q_proj


@pytest.mark.parametrize("key,layer,tolerance", [
    ("load_in_4bit", "Linear4bit", 0.2),  # NF4 keeps about 3 significant bits of a weight
    ("load_in_8bit", "Linear8bitLt", 0.05),
])
def test_quantized_base_holds_the_checkpoint_weights(tiny, key, layer, tolerance):
    full, quantized = build(tiny), build(tiny, **{key: True})
    base = first_q_proj(quantized).base_layer
    assert type(base).__name__ == layer
    x = torch.randn(4, base.in_features)
    expected = first_q_proj(full).base_layer(x)
    error = (base(x).float() - expected).norm() / expected.norm()
    assert error < tolerance


@pytest.mark.parametrize("key,checkpointing", [("load_in_4bit", False), ("load_in_4bit", True), ("load_in_8bit", False)])
def test_lora_trains_on_a_quantized_base(tiny, key, checkpointing):
    model = build(tiny, **{key: True}, gradient_checkpointing=checkpointing)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    assert all("lora_" in n or n.startswith("branches.") for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(6):
        loss = model(batch())["loss"]
        optimizer.zero_grad()
        loss.backward()
        assert first_q_proj(model).lora_B["default"].weight.grad.abs().sum() > 0  # lora_A gets one once B moves
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    answers = model.generate(batch(), max_new_tokens=3)
    assert len(answers) == 2


def test_without_bitsandbytes_the_error_names_the_key_and_the_install(tiny, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(llm_utils.importlib.util, "find_spec",
                        lambda name, *args: None if name == "bitsandbytes" else real_find_spec(name, *args))
    with pytest.raises(UserError, match=r"model\.load_in_8bit needs the bitsandbytes package.*my_affectgpt\[qlora\]"):
        build(tiny, load_in_8bit=True)


def test_a_device_bitsandbytes_cannot_use_is_a_clear_error(tiny, monkeypatch):
    import bitsandbytes

    monkeypatch.setattr(bitsandbytes, "supported_torch_devices", {"cuda"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"model\.load_in_4bit: bitsandbytes .* cannot run on this machine's cpu.*CUDA GPU"):
        build(tiny, load_in_4bit=True)
