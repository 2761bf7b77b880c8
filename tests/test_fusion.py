"""Fusion branches on random tensors: the original AffectGPT's arithmetic, masks, shapes, names."""
from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.models.fusion import (
    FUSION_TYPES,
    MULTI_FUSION_TYPES,
    build_branch,
    build_multi_branch,
)
from my_affectgpt.models.original_names import OriginalNames
from my_affectgpt.models.qformer import QFormerConfigError, load_qformer_bert_config

DIMS = {"video": 12, "audio": 16, "au": 8}
LLM_WIDTH = 10
TINY_BERT = {"model_type": "bert", "hidden_size": 16, "num_attention_heads": 4, "intermediate_size": 24,
             "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
             "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


@pytest.fixture
def bert(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_BERT))
    return load_qformer_bert_config(tmp_path)


def branch(bert, kind, fusion_type, tokens=1, **kw):
    torch.manual_seed(0)
    return build_branch(kind, fusion_type, DIMS[kind], tokens, LLM_WIDTH, bert, **kw).eval()


def multi(bert, fusion_type, tokens=1, **kw):
    torch.manual_seed(0)
    return build_multi_branch(fusion_type, DIMS["video"], DIMS["audio"], tokens, LLM_WIDTH, bert, **kw).eval()


def feats(kind, batch=3, steps=5, seed=1):
    return torch.randn(batch, steps, DIMS[kind], generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- arithmetic
@pytest.mark.parametrize("kind", ["audio", "au"])
def test_attention_is_an_unnormalised_score_weighted_sum(bert, kind):
    b = branch(bert, kind, "attention", tokens=2)
    x = feats(kind)
    scores = x @ b.fusion.scores.weight.T + b.fusion.scores.bias  # [B, T, 1], not softmaxed
    fused = (x * scores).sum(dim=1)
    with torch.no_grad():
        out = b(x)
    assert out.shape == (3, 2, LLM_WIDTH)
    assert torch.allclose(b.fusion(x)[:, 0], fused, atol=1e-5)
    assert torch.allclose(out[:, 0], b.proj(fused), atol=1e-5)
    assert torch.equal(out[:, 0], out[:, 1])  # one vector, repeated for the query tokens


def test_video_attention_passes_a_single_step_through_unscored(bert):
    video, audio = branch(bert, "video", "attention"), branch(bert, "audio", "attention")
    x, a = feats("video", steps=1), feats("audio", steps=1)
    assert torch.equal(video.fusion(x), x)
    assert not torch.allclose(audio.fusion(a), a)  # the audio branch scores its one clip


def test_mean_repeats_the_time_mean(bert):
    b = branch(bert, "audio", "mean", tokens=3)
    x = feats("audio")
    with torch.no_grad():
        out = b(x)
    assert out.shape == (3, 3, LLM_WIDTH)
    assert torch.allclose(out, b.proj(x.mean(dim=1)).unsqueeze(1).expand(-1, 3, -1), atol=1e-6)


def test_multi_attention_weights_the_two_stream_means_without_softmax(bert):
    b = multi(bert, "attention", tokens=2)
    v, a = feats("video"), feats("audio", steps=4)
    f = b.fusion
    vm, am = f.video_embs(v.mean(1)), f.audio_embs(a.mean(1))
    w = f.fc_att(f.attention_mlp(torch.cat([vm, am], 1)))  # [B, 2]
    expected = w[:, :1] * vm + w[:, 1:] * am
    with torch.no_grad():
        out = b(v, a)
        assert torch.allclose(f(v, a)[:, 0], expected, atol=1e-5)
    assert f.out_dim == max(DIMS["video"], DIMS["audio"])
    assert out.shape == (3, 2, LLM_WIDTH) and torch.equal(out[:, 0], out[:, 1])


@pytest.mark.parametrize("fusion_type", MULTI_FUSION_TYPES)
def test_multi_shapes_and_every_parameter_gets_a_gradient(bert, fusion_type):
    b = multi(bert, fusion_type, tokens=3).train()
    out = b(feats("video"), feats("audio", steps=4))
    assert out.shape == (3, 3, LLM_WIDTH)
    out.square().sum().backward()
    assert [n for n, p in b.named_parameters() if p.grad is None or not p.grad.abs().sum()] == []


@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
@pytest.mark.parametrize("kind", ["video", "audio", "au"])
def test_shapes_and_every_parameter_gets_a_gradient(bert, kind, fusion_type):
    b = branch(bert, kind, fusion_type, tokens=3).train()
    out = b(feats(kind))
    assert out.shape == (3, 3, LLM_WIDTH)
    out.square().sum().backward()
    assert [n for n, p in b.named_parameters() if p.grad is None or not p.grad.abs().sum()] == []


def test_qformer_has_no_text_feed_forward_and_sizes_from_the_bert_config(bert):
    b = branch(bert, "video", "qformer", tokens=4)
    names = [n for n, _ in b.named_parameters()]
    assert any(re.search(r"layer\.1\.intermediate_query\.", n) for n in names)
    assert not [n for n in names if re.search(r"layer\.\d+\.(intermediate|output)\.", n)]
    qformer = b.fusion.reader.qformer
    assert qformer.config.num_hidden_layers == 2 and qformer.config.cross_attention_frequency == 1
    assert qformer.encoder.layer[0].crossattention.attention.key.in_features == DIMS["video"]
    assert b.fusion.reader.query_tokens.shape == (1, 4, TINY_BERT["hidden_size"])
    assert b.fusion.position_embedding.num_embeddings == 32
    assert branch(bert, "audio", "qformer").fusion.position_embedding.num_embeddings == 8


def test_qformer_names_the_limit_of_its_positions(bert):
    b = branch(bert, "audio", "qformer")
    with pytest.raises(ValueError, match="audio Q-Former has 8 learned positions.*got 9"):
        b(feats("audio", steps=9))
    m = multi(bert, "qformer")
    with pytest.raises(ValueError, match="264 learned positions.*got 270"):
        m(feats("video", steps=200), feats("audio", steps=70))


# --------------------------------------------------------------------------- masks
@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
def test_all_true_mask_gives_exactly_the_unmasked_result(bert, fusion_type):
    b = branch(bert, "au", fusion_type, tokens=2)
    x = feats("au")
    with torch.no_grad():
        assert torch.equal(b(x, mask=torch.ones(3, 5, dtype=torch.bool)), b(x))


@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
def test_padded_rows_have_no_influence(bert, fusion_type):
    b = branch(bert, "au", fusion_type, tokens=2)
    x = feats("au", steps=6)
    rows = (3, 1, 6)
    mask = torch.arange(6)[None] < torch.tensor(rows)[:, None]
    garbage = x.masked_fill(~mask.unsqueeze(-1), 1e4)
    with torch.no_grad():
        padded = b(garbage, mask=mask)
        for i, n in enumerate(rows):
            assert torch.allclose(padded[i], b(x[i:i + 1, :n])[0], atol=1e-5)


@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
def test_samples_without_rows_get_finite_results(bert, fusion_type):
    b = branch(bert, "au", fusion_type, tokens=2)
    x = feats("au", batch=2)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1] = False
    with torch.no_grad():
        out = b(x, mask=mask)
        assert torch.isfinite(out).all()
        assert torch.equal(out[1], b(x.flip(1) * 3, mask=mask)[1])  # the padding's content does not matter
        none = b(torch.zeros(2, 0, DIMS["au"]), mask=torch.zeros(2, 0, dtype=torch.bool))
        assert none.shape == (2, 2, LLM_WIDTH) and torch.isfinite(none).all()


