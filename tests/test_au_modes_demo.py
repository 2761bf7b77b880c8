"""The three AU modes on the demo: same model inputs, and each one trains (and infers)."""
from __future__ import annotations

import json

import pytest
import torch

import inference
import train
from conftest import REPO_ROOT, demo_config, write_config
from my_affectgpt.common.config import load_config, validate
from my_affectgpt.datasets.builders import DemoBuilder

SHORT_RUN = ["run.max_epoch=1", "run.iters_per_epoch=4", "run.num_workers=0", "run.batch_size_train=2"]


def demo_dataset(cfg):
    return DemoBuilder(cfg.datasets.demo, cfg).build()["train"]


def test_realtime_clip_features_equal_the_preextracted_ones(demo_assets, tmp_path):
    from my_affectgpt.models.au_clip import AUClipTextEncoder

    raw = demo_config(demo_assets, tmp_path)
    pre = demo_dataset(validate(raw))
    raw["datasets"]["demo"]["use_au_clip_realtime"] = True
    realtime_cfg = validate(raw)
    realtime = demo_dataset(realtime_cfg)
    encoder = AUClipTextEncoder(realtime_cfg.model.au_clip_model, realtime_cfg.model.au_clip_pretrained)
    for i in range(4):
        texts = realtime[i]["au_texts"]
        features = pre[i]["au"]
        assert features.shape == (len(texts), 512)
        torch.testing.assert_close(encoder.encode(texts), features)


def test_agent_mode_puts_text_where_the_au_token_was(demo_assets, tmp_path):
    raw = demo_config(demo_assets, tmp_path)
    raw["model"].update(use_au_agent=True, au_agent_base_model=str(demo_assets / "models" / "tiny-au-agent"))
    sample = demo_dataset(validate(raw))[0]
    assert "<AU><AUAgentText></AU>" in sample["prompt"] and "<AUHere>" not in sample["prompt"]
    frame = sample["au_agent_frames"][0]
    assert set(frame) == {"frame", "active_aus", "au_description"} and frame["active_aus"]


def test_recommended_config_trains_the_demo_with_only_paths_changed(demo_assets, tmp_path):
    data = demo_assets / "data"
    options = [
        f"model.llama_model={demo_assets / 'models' / 'tiny-qwen2'}", "model.llm_dtype=fp32",
        "model.qformer_hidden_size=64", "model.qformer_num_heads=4", "model.num_multi_query_token=4",
        f"datasets.mercaptionplus.data_root={data / 'train'}",
        f"datasets.mercaptionplus.preextracted_root={data / 'features'}",
        f"datasets.mercaptionplus.mer_factory_output={data / 'mer_factory_output'}",
        "run.device=cpu", f"run.output_dir={tmp_path / 'out'}", "run.resume_ckpt_path=null", *SHORT_RUN,
    ]
    cfg_path = REPO_ROOT / "train_configs" / "recommended_train_with_preextracted_au.yaml"
    assert train.main(["--cfg-path", str(cfg_path), "--options", *options]) == 0
    assert (tmp_path / "out" / "checkpoint_000001.pth").is_file()


def test_realtime_clip_mode_trains_the_demo(demo_assets, tmp_path):
    cfg_path = write_config(demo_config(demo_assets, tmp_path / "out"), tmp_path / "cfg.yaml")
    options = ["datasets.demo.use_au_clip_realtime=True", *SHORT_RUN]
    assert train.main(["--cfg-path", str(cfg_path), "--options", *options]) == 0
    saved = load_config(tmp_path / "out" / "config.yaml")
    assert saved.datasets.demo.use_au_clip_realtime is True


@pytest.mark.slow
def test_au_agent_mode_trains_and_infers_at_batch_size_two(demo_assets, tmp_path):
    agent = demo_assets / "models" / "tiny-au-agent"
    agent_model = {"use_au_agent": True, "au_agent_base_model": str(agent), "au_agent_max_new_tokens": 8}
    train_cfg = demo_config(demo_assets, tmp_path / "run")
    train_cfg["model"].update(agent_model)
    assert train.main(["--cfg-path", str(write_config(train_cfg, tmp_path / "train.yaml")), "--options", *SHORT_RUN]) == 0

    eval_cfg = demo_config(demo_assets, tmp_path / "run", shipped="eval_configs/demo.yaml")
    eval_cfg["model"].update(agent_model)
    eval_cfg["run"].update(num_workers=0, output_dir=str(tmp_path / "eval"))
    eval_cfg["inference"].update(test_epoch=1, batch_size=2, max_new_tokens=8)
    assert inference.main(["--cfg-path", str(write_config(eval_cfg, tmp_path / "eval.yaml"))]) == 0
    lines = (tmp_path / "eval" / "results-demo" / "checkpoint_000001.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all("answer" in json.loads(line) for line in lines)
