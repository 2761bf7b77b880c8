"""The AU Agent: prompt format, batched greedy generation, the (video, frame) cache."""

from pathlib import Path

import pytest
from helpers_au_agent import build_tiny_agent_llm

from my_affectgpt.conversation.au_agent_prompts import (
    SYSTEM_PROMPT,
    AUAgentInputError,
    build_prompt,
    build_user_message,
    clean_reply,
    format_transcript,
)
from my_affectgpt.models.au_agent import AUAgent


def _frame(number: int, **aus) -> dict:
    active = aus or {"AU06_r": 1.0 + number / 10, "AU12_r": 2.0 - number / 20}
    return {"frame": number, "active_aus": active, "au_description": f"description of frame {number}"}


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory) -> Path:
    return build_tiny_agent_llm(tmp_path_factory.mktemp("tiny_au_agent"))


@pytest.fixture
def agent(agent_dir) -> AUAgent:
    return AUAgent(str(agent_dir), device="cpu", max_new_tokens=6, batch_size=2)


def _count_generate_calls(agent: AUAgent, monkeypatch) -> list:
    """Spy on the LLM's generate (the real one still runs); returns the list of batch sizes."""
    calls = []
    real = agent.llm.generate

    def spy(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(agent.llm, "generate", spy)
    return calls


# --------------------------------------------------------------------------- prompt format


def test_user_message_lists_codes_names_and_intensities_in_au_order():
    message = build_user_message({"active_aus": {"AU12_r": 1.14, "au6": 2.3}, "au_description": "Cheek raiser (intensity: 2.30)"})
    lines = message.splitlines()
    assert lines[1] == "- AU06 (Cheek raiser): intensity 2.30"
    assert lines[2] == "- AU12 (Lip corner puller): intensity 1.14"
    assert "AU description: Cheek raiser (intensity: 2.30)" in lines


def test_user_message_without_active_aus_says_so():
    assert "no action unit above the detection threshold" in build_user_message({"active_aus": {}})


@pytest.mark.parametrize("active, match", [
    ({"smile": 1.0}, "'smile' is not an action unit"),
    ({"AU06_r": "high"}, "is not a number"),
    ({"AU06_r": float("nan")}, "not a finite number"),
    ([1, 2], "must be an object"),
])
def test_user_message_rejects_bad_active_aus(active, match):
    with pytest.raises(AUAgentInputError, match=match):
        build_user_message({"active_aus": active})


def test_plain_prompt_without_chat_template(agent):
    assert not agent.tokenizer.chat_template
    prompt = build_prompt(agent.tokenizer, "USER")
    assert prompt == f"###Human: {SYSTEM_PROMPT}\nUSER ###Assistant: "


def test_chat_template_is_used_when_the_tokenizer_has_one(agent):
    agent.tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    assert build_prompt(agent.tokenizer, "USER") == f"<|system|>{SYSTEM_PROMPT}\n<|user|>USER\n<|assistant|>"


@pytest.mark.parametrize("raw, clean", [
    ("  The brows lower.  ###Human: more", "The brows lower."),
    ("The lips part.<|im_end|>\nuser\nagain", "The lips part."),
    ("system\nS\nuser\nU\nassistant\nThe jaw\n drops.", "The jaw drops."),
    ("", ""),
])
def test_clean_reply_keeps_the_assistant_text_only(raw, clean):
    assert clean_reply(raw) == clean


def test_transcript_round_trips_through_the_json_reader():
    from my_affectgpt.processors.au_json import assistant_text

    transcript = format_transcript(build_user_message(_frame(3)), "The cheeks rise.")
    assert transcript.startswith(f"system\n{SYSTEM_PROMPT}\nuser\n")
    assert assistant_text(transcript) == "The cheeks rise."


# --------------------------------------------------------------------------- generation


def test_describe_batch_returns_one_text_per_sample_in_frame_order(agent):
    frames = {"vid_a": [_frame(30), _frame(12)], "vid_b": [_frame(5)], "vid_c": []}
    texts = agent.describe_batch(list(frames), list(frames.values()))
    assert len(texts) == 3
    assert texts[0].startswith("Frame 12: ") and " Frame 30: " in texts[0]
    assert texts[0].index("Frame 12:") < texts[0].index("Frame 30:")
    assert texts[1].startswith("Frame 5: ") and "Frame 12" not in texts[1]
    assert texts[2] == ""
    frame_texts = agent.describe([(("vid_a", 12), _frame(12)), (("vid_a", 30), _frame(30))])
    assert texts[0] == f"Frame 12: {frame_texts[0]} Frame 30: {frame_texts[1]}"
    assert all(frame_texts), "the tiny agent should produce non-empty replies"


def test_cache_generates_each_video_frame_once(agent, monkeypatch):
    calls = _count_generate_calls(agent, monkeypatch)
    names, frames = ["v1", "v2"], [[_frame(1), _frame(2)], [_frame(7)]]
    first = agent.describe_batch(names, frames)
    assert sum(calls) == 3 and calls == [2, 1]  # batch size 2: three new frames -> two LLM calls
    second = agent.describe_batch(names, frames)
    assert second == first
    assert sum(calls) == 3, "cached (video, frame) pairs must not reach the LLM again"
    agent.describe_batch(["v1", "v3"], [[_frame(1)], [_frame(1)]])
    assert sum(calls) == 4, "only the new (v3, 1) is generated"


def test_repeated_keys_within_one_call_are_generated_once(agent, monkeypatch):
    calls = _count_generate_calls(agent, monkeypatch)
    texts = agent.describe([(("v", 1), _frame(1)), (("v", 1), _frame(1)), (("v", 2), _frame(2))])
    assert sum(calls) == 2
    assert texts[0] == texts[1]


def test_batched_generation_equals_one_by_one(agent_dir):
    frames = [_frame(n, AU04_r=0.5 + n / 7, AU25_r=n / 3) for n in range(1, 6)] + [_frame(9)]
    messages = [build_user_message(f) for f in frames]
    batched = AUAgent(str(agent_dir), max_new_tokens=6, batch_size=4).generate(messages)
    single = AUAgent(str(agent_dir), max_new_tokens=6, batch_size=1).generate(messages)
    assert batched == single
    assert len(set(batched)) > 1, "replies should depend on the prompt"


def test_lora_adapter_folder_is_loaded(agent_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(agent_dir))
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)  # a non-zero adapter changes the outputs
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    messages = [build_user_message(_frame(n)) for n in (1, 2, 3)]
    plain = AUAgent(str(agent_dir), max_new_tokens=6).generate(messages)
    adapted = AUAgent(str(agent_dir), lora_weights=str(tmp_path / "adapter"), max_new_tokens=6)
    assert not any(p.requires_grad for p in adapted.llm.parameters())
    assert adapted.generate(messages) != plain


