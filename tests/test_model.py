"""AffectGPT model tests on a tiny Qwen2-style LLM (random weights, saved and reloaded from disk).

Batches are written by hand following the batch contract in docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import logging

import pytest
from pathlib import Path

import torch

from my_affectgpt.common.config import validate
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.face_or_frame import PROMPT_CONTENTS, parse_face_or_frame
from my_affectgpt.common.tiny_models import (
    build_tiny_bert_config,
    build_tiny_llm,
    build_tiny_open_clip,
)
from my_affectgpt.models.affectgpt import (
    IGNORE_INDEX,
    AffectGPT,
    ModelInputError,
    PromptTooLongError,
    StateDictMismatchError,
)

VISUAL_DIM, ACOUSTIC_DIM, AU_DIM = 768, 1024, 512

BLOCKS = {
    "multi": "Multi: <MultiHere>",
    "audio": "The audio content is as follows: <AudioHere>",
    "frame": "Meanwhile, we uniformly sample raw frames from the video: <FrameHere>",
    "face": "Additionally, the face sequence of the person is: <FaceHere>",
    "au": "The facial action units of the person are described as: <AUHere>",
    "text": "The subtitle of this video is: <Subtitle>I am fine</Subtitle>.",
}
QUESTION = "Please recognize all possible emotional states of the character."
ANSWERS = [
    "The character's emotional state is happy.",
    "The character's emotional state is sad, worried.",
    "The character's emotional state is angry.",
    "The character's emotional state is surprise, excited, happy.",
]


@pytest.fixture(scope="session")
def llm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_llm")
    build_tiny_bert_config(root.parent / f"{root.name}_bert", hidden_size=32, num_heads=4)
    return build_tiny_llm(root)


def model_config(llm_dir, face_or_frame="face", use_au=False, dataset=None, **model_overrides):
    """A validated Config with one dataset block ``ds`` whose features come in the batch."""
    llm_dir = Path(llm_dir)
    bert = llm_dir.parent / f"{llm_dir.name}_bert"
    if not bert.is_dir():
        build_tiny_bert_config(bert, hidden_size=32, num_heads=4)
    model = dict(
        llama_model=str(llm_dir), lora_r=4, lora_alpha=8, qformer_config=str(bert), num_multi_query_token=4,
        skip_encoders=True, video_fusion_type="attention", audio_fusion_type="attention",
        au_fusion_type="attention", multi_fusion_type="qformer", num_au_query_token=1,
    )
    model.update(model_overrides)
    feats = llm_dir.parent / "feats"
    block = dict(face_or_frame=face_or_frame, use_au=use_au, use_preextracted_features=True,
                 preextracted_root=str(feats), mer_factory_output=str(feats))
    block.update(dataset or {})
    return validate({"model": model, "datasets": {"ds": block}, "run": {}})


@pytest.fixture
def tiny_clip(tmp_path):
    """A fresh path per test, so the process-wide AU CLIP cache loads it anew."""
    return build_tiny_open_clip(tmp_path / "tiny_au_clip")


def make_model(llm_dir, face_or_frame="face", use_au=False, dataset=None, seed=0, **model_overrides):
    cfg = model_config(llm_dir, face_or_frame, use_au, dataset, **model_overrides)
    torch.manual_seed(seed)
    return AffectGPT.from_config(cfg)


def make_prompt(face_or_frame, use_au=False, question=QUESTION):
    contents = list(PROMPT_CONTENTS[face_or_frame])
    if use_au:
        contents.insert(len(contents) - ("text" in contents), "au")
    body = " ".join(BLOCKS[c] for c in contents)
    return f"###Human: {body} Now, please answer my question based on all the provided information. {question} ###Assistant: "


def make_batch(face_or_frame="face", size=2, use_au=False, au_rows=(3, 2, 1, 4), seed=1):
    gen = torch.Generator().manual_seed(seed)
    batch = {
        "names": [f"sample_{i}" for i in range(size)],
        "prompt": [make_prompt(face_or_frame, use_au) for _ in range(size)],
        "answer": ANSWERS[:size],
        "max_length": 1024,
    }
    for stream in parse_face_or_frame(face_or_frame).streams:
        width = ACOUSTIC_DIM if stream == "audio" else VISUAL_DIM
        batch[stream] = torch.randn(size, 8, width, generator=gen)
    if use_au:
        rows = au_rows[:size]
        batch["au"] = torch.zeros(size, max(rows), AU_DIM)
        batch["au_mask"] = torch.zeros(size, max(rows), dtype=torch.bool)
        for i, n in enumerate(rows):
            batch["au"][i, :n] = torch.randn(n, AU_DIM, generator=gen)
            batch["au_mask"][i, :n] = True
    return batch


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def assert_all_trainable_get_grads(model, batch):
    model.zero_grad()
    loss = model(batch)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"trainable parameters without a gradient: {no_grad[:5]}"


def capture_llm_inputs(model):
    """Record the keyword inputs of the LLM's forward calls."""
    calls = []
    model.llama_model.register_forward_pre_hook(lambda mod, args, kwargs: calls.append(kwargs), with_kwargs=True)
    return calls


