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
    assert cfg.run.lr_sched == "warmup_cosine_lr"
    assert cfg.run.amp is False  # the original runner's default
    assert cfg.run.accum_grad_iters == 1
    assert cfg.run.resume_ckpt_path is None
    assert cfg.datasets["demo"].sample_ratio == 1.0
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
    text = MINIMAL.replace("arch: affectgpt", "arch: affectgpt\n  skip_encoders: true").replace(
        "face_or_frame: textonly", "face_or_frame: face\n    use_preextracted_features: false"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "model.skip_encoders is True but datasets.demo reads audio, face from raw media" in message


def test_original_defaults_read_raw_media_with_encoders(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL.replace("face_or_frame: textonly", "face_or_frame: face")))
    assert cfg.model.skip_encoders is False and cfg.datasets["demo"].use_preextracted_features is False
    assert (cfg.model.video_fusion_type, cfg.model.audio_fusion_type) == ("qformer", "qformer")
    assert (cfg.model.multi_fusion_type, cfg.model.au_fusion_type, cfg.model.num_au_query_token) == ("attention", "mean", 8)


def test_every_problem_of_a_file_is_listed_in_one_run(tmp_path):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: textonyl\n    colour: red") + (
        "  init_lr: -1e-3\n  iters_per_epcoh: 5\n  max_epoch: '3'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "5 problems" in message
    for part in ("run.init_lr: -0.001 must be >= 0", "unknown key run.iters_per_epcoh", "run.max_epoch: expected int",
                 "unknown key datasets.demo.colour", "datasets.demo.face_or_frame: 'textonyl' is not valid"):
        assert part in message


def test_empty_yaml_says_what_a_config_holds(tmp_path):
    with pytest.raises(ConfigError, match=r"cfg.yaml is empty; a config has the sections model, datasets, run, inference"):
        load_config(write(tmp_path, ""))


def test_warmup_longer_than_the_run_is_reported(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        load_config(write(tmp_path, MINIMAL + "  max_epoch: 2\n  iters_per_epoch: 10\n  warmup_steps: 50\n"))
    assert "run.warmup_steps (50) is longer than the whole run (2 x 10 = 20 steps)" in caplog.text


def test_original_schedule_with_warmup_within_one_epoch_says_the_warmup_has_no_effect(tmp_path, caplog):
    run = "  max_epoch: 3\n  iters_per_epoch: 10\n  warmup_steps: 10\n"
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        load_config(write(tmp_path, MINIMAL + run + "  lr_sched: linear_warmup_cosine_lr\n"))
    assert "run.warmup_steps (10, at most one epoch) has no effect; warmup_cosine_lr warms up" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        load_config(write(tmp_path, MINIMAL + run + "  lr_sched: warmup_cosine_lr\n"))
    assert "has no effect" not in caplog.text


def test_original_xxx_markers_mean_unset(tmp_path):
    text = MINIMAL + "inference:\n  ckpt_root: xxx\n  ckpt_name: xxx\n  test_epoch: xxx\n  test_epochs: xxx-xxx\n"
    inf = load_config(write(tmp_path, text)).inference
    assert (inf.ckpt_root, inf.ckpt_name, inf.test_epoch, inf.test_epochs) == ("", "", None, "")


@pytest.mark.parametrize("face_or_frame, extra, mode", [
    ("multiface_audio_face_text", "use_preextracted_features: true\n    preextracted_root: f", None),
    ("multiface_audio_face_au_text", "use_preextracted_features: true\n    preextracted_root: f", "preextracted"),
    ("multiface_audio_face_frame_au_text", "use_preextracted_features: true\n    preextracted_root: f\n"
     "    use_au_clip_realtime: true\n    mer_factory_output: m", "realtime"),
    ("multiface_audio_face_au_text", "use_au: false", None),
    ("audioonly", "use_au: true\n    use_au_clip_realtime: true\n    mer_factory_output: m", "realtime"),
    # a feature folder or a MER-Factory root alone never turns AU on
    ("textonly", "preextracted_root: f\n    mer_factory_output: m", None),
])
def test_the_au_part_of_face_or_frame_switches_the_au_block(tmp_path, face_or_frame, extra, mode):
    text = MINIMAL.replace("face_or_frame: textonly", f"face_or_frame: {face_or_frame}\n    {extra}")
    assert load_config(write(tmp_path, text)).au_mode("demo") == mode


def test_au_block_without_a_source_is_an_error(tmp_path):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: multiface_audio_face_au_text")
    with pytest.raises(ConfigError, match="the AU block is on .* but has no source"):
        load_config(write(tmp_path, text))


def test_inference_overrides_switch_au_to_realtime(tmp_path):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: multiface_audio_face_au_text\n"
                           "    use_preextracted_features: true\n    preextracted_root: f")
    text += "inference:\n  use_au_clip_realtime: true\n  mer_factory_output: m\n  frame_n_frms: 4\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.au_mode("demo") == "preextracted"
    test = cfg.for_inference()
    assert test.au_mode("demo") == "realtime" and test.datasets["demo"].frame_n_frms == 4