# --------------------------------------------------------------------------- freezing
def test_frozen_qformer_flag_freezes_what_the_original_freezes(bert):
    attention = branch(bert, "video", "attention", freeze_qformer=True)
    assert all(p.requires_grad for p in attention.parameters())  # attention scores are no Q-Former
    qformer = branch(bert, "video", "qformer", freeze_qformer=True, freeze_proj=True).train()
    assert not any(p.requires_grad for p in qformer.parameters()) and not qformer.fusion.training
    m = multi(bert, "qformer", freeze_qformer=True).train()
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {f"{part}.{w}" for part in ("fusion.video_embs", "fusion.audio_embs", "proj")
                         for w in ("weight", "bias")}
    assert not m.fusion.reader.training and m.fusion.training


# --------------------------------------------------------------------------- BERT config loader
def test_bert_config_loader(tmp_path):
    base = load_qformer_bert_config("")
    assert (base.hidden_size, base.num_attention_heads, base.intermediate_size) == (768, 12, 3072)
    assert (base.hidden_act, base.layer_norm_eps, base.initializer_range) == ("gelu", 1e-12, 0.02)
    file = tmp_path / "bert.json"
    file.write_text(json.dumps(TINY_BERT))
    assert load_qformer_bert_config(file).hidden_size == 16
    with pytest.raises(UserFileNotFoundError, match=f"model.qformer_config: {tmp_path / 'nope'}/config.json|"
                       f"model.qformer_config: {tmp_path / 'nope'} does not exist"):
        load_qformer_bert_config(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8}))
    with pytest.raises(QFormerConfigError, match=f"{tmp_path / 'config.json'} is not a BERT config"):
        load_qformer_bert_config(tmp_path)
    file.write_text("{not json")
    with pytest.raises(UserError, match="bert.json is not a JSON file"):
        load_qformer_bert_config(file)
    file.write_text(json.dumps({**TINY_BERT, "num_attention_heads": 5}))
    with pytest.raises(QFormerConfigError, match="not divisible"):
        load_qformer_bert_config(file)