# --------------------------------------------------------------------------- forward / backward
@pytest.mark.parametrize("face_or_frame,branches", [
    ("multiface_audio_face_text", {"multi", "audio", "video"}),
    ("multiframe_audio_frame_text", {"multi", "audio", "video"}),
    ("face_text", {"video"}),
    ("audioonly", {"audio"}),
    ("textonly", set()),
    ("faceframe", {"audio", "video"}),
])
def test_forward_backward_per_prompt_family(llm_dir, face_or_frame, branches):
    model = make_model(llm_dir, face_or_frame)
    assert set(model.branches) == branches
    assert_all_trainable_get_grads(model, make_batch(face_or_frame))


@pytest.mark.parametrize("fusion", ["attention", "mean", "qformer"])
def test_forward_backward_per_fusion_type(llm_dir, fusion):
    tokens = 1 if fusion == "mean" else 2
    model = make_model(
        llm_dir, "face", use_au=True,
        video_fusion_type=fusion, audio_fusion_type=fusion, au_fusion_type=fusion,
        num_video_query_token=tokens, num_audio_query_token=tokens, num_au_query_token=tokens,
    )
    assert set(model.branches) == {"video", "audio", "au"}
    assert_all_trainable_get_grads(model, make_batch("face", use_au=True))


@pytest.mark.parametrize("multi", ["qformer", "attention"])
def test_forward_backward_per_multi_fusion(llm_dir, multi):
    model = make_model(llm_dir, "multiface_text", multi_fusion_type=multi, num_multi_query_token=3)
    assert set(model.branches) == {"multi"}
    assert_all_trainable_get_grads(model, make_batch("multiface_text"))


def test_only_used_modules_are_built(llm_dir):
    model = make_model(llm_dir, "face_text")
    assert set(model.branches) == {"video"}
    assert model.visual_encoder is None and model.acoustic_encoder is None
    for name in trainable_names(model):
        assert name.startswith("branches.video.") or "lora_" in name, name
    base = [n for n, p in model.llama_model.named_parameters() if "lora_" not in n]
    assert base and not any(p.requires_grad for n, p in model.llama_model.named_parameters() if n in base)


def test_au_agent_mode_builds_no_au_branch_and_fills_the_marker(llm_dir):
    model = make_model(llm_dir, "textonly", use_au=True, use_au_agent=True, au_agent_base_model=str(llm_dir))
    assert set(model.branches) == set()
    batch = make_batch("textonly")
    batch["prompt"] = [p.replace("Now,", "The face: <AUAgentText>. Now,") for p in batch["prompt"]]
    with pytest.raises(ModelInputError, match="au_agent_texts"):
        model(batch)
    batch["au_agent_texts"] = ["the person raises the eyebrows", "the person opens the mouth"]
    calls = capture_llm_inputs(model)
    assert torch.isfinite(model(batch)["loss"])
    longer = calls[0]["attention_mask"].sum(dim=1)
    batch["au_agent_texts"] = ["", ""]
    model(batch)
    assert (calls[1]["attention_mask"].sum(dim=1) < longer).all()


