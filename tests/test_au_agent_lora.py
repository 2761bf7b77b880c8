"""AU Agent fine-tuning: the pairs dataset, the au_agent_lm model, the task."""

import json
import logging
from pathlib import Path

import pytest
import torch
from helpers_au_agent import PROMPT_WORDS
from omegaconf import OmegaConf

import my_affectgpt.datasets.au_agent_pairs  # noqa: F401  (registers the builder)
import my_affectgpt.tasks.au_agent_lora  # noqa: F401  (registers the task and the model)
from my_affectgpt.common.config import load_config
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.registry import registry
from my_affectgpt.common.tiny_models import build_tiny_llm
from my_affectgpt.datasets.au_agent_pairs import AUAgentPairsDataset, AUPairsError, pairs_from_table
from my_affectgpt.conversation.au_agent_prompts import (
    SYSTEM_PROMPT,
    USER_INSTRUCTION,
    build_user_message,
    encode_prompt,
)
from my_affectgpt.models.au_agent import IGNORE_INDEX, AUAgent

DESCRIPTIONS = [
    "The cheeks rise and the lip corners pull up.",
    "The brows lower and draw together.",
    "The lips part and the jaw drops.",
    "The upper lip raises and the nose wrinkles.",
]
AUS = [{"AU06_r": 2.1, "AU12_r": 1.8}, {"AU04_r": 1.5}, {"AU25_r": 1.9, "AU26_r": 2.2}, {"AU10_r": 1.2, "AU09_r": 1.1}]


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory) -> Path:
    corpus = [*DESCRIPTIONS, SYSTEM_PROMPT, USER_INSTRUCTION, PROMPT_WORDS]
    return build_tiny_llm(tmp_path_factory.mktemp("tiny_llm"), extra_texts=corpus)