def test_missing_lora_weights_is_a_clear_error(agent_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="LoRA weights not found"):
        AUAgent(str(agent_dir), lora_weights=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a peft LoRA adapter folder"):
        AUAgent(str(agent_dir), lora_weights=str(tmp_path / "empty"))


def test_from_model_config_uses_the_au_agent_keys(agent_dir):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({
        "au_agent_base_model": str(agent_dir), "au_agent_lora_weights": "", "au_agent_device": "",
        "au_agent_max_new_tokens": 5, "au_agent_batch_size": 3,
    })
    built = AUAgent.from_model_config(cfg, default_device="cpu")
    assert (built.max_new_tokens, built.batch_size, built.device.type) == (5, 3, "cpu")


def test_emotion_words_in_replies_are_counted_and_logged(agent, monkeypatch, caplog):
    real_generate = AUAgent.generate
    monkeypatch.setattr(AUAgent, "generate", lambda self, msgs: [f"{r} Looks sad." for r in real_generate(self, msgs)])
    agent.describe_batch(["v"], [[_frame(1), _frame(2)]])
    agent.describe_batch(["v"], [[_frame(1), _frame(2)]])  # cached: not counted again
    assert agent.emotion_word_violations == 2
    assert "contains emotion words ['sad']" in caplog.text