def test_gradient_checkpointing_keeps_lora_and_fusion_gradients(llm_dir):
    model = make_model(llm_dir, "face", gradient_checkpointing=True).train()
    assert model.llama_model.is_activation_checkpointing
    assert_all_trainable_get_grads(model, make_batch("face"))


def test_frozen_flags_freeze_and_keep_eval_mode(llm_dir):
    model = make_model(llm_dir, "face", use_au=True, frozen_au_Qformer=True, frozen_video_proj=True,
                       au_fusion_type="qformer")
    au, video = model.branches["au"], model.branches["video"]
    assert not any(p.requires_grad for p in au.fusion.parameters())
    assert all(p.requires_grad for p in au.proj.parameters())
    assert not any(p.requires_grad for p in video.proj.parameters())
    assert all(p.requires_grad for p in video.fusion.parameters())
    model.train()
    assert not au.fusion.training and au.proj.training and not video.proj.training
    names = set(model.trainable_state_dict())
    assert not any(n.startswith(("branches.au.fusion.", "branches.video.proj.")) for n in names)
    before = {n: p.clone() for n, p in au.fusion.named_parameters()}
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(make_batch("face", use_au=True))["loss"].backward()
    optim.step()
    assert all(torch.equal(before[n], p) for n, p in au.fusion.named_parameters())


# --------------------------------------------------------------------------- input validation
def test_placeholder_count_mismatch_names_sample_and_modality(llm_dir):
    model = make_model(llm_dir, "face")
    batch = make_batch("face")
    batch["prompt"][1] = batch["prompt"][1].replace("<FaceHere>", "<FaceHere> <FaceHere>")
    with pytest.raises(ModelInputError, match=r"sample 'sample_1'.*2 <FaceHere>.*face embeddings have 1 rows"):
        model(batch)
    batch = make_batch("face")
    batch["prompt"][0] = batch["prompt"][0].replace("<FaceHere>", "")
    with pytest.raises(ModelInputError, match=r"sample 'sample_0'.*0 <FaceHere>"):
        model(batch)


def test_placeholder_without_branch_or_features_is_an_error(llm_dir):
    model = make_model(llm_dir, "face_text")
    batch = make_batch("face_text")
    batch["prompt"] = [p.replace("<FaceHere>", "<FaceHere> <AudioHere>") for p in batch["prompt"]]
    with pytest.raises(ModelInputError, match="no audio branch"):
        model(batch)
    batch = make_batch("face_text")
    del batch["face"]
    with pytest.raises(ModelInputError, match="neither 'face' nor 'face_pixels'"):
        model(batch)


def test_feature_width_mismatch_says_which_encoder(llm_dir):
    model = make_model(llm_dir, "face_text", use_au=True)
    batch = make_batch("face_text", use_au=True)
    batch["au"] = torch.randn(2, 3, 768)
    with pytest.raises(ModelInputError) as err:
        model(batch)
    msg = str(err.value)
    for part in ("AU features are 768 wide", "model.preextracted_au_dim is 512",
                 "CLIP ViT-B/32 text features are 512", "768 is CLIP ViT-L/14"):
        assert part in msg, msg
    batch = make_batch("face_text", use_au=True)
    batch["face"] = torch.randn(2, 8, 1024)
    with pytest.raises(ModelInputError, match=r"face features are 1024 wide but model.preextracted_visual_dim is 768"):
        model(batch)


def test_prompt_longer_than_max_length_names_the_sample(llm_dir):
    model = make_model(llm_dir, "face")
    batch = make_batch("face")
    batch["max_length"] = [1024, 20]
    with pytest.raises(PromptTooLongError, match="sample 'sample_1'") as err:
        model(batch)
    assert err.value.name == "sample_1"


