"""Problems a user can make with the model's files: one clear line naming the key and the fix."""
from __future__ import annotations

import pytest

import train
from conftest import demo_config, write_config

SHORT = ["run.max_epoch=1", "run.iters_per_epoch=2", "run.num_workers=0"]


def test_a_missing_llm_folder_is_one_line_naming_the_key(demo_assets, tmp_path, capsys):
    cfg = demo_config(demo_assets, tmp_path / "out")
    cfg["model"]["llama_model"] = str(tmp_path / "no_such_llm")
    assert train.main(["--cfg-path", str(write_config(cfg, tmp_path / "c.yaml")), "--options", *SHORT]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: model.llama_model: folder not found: {tmp_path / 'no_such_llm'}; "
                   "set it to the local model folder"]


def test_a_warm_start_that_fits_none_of_the_weights_fails_unless_partial(demo_assets, tmp_path, capsys):
    """model.ckpt written for another model (here: for a textonly prompt, so no fusion branch
    and other LoRA targets) is an error; model.partial_warm_start lets it through."""
    other = demo_config(demo_assets, tmp_path / "other")
    other["datasets"]["demo"]["face_or_frame"] = "textonly"
    other["model"]["lora_target_modules"] = ["gate_proj"]
    assert train.main(["--cfg-path", str(write_config(other, tmp_path / "o.yaml")), "--options", *SHORT]) == 0
    cfg = demo_config(demo_assets, tmp_path / "out")
    cfg["model"]["lora_target_modules"] = ["q_proj"]
    cfg["model"]["ckpt"] = str(tmp_path / "other" / "checkpoint_000001.pth")
    path = write_config(cfg, tmp_path / "c.yaml")
    capsys.readouterr()
    assert train.main(["--cfg-path", str(path), "--options", *SHORT]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "model.ckpt:" in line and "holds none of this model's" in line and "partial_warm_start" in line
    assert train.main(["--cfg-path", str(path), "--options", *SHORT, "model.partial_warm_start=True",
                       f"run.output_dir={tmp_path / 'out2'}"]) == 0


@pytest.mark.parametrize("key", ["run.init_lr=-1e-3", "run.batch_size_train=0"])
def test_a_negative_or_zero_setting_is_named_before_the_model_loads(demo_assets, tmp_path, capsys, key):
    cfg_path = write_config(demo_config(demo_assets, tmp_path / "out"), tmp_path / "c.yaml")
    assert train.main(["--cfg-path", str(cfg_path), "--options", key]) == 2
    err = capsys.readouterr().err
    assert f"{key.split('=')[0]}: " in err and "must be >= " in err and "Loading" not in err
