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
# long enough for the loss to fall clearly on the demo (it learns in a few dozen steps)
LEARNING_RUN = ["run.max_epoch=1", "run.iters_per_epoch=24", "run.num_workers=0", "run.batch_size_train=4",
                "run.warmup_steps=0", "run.init_lr=3e-3", "run.visualize_training=True"]


def demo_dataset(cfg):
    return DemoBuilder(cfg, "demo").build()["train"]


def assert_loss_fell(run_dir):
    """The recorded per-step losses of a run: the last ones well below the first ones."""
    import numpy as np

    (data,) = sorted((run_dir / "training_curves").glob("training_data_epoch*.npz"))
    losses = np.load(data)["losses"]
    assert losses[-4:].mean() < 0.8 * losses[:4].mean(), f"the loss did not fall: {losses.round(3).tolist()}"


def test_realtime_clip_features_equal_the_preextracted_ones(demo_assets, tmp_path):
    """The model's realtime AU path (CLIP text tower on the JSON texts) gives the features the
    extraction path wrote to au_CLIP_VITB32_8frms/*.npy (the demo's were made by extraction.au)."""
    from my_affectgpt.datasets.collate import collate
    from my_affectgpt.models.affectgpt import AffectGPT

    raw = demo_config(demo_assets, tmp_path)
    pre = collate([demo_dataset(validate(raw))[i] for i in range(4)])
    raw["datasets"]["demo"]["use_au_clip_realtime"] = True
    realtime_cfg = validate(raw)
    realtime = collate([demo_dataset(realtime_cfg)[i] for i in range(4)])
    model = AffectGPT.from_config(realtime_cfg)
    features, mask = model._au_features(realtime)
    assert torch.equal(mask, pre["au_mask"])
    torch.testing.assert_close(features[mask], pre["au"][pre["au_mask"]])


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
        f"model.qformer_config={demo_assets / 'models' / 'tiny-bert'}", "model.num_multi_query_token=4",
        f"datasets.mercaptionplus.data_root={data / 'train'}",
        f"datasets.mercaptionplus.preextracted_root={data / 'features'}",
        f"datasets.mercaptionplus.mer_factory_output={data / 'mer_factory_output'}",
        "run.device=cpu", f"run.output_dir={tmp_path / 'out'}", "run.resume_ckpt_path=null", *LEARNING_RUN,
    ]
    cfg_path = REPO_ROOT / "train_configs" / "recommended_train_with_preextracted_au.yaml"
    assert train.main(["--cfg-path", str(cfg_path), "--options", *options]) == 0
    assert_loss_fell(tmp_path / "out")


def test_realtime_clip_mode_trains_the_demo(demo_assets, tmp_path):
    cfg_path = write_config(demo_config(demo_assets, tmp_path / "out"), tmp_path / "cfg.yaml")
    options = ["datasets.demo.use_au_clip_realtime=True", *LEARNING_RUN]
    assert train.main(["--cfg-path", str(cfg_path), "--options", *options]) == 0
    saved = load_config(tmp_path / "out" / "config.yaml")
    assert saved.datasets["demo"].use_au_clip_realtime is True and saved.au_mode("demo") == "realtime"
    assert_loss_fell(tmp_path / "out")


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