# --------------------------------------------------------------------------- tokenisation and masking
def test_labels_mask_exactly_the_prompt_golden(llm_dir):
    model = make_model(llm_dir, "face", num_video_query_token=3)
    tok = model.tokenizer
    batch = make_batch("face")
    calls = capture_llm_inputs(model)
    model(batch)
    labels, mask = calls[0]["labels"], calls[0]["attention_mask"]
    eos = tok.eos_token_id
    bos = model._train_bos  # the tiny tokenizer's own bos, if it has one (Qwen: <|im_start|>)
    rows = []
    for prompt, answer in zip(batch["prompt"], batch["answer"]):
        expanded = prompt.replace("<FaceHere>", "<FaceHere>" * 3)
        prompt_len = len(bos) + len(tok(expanded, add_special_tokens=False).input_ids)
        # the original tokenizes answer and "###" together, then appends eos
        target = tok(answer + "###", add_special_tokens=False).input_ids + [eos]
        rows.append([IGNORE_INDEX] * prompt_len + target)
    width = max(len(r) for r in rows)
    expected = torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in rows])
    assert torch.equal(labels.cpu(), expected)
    # the closing eos is hidden from attention as well: the original's pad token is its eos
    expected_mask = [[1] * (len(r) - 1) + [0] * (width - len(r) + 1) for r in rows]
    assert torch.equal(mask.cpu().long(), torch.tensor(expected_mask))
    assert tok.decode(expected[0][expected[0] != IGNORE_INDEX]) == batch["answer"][0] + "###" + tok.eos_token


def test_modality_embeddings_replace_placeholder_rows(llm_dir):
    model = make_model(llm_dir, "face", num_video_query_token=2).eval()
    batch = make_batch("face")
    calls = capture_llm_inputs(model)
    with torch.no_grad():
        model(batch)
        face_embeds = model.branches["video"](batch["face"])
    ids = torch.tensor(model._tokenize(batch, with_answers=True)[0][0])
    rows = calls[0]["inputs_embeds"][0, : len(ids)][ids == model.placeholder_ids["face"]]
    assert torch.allclose(rows, face_embeds[0])


def test_over_long_answer_is_truncated_on_the_answer_side(llm_dir):
    model = make_model(llm_dir, "face")
    batch = make_batch("face", size=1)
    calls = capture_llm_inputs(model)
    model(batch)
    full = calls[0]["labels"][0]
    prompt_len = int((full == IGNORE_INDEX).sum())  # the bos token included
    batch["max_length"] = prompt_len - len(model._train_bos) + 3  # as in the original, bos and eos come on top
    model(batch)
    cut = calls[1]["labels"][0]
    assert cut.shape[0] == prompt_len + 3 + 1
    assert torch.equal(cut[:-1], full[: prompt_len + 3]) and cut[-1] == model.tokenizer.eos_token_id


# --------------------------------------------------------------------------- AU channel
@pytest.mark.parametrize("fusion", ["attention", "mean", "qformer"])
def test_variable_au_rows_with_mask(llm_dir, fusion):
    model = make_model(llm_dir, "face_text", use_au=True, au_fusion_type=fusion)
    batch = make_batch("face_text", size=3, use_au=True, au_rows=(3, 1, 5))
    assert_all_trainable_get_grads(model, batch)
    model.eval()
    with torch.no_grad():
        padded = model.branches["au"](batch["au"], mask=batch["au_mask"])
        for i, n in enumerate((3, 1, 5)):
            alone = model.branches["au"](batch["au"][i:i + 1, :n])
            assert torch.allclose(padded[i], alone[0], atol=1e-5)


@pytest.mark.parametrize("fusion", ["attention", "mean", "qformer"])
def test_empty_au_channel_gives_a_finite_loss(llm_dir, fusion):
    model = make_model(llm_dir, "face_text", use_au=True, au_fusion_type=fusion)
    batch = make_batch("face_text", size=2, use_au=True, au_rows=(2, 2))
    batch["au_mask"][1] = False  # one sample without AU rows
    assert torch.isfinite(model(batch)["loss"])
    batch["au"], batch["au_mask"] = torch.zeros(2, 0, AU_DIM), torch.zeros(2, 0, dtype=torch.bool)
    assert torch.isfinite(model(batch)["loss"])  # no sample has AU rows