def _jsonl(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def _pair_rows(descriptions=DESCRIPTIONS):
    return [{"name": f"p{i}", "active_aus": aus, "au_description": "", "description": d}
            for i, (aus, d) in enumerate(zip(AUS, descriptions))]


def _config(tmp_path: Path, llm_dir: Path, dataset: dict, **run) -> Path:
    cfg = {
        "model": {"arch": "au_agent_lm", "llama_model": str(llm_dir), "llm_dtype": "fp32",
                  "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
        "datasets": {"au_agent_pairs": {"face_or_frame": "textonly", "max_length": 512, **dataset}},
        "run": {"task": "au_agent_lora", "device": "cpu", "num_workers": 0, "batch_size_train": 4,
                "max_epoch": 1, "iters_per_epoch": 3, "output_dir": str(tmp_path / "out"),
                "visualize_training": False, **run},
    }
    path = tmp_path / "au_agent_lora.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return path


def _write_au_json(root: Path, name: str, data: dict) -> None:
    path = root / name / f"{name}_au_analysis.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


# --------------------------------------------------------------------------- pairs dataset


def test_pairs_from_au_jsons(tmp_path, llm_dir):
    root = tmp_path / "mfo" / "MERCaptionPlus"
    _write_au_json(root, "v1", {
        "per_frame_au_descriptions": [
            {"frame": 1, "active_aus": AUS[0], "au_description": "Cheek raiser (intensity: 2.10)",
             "fine_grained_description": f"system\nS\nuser\nU\nassistant\n{DESCRIPTIONS[0]}"},
            {"frame": 2, "active_aus": AUS[1], "fine_grained_description": "system\nS\nuser\nU\nassistant\nold text"},
            {"frame": 3, "active_aus": AUS[2]},  # no description anywhere: not a pair
            {"frame": 4, "active_aus": {}, "fine_grained_description": "system\nS\nuser\nU\nassistant\nstill"},
        ],
        "summary_description": {"2": DESCRIPTIONS[1]},  # wins over the frame's transcript
    })
    _write_au_json(root, "v2", {"summary_description": {"1": "The lips part."}})  # no frames, no CSV: no pairs
    cfg = load_config(_config(tmp_path, llm_dir, {"mer_factory_output": str(tmp_path / "mfo"),
                                                   "mer_factory_folder": "MERCaptionPlus"}))
    dataset = registry.get_builder_class("au_agent_pairs")(cfg, "au_agent_pairs").build()["train"]

    items = [dataset[i] for i in range(len(dataset))]
    assert [(i["name"], i["answer"]) for i in items] == [("v1_frame1", DESCRIPTIONS[0]), ("v1_frame2", DESCRIPTIONS[1])]
    assert items[0]["user_message"] == build_user_message(
        {"active_aus": AUS[0], "au_description": "Cheek raiser (intensity: 2.10)"}
    )
    assert items[0]["max_length"] == 512
    batch = dataset.collater(items)
    assert batch["names"] == ["v1_frame1", "v1_frame2"] and len(batch["user_message"]) == 2


def test_pairs_from_csv_and_jsonl(tmp_path):
    import pandas as pd

    rows = _pair_rows()
    jsonl = pairs_from_table(_jsonl(tmp_path / "pairs.jsonl", rows))
    csv_path = tmp_path / "pairs.csv"
    pd.DataFrame([{**r, "active_aus": json.dumps(r["active_aus"])} for r in rows]).to_csv(csv_path, index=False)
    csv = pairs_from_table(csv_path)
    assert jsonl == csv
    assert csv[2]["active_aus"] == AUS[2] and csv[2]["description"] == DESCRIPTIONS[2]


def test_bad_table_rows_name_the_file_and_row(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [{"active_aus": "{not json", "description": "x"}])
    with pytest.raises(AUPairsError, match=r"bad.jsonl, row 1: active_aus is not a JSON object"):
        pairs_from_table(path)
    path = _jsonl(tmp_path / "short.jsonl", [{"active_aus": {}}])
    with pytest.raises(AUPairsError, match="line 1: missing key"):
        pairs_from_table(path)
    with pytest.raises(FileNotFoundError, match="label_path"):
        pairs_from_table(tmp_path / "absent.csv")


def test_emotion_word_targets_are_rejected_and_counted(caplog):
    rows = _pair_rows([DESCRIPTIONS[0], "The person is happy and smiles.", DESCRIPTIONS[2], "She looks angry."])
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        dataset = AUAgentPairsDataset(rows, source="pairs.jsonl")
    assert len(dataset) == 2 and dataset.rejected == 2
    assert "rejected 2 of 4" in caplog.text and "p1: happy" in caplog.text


def test_all_emotion_word_targets_is_an_error_listing_them():
    rows = _pair_rows(["He is sad.", "Looks surprised.", "Angry face.", "Happy."])
    with pytest.raises(AUPairsError, match=r"all 4 AU descriptions contain emotion words \(p0: sad; p1: surprised"):
        AUAgentPairsDataset(rows, source="pairs.jsonl")


# --------------------------------------------------------------------------- model and task


@pytest.fixture
def built(tmp_path, llm_dir):
    """(cfg, task, model, train dataset) for a JSONL of four pairs."""
    label_path = _jsonl(tmp_path / "pairs.jsonl", _pair_rows())
    cfg = load_config(_config(tmp_path, llm_dir, {"label_path": str(label_path)}))
    task = registry.get_task_class(cfg.run.task)()
    torch.manual_seed(0)  # the LoRA A matrices are random
    model = task.build_model(cfg)
    dataset = task.build_datasets(cfg)["au_agent_pairs"]["train"]
    return cfg, task, model, dataset


def test_prompt_tokens_are_masked_and_only_lora_trains(built):
    _, _, model, dataset = built
    batch = dataset.collater([dataset[0], dataset[1]])
    ids, labels = model._rows(batch)
    prompt = encode_prompt(model.tokenizer, batch["user_message"][0])
    answer = model.tokenizer(batch["answer"][0], add_special_tokens=False).input_ids + [model.tokenizer.eos_token_id]
    assert ids[0] == prompt + answer
    assert labels[0] == [IGNORE_INDEX] * len(prompt) + answer
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert set(model.trainable_state_dict()) == {n.removeprefix("llm.") for n in trainable}


def test_training_steps_reduce_the_loss(built):
    _, task, model, dataset = built
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(12):
        loss = task.train_step(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    # a random 64-wide base learns slowly through LoRA; 12 steps take ~0.6 nats off
    assert losses[-1] < losses[0] - 0.4, losses
    assert sum(losses[-4:]) < sum(losses[:4]), losses


def test_wrong_arch_for_the_task_is_an_error(tmp_path, llm_dir):
    cfg = load_config(_config(tmp_path, llm_dir, {"label_path": "x.jsonl"}), ["model.arch=affectgpt"])
    with pytest.raises(UserError, match="set model.arch: au_agent_lm"):
        registry.get_task_class("au_agent_lora")().build_model(cfg)


def test_trained_weights_reach_the_au_agent_by_checkpoint_and_by_adapter(built, tmp_path, llm_dir):
    from my_affectgpt.common.checkpoint import save_checkpoint

    cfg, _, model, dataset = built
    with torch.no_grad():
        for name, param in model.llm.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1.0)
    messages = {"user_message": [dataset[i]["user_message"] for i in range(3)]}
    expected = model.generate(messages, max_new_tokens=6)

    ckpt_path = tmp_path / "checkpoint_000000.pth"
    save_checkpoint({"model": model.trainable_state_dict(), "config": cfg.to_yaml()}, ckpt_path)
    from_ckpt = AUAgent(str(llm_dir), lora_weights=str(ckpt_path), max_new_tokens=6)
    from_adapter = AUAgent(str(llm_dir), lora_weights=str(model.save_adapter(tmp_path / "adapter")), max_new_tokens=6)
    assert from_ckpt.generate(messages["user_message"]) == expected
    assert from_adapter.generate(messages["user_message"]) == expected
    assert AUAgent(str(llm_dir), max_new_tokens=6).generate(messages["user_message"]) != expected

    fresh = registry.get_model_class("au_agent_lm").from_config(cfg)
    fresh.load_trainable_state_dict(model.trainable_state_dict())
    assert fresh.generate(messages, max_new_tokens=6) == expected
    with pytest.raises(UserError, match="do not fit"):
        fresh.load_trainable_state_dict({"nope": torch.zeros(1)})


def test_a_checkpoint_of_another_model_is_refused(tmp_path, llm_dir):
    from my_affectgpt.common.checkpoint import save_checkpoint

    ckpt_path = tmp_path / "checkpoint_000000.pth"
    save_checkpoint({"model": {}, "config": "model:\n  arch: affectgpt\n"}, ckpt_path)
    with pytest.raises(UserError, match="not an AU Agent checkpoint"):
        AUAgent(str(llm_dir), lora_weights=str(ckpt_path))


def test_train_py_runs_the_au_agent_task(tmp_path, llm_dir):
    import train

    label_path = _jsonl(tmp_path / "pairs.jsonl", _pair_rows())
    cfg_path = _config(tmp_path, llm_dir, {"label_path": str(label_path)}, init_lr=1e-2, warmup_steps=0)
    assert train.main(["--cfg-path", str(cfg_path)]) == 0
    checkpoint = tmp_path / "out" / "checkpoint_000001.pth"
    assert checkpoint.is_file()
    agent = AUAgent(str(llm_dir), lora_weights=str(checkpoint), max_new_tokens=4)
    assert len(agent.describe_batch(["v"], [[{"frame": 1, "active_aus": AUS[0]}]])) == 1


def test_shipped_config_validates_and_names_registered_components():
    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "train_configs" / "au_agent_lora.yaml")
    assert registry.get_task_class(cfg.run.task).__name__ == "AUAgentLoRATask"
    assert registry.get_model_class(cfg.model.arch).__name__ == "AUAgentLM"
    for name in cfg.datasets:
        assert registry.get_builder_class(name).__name__ == "AUAgentPairsBuilder"