# --------------------------------------------------------------------------- original names
def test_original_names_both_ways(bert):
    branches = nn.ModuleDict({
        "video": branch(bert, "video", "qformer"), "audio": branch(bert, "audio", "attention"),
        "au": branch(bert, "au", "mean"), "multi": multi(bert, "qformer"),
    })
    names = OriginalNames(branches)
    ours = {f"branches.{k}": v for k, v in branches.state_dict().items()}
    lora = "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    theirs = names.to_original_names({**ours, lora: torch.zeros(1)})
    for name in ("affectgpt_proj.weight", "video_frame_position_embedding.weight", "video_query_tokens",
                 "video_Qformer.bert.embeddings.LayerNorm.weight",
                 "video_Qformer.bert.encoder.layer.1.attention.self.query.weight",
                 "video_Qformer.bert.encoder.layer.0.crossattention.self.key.weight",
                 "video_Qformer.bert.encoder.layer.0.crossattention.output.LayerNorm.bias",
                 "video_Qformer.bert.encoder.layer.1.output_query.dense.weight",
                 "audio_attention_mlp.weight", "audio_llama_proj.bias", "au_llama_proj.weight",
                 "multi_video_embs.weight", "multi_audio_embs.bias", "multi_position_embedding.weight",
                 "multi_query_tokens", "multi_Qformer.bert.encoder.layer.0.intermediate_query.dense.weight",
                 "multi_llama_proj.weight", lora):
        assert name in theirs, name
    assert len(theirs) == len(ours) + 1
    extra = {"image_llama_proj.weight": torch.zeros(1), "au_attention_mlp.bias": torch.zeros(1),
             "video_Qformer.bert.embeddings.position_ids": torch.arange(3),
             "multi_Qformer.bert.embeddings.position_ids": torch.arange(3), "something.else": torch.zeros(1)}
    back = names.from_original_names({**theirs, **extra})
    assert set(back.weights) == set(ours) | {lora, "something.else"}
    assert all(back.weights[k] is v for k, v in ours.items())
    assert sorted(back.not_used) == ["au_attention_mlp.bias", "image_llama_proj.weight"]
    assert len(back.ignored) == 2


def test_this_projects_fusion_types_keep_their_names(bert):
    branches = nn.ModuleDict({"video": branch(bert, "video", "softmax_attention"),
                              "multi": multi(bert, "cross_attention")})
    ours = {f"branches.{k}": v for k, v in branches.state_dict().items()}
    names = OriginalNames(branches)
    assert names.to_original_names(ours).keys() == ours.keys()
    assert names.from_original_names(ours).weights.keys() == ours.keys()