def test_realtime_au_texts_equal_preencoded_features(llm_dir, tiny_clip, caplog):
    config_json, weights = tiny_clip
    clip = dict(au_clip_model=str(config_json), au_clip_pretrained=str(weights))
    with caplog.at_level(logging.INFO, logger="my_affectgpt"):
        model = make_model(llm_dir, "face_text", use_au=True, dataset={"use_au_clip_realtime": True}, **clip)
        make_model(llm_dir, "face_text", use_au=True, dataset={"use_au_clip_realtime": True}, **clip)
    assert sum("loaded AU CLIP text encoder" in r.getMessage() for r in caplog.records) == 1
    model.eval()
    texts = [["Inner brow raiser (intensity: 1.25)", "the person smiles", "lips part"],
             ["the person smiles"],
             []]
    batch = make_batch("face_text", size=3)
    batch["au_texts"] = texts
    batch["prompt"] = [make_prompt("face_text", use_au=True)] * 3
    calls = capture_llm_inputs(model)
    with torch.no_grad():
        realtime = model(batch)["loss"]
        encoder = model._au_encoder()
        feats = torch.zeros(3, 3, AU_DIM)
        mask = torch.zeros(3, 3, dtype=torch.bool)
        for i, sample in enumerate(texts):
            if sample:
                feats[i, : len(sample)] = encoder.encode(sample)
                mask[i, : len(sample)] = True
        del batch["au_texts"]
        batch["au"], batch["au_mask"] = feats, mask
        preencoded = model(batch)["loss"]
    assert torch.equal(calls[0]["inputs_embeds"], calls[1]["inputs_embeds"])
    assert torch.equal(realtime, preencoded)
    assert feats[0, 1].norm().item() == pytest.approx(1.0, abs=1e-5)  # L2-normalised like the .npy files


def test_au_texts_and_au_together_are_rejected(llm_dir):
    model = make_model(llm_dir, "face_text", use_au=True)
    batch = make_batch("face_text", use_au=True)
    batch["au_texts"] = [["a"], ["b"]]
    with pytest.raises(ModelInputError, match="both 'au' and 'au_texts'"):
        model(batch)


# --------------------------------------------------------------------------- raw media through encoders
def raw_media_model(llm_dir, tiny_encoders, **model_overrides):
    clip_dir, hubert_dir = tiny_encoders
    return make_model(
        llm_dir, "multiframe_audio_frame_text", dataset={"use_preextracted_features": False},
        skip_encoders=False, visual_encoder_path=str(clip_dir), acoustic_encoder_path=str(hubert_dir),
        preextracted_visual_dim=16, preextracted_acoustic_dim=32, **model_overrides,
    )


def raw_media_batch():
    gen = torch.Generator().manual_seed(0)
    return {
        "names": ["a", "b"], "prompt": [make_prompt("multiframe_audio_frame_text")] * 2, "answer": ANSWERS[:2],
        "frame_pixels": torch.randn(2, 2, 3, 224, 224, generator=gen),
        "audio_wave": torch.randn(2, 2, 32000, generator=gen),
    }


def test_raw_media_through_frozen_encoders(llm_dir, tiny_encoders):
    model = raw_media_model(llm_dir, tiny_encoders)
    assert model.visual_encoder is not None and model.acoustic_encoder is not None
    assert not any(n.startswith(("visual_encoder.", "acoustic_encoder.")) for n in model.trainable_state_dict())
    raw = raw_media_batch()
    model.train()
    assert not model.visual_encoder.training
    assert_all_trainable_get_grads(model, raw)
    model.eval()
    with torch.no_grad():
        from_raw = model(raw)["loss"]
        feats = dict(raw)
        feats["frame"] = model.visual_encoder(raw["frame_pixels"]).view(2, 2, -1)
        feats["audio"] = model.acoustic_encoder(raw["audio_wave"].flatten(0, 1)).view(2, 2, -1)
        del feats["frame_pixels"], feats["audio_wave"]
        assert torch.allclose(from_raw, model(feats)["loss"])


@pytest.mark.parametrize("llm_dtype", ["fp16", "bf16"])
def test_half_precision_encoders_train_under_bf16_autocast_as_without_it(llm_dir, tiny_encoders, llm_dtype):
    """The encoders sit in the LLM's dtype and compute in it whatever autocast the caller
    runs (an fp16 encoder under bf16 autocast would fail mixing the two in torch.cat)."""
    model = raw_media_model(llm_dir, tiny_encoders, llm_dtype=llm_dtype)
    encoders = (model.visual_encoder, model.acoustic_encoder)
    assert {p.dtype for encoder in encoders for p in encoder.parameters()} == {model.dtype}
    raw = raw_media_batch()
    inputs = (raw["frame_pixels"], raw["audio_wave"].flatten(0, 1))
    plain = [encoder(x) for encoder, x in zip(encoders, inputs)]
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_all_trainable_get_grads(model, raw)
        under_autocast = [encoder(x) for encoder, x in zip(encoders, inputs)]
    assert all(f.dtype == torch.float32 for f in plain)
    assert all(torch.equal(a, b) for a, b in zip(plain, under_autocast))


