"""Load a YAML config, apply ``--options`` overrides, validate it against the schema.

``load_config(path, options)`` returns a :class:`Config` whose sections are OmegaConf
``DictConfig`` objects with every default filled in, so code reads ``cfg.run.init_lr``
without guessing. Everything a user can get wrong is reported here, before any model is
built: unknown keys (with a "did you mean"), wrong types, values outside their choices and
contradictory combinations.

``python -m my_affectgpt.common.config --describe`` prints the reference tables in README.
"""
from __future__ import annotations

import difflib
import logging
import os
import sys
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from my_affectgpt.common import config_schema as schema
from my_affectgpt.common.atomic import write_text_atomic

logger = logging.getLogger("my_affectgpt")

TOP_LEVEL = ("model", "datasets", "run", "inference")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the fix."""


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{_type_name(inner[0])} or null"
    if origin in (list, List):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp) -> Any:
    """Return ``value`` as type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _coerce(key, value, inner)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = _did_you_mean(str(value), [str(c) for c in choices])
            raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}.{hint}")
        return value
    if origin in (list, List):
        if not isinstance(value, (list, tuple, ListConfig)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        item_tp = typing.get_args(tp)[0]
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if tp is Any:
        return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(
            f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
            + (" (write numbers without quotes)" if isinstance(value, str) and tp in (int, float) else "")
        )
    return float(value) if tp is float else value


def _resolve_path(value: str, hub_ok: bool) -> str:
    if not value:
        return value
    expanded = os.path.expanduser(os.path.expandvars(value))
    looks_like_path = value[0] in "~/.$" or os.path.exists(expanded)
    if hub_ok and not looks_like_path:
        return value  # a hub id such as Qwen/Qwen2.5-7B-Instruct
    return os.path.abspath(expanded)


def _validate_section(section: str, label: str, cls, raw: Any, notes: List[str]) -> Dict[str, Any]:
    """Validate one mapping against dataclass ``cls``; return a plain dict with defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, (dict, DictConfig)):
        raise ConfigError(f"{label}: expected a mapping of keys, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    aliases = schema.KEY_ALIASES.get(section, {})
    out: Dict[str, Any] = {}
    for key in raw:
        value = raw[key]
        canonical = aliases.get(key, key)
        if canonical != key:
            notes.append(f"{label}.{key} is an alias of {label}.{canonical}; using it as such")
        if canonical in schema.LEGACY_IGNORED.get(section, ()):
            notes.append(f"{label}.{key} (from the original AffectGPT) has no effect here; ignored")
            continue
        if canonical not in known:
            raise ConfigError(
                f"unknown key {label}.{key}.{_did_you_mean(key, known)} "
                f"Run `python -m my_affectgpt.common.config --describe` for every key."
            )
        if canonical in out:
            raise ConfigError(f"{label}: both {canonical} and its alias are set; keep one")
        value_aliases = schema.VALUE_ALIASES.get((section, canonical), {})
        if isinstance(value, str) and value in value_aliases:
            notes.append(f"{label}.{canonical}: {value!r} read as {value_aliases[value]!r}")
            value = value_aliases[value]
        value = _coerce(f"{label}.{canonical}", value, hints[canonical])
        meta = known[canonical].metadata
        if isinstance(value, str) and (meta.get("path") or meta.get("path_or_hub")):
            value = _resolve_path(value, hub_ok=bool(meta.get("path_or_hub")))
        out[canonical] = value
    for name, f in known.items():
        if name not in out:
            out[name] = f.default_factory() if f.default is MISSING else f.default
    return out


def _check_choices(label: str, key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{label}.{key}: {value!r} is not valid.{_did_you_mean(value, choices)} "
            f"Valid values: {', '.join(choices)}"
        )


def _check_contradictions(model, datasets, run, inference) -> None:
    for mod in ("video", "audio", "au"):
        if model[f"{mod}_fusion_type"] == "mean" and model[f"num_{mod}_query_token"] != 1:
            raise ConfigError(
                f"model.{mod}_fusion_type: mean gives one token, but model.num_{mod}_query_token is "
                f"{model[f'num_{mod}_query_token']}; set it to 1 or use attention/qformer"
            )
    if model["use_au_agent"] and not model["au_agent_base_model"]:
        raise ConfigError("model.use_au_agent is True but model.au_agent_base_model is empty; set the AU Agent LLM path")
    if model["use_au_agent"] and inference["use_au_clip_realtime"]:
        raise ConfigError(
            "model.use_au_agent and inference.use_au_clip_realtime are both True; pick one AU mode"
        )
    if inference["test_epoch"] is not None and inference["test_epochs"]:
        raise ConfigError("inference.test_epoch and inference.test_epochs are both set; keep one")
    if run["accum_grad_iters"] < 1 or run["iters_per_epoch"] < 1 or run["max_epoch"] < 1:
        raise ConfigError("run.accum_grad_iters, run.iters_per_epoch and run.max_epoch must be >= 1")
    for name, ds in datasets.items():
        label = f"datasets.{name}"
        _check_choices(label, "face_or_frame", ds["face_or_frame"], schema.FACE_OR_FRAME_CHOICES)
        _check_choices(label, "label_type", ds["label_type"], schema.LABEL_TYPES)
        if model["use_au_agent"] and ds["use_au_clip_realtime"]:
            raise ConfigError(f"model.use_au_agent and {label}.use_au_clip_realtime are both True; pick one AU mode")
        needs = schema.feature_modalities(ds["face_or_frame"])
        if model["skip_encoders"] and not ds["use_preextracted_features"] and needs:
            raise ConfigError(
                f"model.skip_encoders is True but {label}.use_preextracted_features is False, and "
                f"face_or_frame '{ds['face_or_frame']}' needs {', '.join(needs)}: either set "
                f"{label}.use_preextracted_features: True (with preextracted_root) or "
                f"model.skip_encoders: False (with the encoder paths)"
            )
        if ds["use_preextracted_features"] and needs and not ds["preextracted_root"]:
            raise ConfigError(f"{label}.use_preextracted_features is True but {label}.preextracted_root is empty")


class Config:
    """A validated config: ``.model``, ``.datasets`` (name -> block), ``.run``, ``.inference``."""

    def __init__(self, resolved: DictConfig, notes: List[str]):
        self._cfg = resolved
        self.notes = notes

    @property
    def model(self) -> DictConfig:
        return self._cfg.model

    @property
    def datasets(self) -> DictConfig:
        return self._cfg.datasets

    @property
    def run(self) -> DictConfig:
        return self._cfg.run

    @property
    def inference(self) -> DictConfig:
        return self._cfg.inference

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(self._cfg)

    def to_container(self) -> Dict[str, Any]:
        return OmegaConf.to_container(self._cfg)

    def save(self, path: os.PathLike) -> None:
        """Write the resolved config atomically (temp file + os.replace)."""
        write_text_atomic(Path(path), self.to_yaml())


def _parse_options(options: Optional[Sequence[str]]) -> DictConfig:
    options = list(options or [])
    for opt in options:
        if "=" not in opt:
            raise ConfigError(f"--options expects key=value pairs such as run.max_epoch=3; got {opt!r}")
    return OmegaConf.from_dotlist(options)


def validate(raw: Any, default_output_dir: str = "") -> Config:
    """Validate a raw mapping (already merged with overrides)."""
    if not isinstance(raw, (dict, DictConfig)):
        raise ConfigError("the config file must be a mapping with sections model, datasets, run, inference")
    for key in raw:
        if key not in TOP_LEVEL:
            raise ConfigError(f"unknown top-level section '{key}'.{_did_you_mean(key, TOP_LEVEL)} "
                              f"Sections: {', '.join(TOP_LEVEL)}")
    notes: List[str] = []
    resolved: Dict[str, Any] = {}
    for section in ("model", "run", "inference"):
        resolved[section] = _validate_section(section, section, schema.SECTIONS[section], raw.get(section), notes)
    raw_datasets = raw.get("datasets") or {}
    if not isinstance(raw_datasets, (dict, DictConfig)):
        raise ConfigError("datasets: expected a mapping of dataset name -> settings")
    resolved["datasets"] = {
        name: _validate_section("datasets", f"datasets.{name}", schema.DatasetConfig, block, notes)
        for name, block in raw_datasets.items()
    }
    if not resolved["run"]["output_dir"] and default_output_dir:
        resolved["run"]["output_dir"] = os.path.abspath(default_output_dir)
    _check_contradictions(resolved["model"], resolved["datasets"], resolved["run"], resolved["inference"])
    for note in notes:
        logger.warning(note)
    return Config(OmegaConf.create(resolved), notes)


def load_config(cfg_path: os.PathLike, options: Optional[Sequence[str]] = None) -> Config:
    cfg_path = Path(cfg_path)
    if not cfg_path.is_file():
        raise ConfigError(f"config file not found: {cfg_path}")
    try:
        raw = OmegaConf.load(cfg_path)
    except Exception as exc:  # yaml errors carry the line number
        raise ConfigError(f"{cfg_path}: not valid YAML: {exc}") from exc
    if raw is None or isinstance(raw, ListConfig):
        raise ConfigError(f"{cfg_path}: expected a mapping with sections {', '.join(TOP_LEVEL)}")
    merged = OmegaConf.merge(raw, _parse_options(options))
    try:
        return validate(merged, default_output_dir=os.path.join("output", cfg_path.stem))
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None


def describe() -> str:
    """Markdown reference of every key, generated from the schema."""
    lines = []
    for section, cls in list(schema.SECTIONS.items()) + [("datasets.<name>", schema.DatasetConfig)]:
        hints = typing.get_type_hints(cls)
        lines += [f"### `{section}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in fields(cls):
            default = f.default_factory() if f.default is MISSING else f.default
            lines.append(f"| `{f.name}` | {_type_name(hints[f.name])} | `{default!r}` | {f.metadata['help']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m my_affectgpt.common.config")
    parser.add_argument("--describe", action="store_true", help="print every config key")
    parser.add_argument("--check", metavar="CFG", help="validate a config file and print it resolved")
    args = parser.parse_args(argv)
    if args.describe:
        print(describe())
    if args.check:
        try:
            print(load_config(args.check).to_yaml())
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
