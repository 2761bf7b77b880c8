"""Config loading and validation: every mistake is one clear ConfigError naming the key."""
import logging
import os
from pathlib import Path

import pytest

from my_affectgpt.common.config import ConfigError, describe, load_config
from my_affectgpt.common.config import main as config_main

MINIMAL = """\
model:
  arch: affectgpt
datasets:
  demo:
    face_or_frame: textonly
run:
  task: video_text_pretrain
"""


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_config_fills_every_default(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.run.lr_sched == "linear_warmup_cosine_lr"
    assert cfg.run.accum_grad_iters == 1
    assert cfg.run.resume_ckpt_path is None
    assert cfg.datasets.demo.sample_ratio == 1.0
    assert cfg.inference.batch_size == 8


def test_default_output_dir_is_output_slash_config_stem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, MINIMAL, "my_run.yaml"))
    assert cfg.run.output_dir == str(tmp_path / "output" / "my_run")


def test_unknown_key_suggests_the_close_name(tmp_path):
    path = write(tmp_path, MINIMAL + "  iters_per_epcoh: 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "unknown key run.iters_per_epcoh" in message
    assert "Did you mean 'iters_per_epoch'?" in message


def test_unknown_top_level_section(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown top-level section 'runn'.*Did you mean 'run'"):
        load_config(write(tmp_path, MINIMAL + "runn:\n  seed: 1\n"))


def test_wrong_type_names_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"run.max_epoch: expected int, got str '3' \(write numbers without quotes\)"):
        load_config(write(tmp_path, MINIMAL + "  max_epoch: '3'\n"))
    with pytest.raises(ConfigError, match=r"run.amp: expected bool"):
        load_config(write(tmp_path, MINIMAL + "  amp: 1\n"))


def test_int_is_accepted_for_a_float_key(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "  init_lr: 1\n"))
    assert cfg.run.init_lr == 1.0 and isinstance(cfg.run.init_lr, float)


def test_choice_error_lists_valid_values(tmp_path):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: textonyl")
    with pytest.raises(ConfigError, match=r"datasets.demo.face_or_frame: 'textonyl' is not valid.*Did you mean 'textonly'"):
        load_config(write(tmp_path, text))


def test_contradiction_skip_encoders_without_features(tmp_path):
    text = MINIMAL.replace(
        "face_or_frame: textonly", "face_or_frame: face\n    use_preextracted_features: false"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "model.skip_encoders is True but datasets.demo.use_preextracted_features is False" in message
    assert "audio, face" in message


def test_contradiction_mean_fusion_with_several_tokens(tmp_path):
    text = MINIMAL.replace("arch: affectgpt", "arch: affectgpt\n  audio_fusion_type: mean\n  num_audio_query_token: 4")
    with pytest.raises(ConfigError, match="model.audio_fusion_type: mean gives one token"):
        load_config(write(tmp_path, text))


def test_aliases_are_accepted_and_reported(tmp_path, caplog):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: textonly\n    label_type: hybird")
    text += "  gradient_accumulation_steps: 4\n"
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        cfg = load_config(write(tmp_path, text))
    assert cfg.run.accum_grad_iters == 4
    assert cfg.datasets.demo.label_type == "hybrid"
    assert "gradient_accumulation_steps is an alias of run.accum_grad_iters" in caplog.text
    assert "'hybird' read as 'hybrid'" in caplog.text


def test_alias_and_canonical_key_together_is_an_error(tmp_path):
    text = MINIMAL + "  gradient_accumulation_steps: 4\n  accum_grad_iters: 2\n"
    with pytest.raises(ConfigError, match="both accum_grad_iters and its alias are set"):
        load_config(write(tmp_path, text))


def test_legacy_keys_are_ignored_with_a_note(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        cfg = load_config(write(tmp_path, MINIMAL + "  distributed: true\n"))
    assert "run.distributed (from the original AffectGPT) has no effect here" in caplog.text
    assert "distributed" not in cfg.run


def test_options_override_keys_and_are_validated(tmp_path):
    path = write(tmp_path, MINIMAL)
    cfg = load_config(path, ["run.max_epoch=7", "run.init_lr=5e-5", "datasets.demo.sample_ratio=2"])
    assert cfg.run.max_epoch == 7
    assert cfg.run.init_lr == pytest.approx(5e-5)
    assert cfg.datasets.demo.sample_ratio == 2.0
    with pytest.raises(ConfigError, match="unknown key run.max_epochs"):
        load_config(path, ["run.max_epochs=7"])
    with pytest.raises(ConfigError, match="--options expects key=value pairs"):
        load_config(path, ["run.max_epoch"])


def test_paths_expand_user_and_variables_and_resolve_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = MINIMAL.replace(
        "face_or_frame: textonly",
        "face_or_frame: textonly\n    data_root: $MY_DATA/mer\n    preextracted_root: features",
    ) + "  output_dir: ~/runs/one\n"
    text = text.replace("arch: affectgpt", "arch: affectgpt\n  llama_model: Qwen/Qwen2.5-7B-Instruct")
    cfg = load_config(write(tmp_path, text))
    assert cfg.datasets.demo.data_root == str(tmp_path / "data" / "mer")
    assert cfg.datasets.demo.preextracted_root == str(tmp_path / "features")
    assert cfg.run.output_dir == str(tmp_path / "home" / "runs" / "one")
    assert cfg.model.llama_model == "Qwen/Qwen2.5-7B-Instruct"  # a hub id stays as written


def test_existing_local_model_dir_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    text = MINIMAL.replace("arch: affectgpt", "arch: affectgpt\n  llama_model: models/tiny")
    cfg = load_config(write(tmp_path, text))
    assert cfg.model.llama_model == str(tmp_path / "models" / "tiny")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "run: [unclosed\n"))


def test_saved_config_reloads_to_the_same_values(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), ["run.seed=3"])
    cfg.save(tmp_path / "out" / "config.yaml")
    again = load_config(tmp_path / "out" / "config.yaml")
    assert again.to_container() == cfg.to_container()


def test_describe_lists_every_section_and_key():
    text = describe()
    for heading in ("### `model`", "### `run`", "### `inference`", "### `datasets.<name>`"):
        assert heading in text
    assert "| `resume_ckpt_path` |" in text


def test_check_cli_prints_one_error_line(tmp_path, capsys):
    path = write(tmp_path, MINIMAL + "  bogus: 1\n")
    assert config_main(["--check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "unknown key run.bogus" in err[0]
    assert os.path.basename(path) in err[0]


def test_list_values_load(tmp_path):
    text = MINIMAL.replace("arch: affectgpt", "arch: affectgpt\n  lora_target_modules: [q_proj, v_proj]")
    cfg = load_config(write(tmp_path, text))
    assert list(cfg.model.lora_target_modules) == ["q_proj", "v_proj"]