def test_raw_media_without_encoders_is_an_error(llm_dir):
    model = make_model(llm_dir, "face_text")
    batch = make_batch("face_text")
    batch["face_pixels"] = torch.zeros(2, 2, 3, 224, 224)
    del batch["face"]
    with pytest.raises(ModelInputError, match="skip_encoders"):
        model(batch)


# --------------------------------------------------------------------------- generation
def train_briefly(model, batch, steps):
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        optim.zero_grad()
        model(batch)["loss"].backward()
        optim.step()
    model.eval()


def test_batched_generate_equals_single(llm_dir):
    model = make_model(llm_dir, "face", lora_dropout=0.0)
    batch = make_batch("face", size=4)
    # short prompts of four lengths, so left padding differs per row
    batch["prompt"] = [f"###Human: <AudioHere> <FaceHere> {'really ' * i}###Assistant: " for i in range(4)]
    train_briefly(model, batch, steps=30)
    batched = model.generate(batch, max_new_tokens=20)
    singles = []
    for i in range(4):
        one = {k: (v[i:i + 1] if isinstance(v, (list, torch.Tensor)) else v) for k, v in batch.items()}
        singles += model.generate(one, max_new_tokens=20)
    assert batched == singles
    assert len(set(batched)) > 1 and all(batched)
    assert not any("###" in text for text in batched)


def test_generate_restores_training_mode(llm_dir):
    model = make_model(llm_dir, "face").train()
    model.generate(make_batch("face"), max_new_tokens=2)
    assert model.training


# --------------------------------------------------------------------------- weights
def test_trainable_state_dict_round_trip(llm_dir):
    source = make_model(llm_dir, "face", use_au=True)
    batch = make_batch("face", use_au=True)
    train_briefly(source, batch, steps=3)
    sd = source.trainable_state_dict()
    # saved under the original AffectGPT's names (affectgpt_proj, video_attention_mlp, ...)
    assert set(source.original_names.to_original_names(dict.fromkeys(trainable_names(source)))) == set(sd)
    assert "affectgpt_proj.weight" in sd and "au_attention_mlp.weight" in sd
    target = make_model(llm_dir, "face", use_au=True, seed=123).eval()
    with torch.no_grad():
        assert not torch.equal(source(batch)["loss"], target(batch)["loss"])
        missing, unexpected = target.load_trainable_state_dict(sd)
        assert missing == [] and unexpected == []
        assert torch.equal(source(batch)["loss"], target(batch)["loss"])

    broken = dict(sd)
    broken.pop(next(iter(broken)))
    broken["branches.nope.weight"] = torch.zeros(1)
    with pytest.raises(StateDictMismatchError, match=r"missing 1 key.*unexpected 1 key.*branches.nope.weight"):
        target.load_trainable_state_dict(broken)
    missing, unexpected = target.load_trainable_state_dict(broken, strict=False)
    assert len(missing) == 1 and unexpected == ["branches.nope.weight"]


def test_frozen_branch_weights_load_from_an_earlier_checkpoint(llm_dir):
    stage1 = make_model(llm_dir, "face")
    stage2 = make_model(llm_dir, "face", frozen_video_Qformer=True)
    sd = {n: p + 1.0 for n, p in stage1.trainable_state_dict().items()}
    stage2.load_trainable_state_dict(sd)
    assert torch.equal(stage2.branches["video"].fusion.scores.weight, sd["video_attention_mlp.weight"])