def test_aliases_are_accepted_and_reported(tmp_path, caplog):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: textonly\n    label_type: hybird")
    text += "  gradient_accumulation_steps: 4\n"
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        cfg = load_config(write(tmp_path, text))
    assert cfg.run.accum_grad_iters == 4
    assert cfg.datasets["demo"].label_type == "hybrid"
    assert "gradient_accumulation_steps is an alias of run.accum_grad_iters" in caplog.text
    assert "'hybird' read as 'hybrid'" in caplog.text


def test_alias_and_canonical_key_together_is_an_error(tmp_path):
    text = MINIMAL + "  gradient_accumulation_steps: 4\n  accum_grad_iters: 2\n"
    with pytest.raises(ConfigError, match="both accum_grad_iters and its alias are set"):
        load_config(write(tmp_path, text))


def test_legacy_keys_are_ignored_with_a_note(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        cfg = load_config(write(tmp_path, MINIMAL + "  distributed: true\n"))
    assert "ignored (keys of the original AffectGPT with no effect here" in caplog.text
    assert "run.distributed" in caplog.text
    assert not hasattr(cfg.run, "distributed")


def test_a_section_the_original_never_read_is_ignored_with_a_note(tmp_path, caplog):
    text = MINIMAL + "evaluation_datasets_cfg:\n  mer2023:\n    eval_file_path: label.npz\n"
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        load_config(write(tmp_path, text))
    assert "ignored (keys of the original AffectGPT with no effect here" in caplog.text
    assert "evaluation_datasets_cfg" in caplog.text


@pytest.mark.parametrize("value, suggestion", [("face_frame_audio_au", "faceframe_au"),
                                               ("multiface_audio_face_au_txt", "multiface_audio_face_au_text")])
def test_face_or_frame_suggestion_keeps_the_au_part(tmp_path, value, suggestion):
    text = MINIMAL.replace("face_or_frame: textonly", f"face_or_frame: {value}")
    with pytest.raises(ConfigError, match=f"'{value}' is not valid. Did you mean '{suggestion}'"):
        load_config(write(tmp_path, text))


def test_nonverbal_text_is_refused_only_when_switched_on(tmp_path):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: textonly\n    nonverbal_json: cues.json\n"
                           "    use_nonverbal_text: {}")
    assert load_config(write(tmp_path, text.format("false"))).datasets["demo"].face_or_frame == "textonly"
    with pytest.raises(ConfigError, match=r"datasets.demo.use_nonverbal_text: True is not supported: .*set it to False"):
        load_config(write(tmp_path, text.format("true")))


def test_au_agent_without_an_au_block_is_reported_as_unused(tmp_path, caplog):
    text = MINIMAL.replace("arch: affectgpt", "arch: affectgpt\n  use_au_agent: true\n  au_agent_base_model: agent")
    with caplog.at_level(logging.WARNING, logger="my_affectgpt"):
        load_config(write(tmp_path, text))
    assert "model.use_au_agent is True but no dataset block has an AU block" in caplog.text


def test_options_override_keys_and_are_validated(tmp_path):
    path = write(tmp_path, MINIMAL)
    cfg = load_config(path, ["run.max_epoch=7", "run.init_lr=5e-5", "datasets.demo.sample_ratio=2"])
    assert cfg.run.max_epoch == 7
    assert cfg.run.init_lr == pytest.approx(5e-5)
    assert cfg.datasets["demo"].sample_ratio == 2.0
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
    assert cfg.datasets["demo"].data_root == str(tmp_path / "data" / "mer")
    assert cfg.datasets["demo"].preextracted_root == str(tmp_path / "features")
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
    assert again.to_dict() == cfg.to_dict()


def test_describe_lists_every_section_and_key():
    text = describe()
    for heading in ("### `model`", "### `run`", "### `inference`", "### `datasets.<name>`"):
        assert heading in text
    assert "| `resume_ckpt_path` |" in text


def test_check_takes_options_and_checks_paths(tmp_path, capsys):
    path = write(tmp_path, MINIMAL)
    assert config_main(["--check", str(path), "--options", "run.max_epoch=4"]) == 0
    assert "max_epoch: 4" in capsys.readouterr().out
    assert config_main(["--check", str(path), "--options", f"model.ckpt={tmp_path / 'absent.pth'}"]) == 2
    assert "model.ckpt:" in capsys.readouterr().err


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


def test_sequences_longer_than_the_qformer_position_tables_are_reported(tmp_path):
    text = MINIMAL.replace("face_or_frame: textonly", "face_or_frame: multiface_audio_face_text\n"
                           "    face_n_frms: 40\n    clips_per_video: 9").replace(
        "arch: affectgpt", "arch: affectgpt\n  multi_fusion_type: qformer")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "40 face rows, but the video Q-Former's position table has 32 rows" in message
    assert "clips_per_video: 9, but the audio Q-Former's position table has 8 rows" in message
