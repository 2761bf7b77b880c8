"""Original AffectGPT checkpoints load into the fusion branches and compute what the original computed.

The reference (``affectgpt_reference/``: two checkpoints written by the original runner, the
original collater's batch and the original model's eval-mode outputs on it) is large and
comes with the project's shared fixtures; the ``affectgpt_reference`` fixture finds it.
"""
from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from my_affectgpt.models.fusion import build_branch, build_multi_branch
from my_affectgpt.models.original_names import OriginalNames
from my_affectgpt.models.qformer import load_qformer_bert_config

# What the original saves but this config (face + audio + Multi prompts, no AU, no image) does not build.
NOT_USED = {"image_llama_proj.weight", "image_llama_proj.bias", "au_attention_mlp.weight",
            "au_attention_mlp.bias", "au_llama_proj.weight", "au_llama_proj.bias"}


@pytest.fixture(scope="module", params=["attention", "qformer"])
def case(request, affectgpt_reference):
    folder = affectgpt_reference / request.param
    (checkpoint,) = folder.glob("checkpoint_*.pth")
    return {
        "folder": folder,
        "config": OmegaConf.load(folder / "config.yaml").model,
        "weights": torch.load(checkpoint, map_location="cpu", weights_only=False)["model"],
        "batch": torch.load(folder / "batch.pt", weights_only=False),
        "outputs": torch.load(folder / "outputs.pt", weights_only=False),
    }


def build_reference_branches(case) -> nn.ModuleDict:
    cfg, folder = case["config"], case["folder"]
    bert = load_qformer_bert_config(folder / "models" / "bert-base-uncased")
    llm_width = json.loads((folder / "models" / "tiny-qwen25" / "config.json").read_text())["hidden_size"]
    return nn.ModuleDict({
        "video": build_branch("video", cfg.video_fusion_type, cfg.preextracted_visual_dim,
                              cfg.num_video_query_token, llm_width, bert),
        "audio": build_branch("audio", cfg.audio_fusion_type, cfg.preextracted_acoustic_dim,
                              cfg.num_audio_query_token, llm_width, bert),
        "multi": build_multi_branch(cfg.multi_fusion_type, cfg.preextracted_visual_dim,
                                    cfg.preextracted_acoustic_dim, cfg.num_multi_query_token, llm_width, bert),
    })


def branch_weights(weights):
    """The ``branches.`` entries of a renamed state dict, by their names inside ``branches``."""
    return {k[len("branches."):]: v for k, v in weights.items() if k.startswith("branches.")}


def loaded_branches(case):
    """The reference branches with the checkpoint loaded, in eval mode, and their name map."""
    branches = build_reference_branches(case)
    names = OriginalNames(branches)
    branches.load_state_dict(branch_weights(names.from_original_names(case["weights"]).weights))
    return branches.eval(), names


def test_original_checkpoint_loads_with_only_documented_leftovers(case):
    branches = build_reference_branches(case)
    loaded = OriginalNames(branches).from_original_names(case["weights"])
    others = [k for k in loaded.weights if not k.startswith("branches.")]
    assert branches.load_state_dict(branch_weights(loaded.weights), strict=True)  # nothing missing or unexpected
    assert others and all(k.startswith("llama_model.base_model.model.model.layers.") and ".lora_" in k
                          for k in others)
    assert set(loaded.not_used) == NOT_USED
    qformer_buffers = ["multi_Qformer.bert.embeddings.position_ids"] if case["config"].multi_fusion_type == "qformer" else []
    assert loaded.ignored == qformer_buffers


def test_branches_compute_what_the_original_computed(case):
    branches, _ = loaded_branches(case)
    faces, audios, expected = case["batch"]["faces"], case["batch"]["audios"], case["outputs"]
    with torch.no_grad():
        got = {
            "fused_face_feat": branches["video"].fusion(faces), "face_llms": branches["video"](faces),
            "fused_audio_feat": branches["audio"].fusion(audios), "audio_llms": branches["audio"](audios),
            "multi_hidden": branches["multi"].fusion(faces, audios), "multi_llms": branches["multi"](faces, audios),
        }
    for name, value in got.items():
        reference = expected[name]
        # The original keeps [B, D] for one repeated token; K = 1 here, so only the shape differs.
        assert value.numel() == reference.numel(), name
        assert (value.reshape(reference.shape) - reference).abs().max() <= 1e-5, name


def test_branches_save_under_the_original_names(case):
    branches, names = loaded_branches(case)
    saved = names.to_original_names({f"branches.{k}": v for k, v in branches.state_dict().items()})
    original = {k: v for k, v in case["weights"].items() if k not in NOT_USED and not k.endswith("position_ids")
                and ".lora_" not in k}
    assert saved.keys() == original.keys()
    assert all(torch.equal(saved[k], original[k]) for k in original)