def test_export_round_trip_gives_identical_outputs(llm_dir, tmp_path):
    model = make_model(llm_dir, "multiface_audio_face_text", use_au=True, lora_dropout=0.0)
    batch = make_batch("multiface_audio_face_text", use_au=True)
    train_briefly(model, batch, steps=5)
    out = model.export(tmp_path / "export", "model:\n  arch: affectgpt\n")
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "fusion.safetensors").is_file()
    assert (out / "config.yaml").read_text() == "model:\n  arch: affectgpt\n"
    model.export(tmp_path / "export", "model:\n  arch: affectgpt\n")  # replacing an export works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]

    fresh = make_model(llm_dir, "multiface_audio_face_text", use_au=True, lora_dropout=0.0).eval()
    with torch.no_grad():
        assert not torch.equal(fresh(batch)["loss"], model(batch)["loss"])
        fresh.load_export(out)
        assert torch.equal(fresh(batch)["loss"], model(batch)["loss"])
    assert fresh.generate(batch, max_new_tokens=8) == model.generate(batch, max_new_tokens=8)

    other = make_model(llm_dir, "face", use_au=True)
    with pytest.raises(StateDictMismatchError, match="does not fit"):
        other.load_export(out)
    (tmp_path / "not_export").mkdir()
    with pytest.raises(FileExistsError):
        model.export(tmp_path / "not_export", "")


# --------------------------------------------------------------------------- LLM loading
def test_small_vocabulary_is_resized_deterministically(tmp_path, llm_dir):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(llm_dir))
    config = AutoConfig.from_pretrained(str(llm_dir))
    config.vocab_size = len(tok)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(tmp_path / "llm"))
    tok.save_pretrained(str(tmp_path / "llm"))
    a = make_model(tmp_path / "llm", "face")
    b = make_model(tmp_path / "llm", "face")
    emb_a = a.llama_model.get_input_embeddings().weight
    assert emb_a.shape[0] >= len(tok) + 5  # room for the five placeholders
    assert torch.equal(emb_a, b.llama_model.get_input_embeddings().weight)
    assert torch.isfinite(a(make_batch("face"))["loss"])


def test_lora_targets_missing_from_the_llm_are_reported(llm_dir):
    with pytest.raises(UserError, match="none of model.lora_target_modules"):
        make_model(llm_dir, "face", lora_target_modules=["query_key_value"])
    model = make_model(llm_dir, "face", lora_target_modules=["q_proj", "query_key_value"])
    assert set(model.llama_model.peft_config["default"].target_modules) == {"q_proj"}


def test_builds_from_a_validated_config(llm_dir, tmp_path):
    cfg = model_config(llm_dir, "multiface_text")
    model = AffectGPT.from_config(cfg)
    assert set(model.branches) == {"multi"}
    assert model.cfg.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_without_lora_only_fusion_trains_and_exports(llm_dir, tmp_path):
    model = make_model(llm_dir, "face", use_lora=False)
    assert all(n.startswith("branches.") for n in trainable_names(model))
    assert_all_trainable_get_grads(model, make_batch("face"))
    out = model.export(tmp_path / "export", "")
    assert not (out / "adapter").exists()
    make_model(llm_dir, "face", use_lora=False).load_export(out)
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        make_model(llm_dir, "face").load_export(out)


def test_bf16_llm_keeps_fusion_in_fp32(llm_dir, tiny_clip):
    config_json, weights = tiny_clip
    model = make_model(llm_dir, "multiface_audio_face_text", use_au=True, llm_dtype="bf16",
                       au_clip_model=str(config_json), au_clip_pretrained=str(weights))
    assert model.dtype == torch.bfloat16 and model.branches["au"].proj.weight.dtype == torch.float32
    batch = make_batch("multiface_audio_face_text", use_au=True)
    assert_all_trainable_get_grads(model, batch)
    del batch["au"], batch["au_mask"]
    batch["au_texts"] = [["the person smiles"], ["lips part", "blink"]]
    assert torch.isfinite(model(batch)["loss"])
    assert len(model.generate(batch, max_new_tokens=2)) == 2


def test_registered_and_properties(llm_dir):
    from my_affectgpt.common.registry import registry

    import my_affectgpt.models  # noqa: F401

    assert registry.get_model_class("affectgpt") is AffectGPT
    model = make_model(llm_dir, "textonly")
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
