"""Load a YAML config, apply ``--options`` overrides, validate it into one :class:`Config`.

``load_config(path, options)`` returns a :class:`Config` of plain dataclasses (``cfg.run.init_lr``,
``cfg.datasets["demo"].data_root``) with every default filled in; it is the only config
object the rest of the package sees. OmegaConf is used for reading YAML, merging
``--options`` and writing the resolved ``config.yaml``, nothing else.

Everything a user can get wrong is reported here, before any model is built, all problems of
a file at once: unknown keys (with a "did you mean"), wrong types, values outside their
choices or range, and contradictory combinations. Keys of the original AffectGPT that had no
effect there are accepted and reported once.

    python -m my_affectgpt.common.config --describe          # every key (docs/CONFIG_REFERENCE.md)
    python -m my_affectgpt.common.config --check CFG [--options k=v ...]
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import sys
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from my_affectgpt.common import config_schema as schema
from my_affectgpt.common.atomic import write_text_atomic
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.face_or_frame import FaceOrFrameError, PromptLayout, parse_face_or_frame
from my_affectgpt.common.optims import ORIGINAL_SCHEDULES

logger = logging.getLogger("my_affectgpt")

TOP_LEVEL = ("model", "datasets", "run", "inference")
AU_MODES = ("preextracted", "realtime", "agent")
STREAMS = ("frame", "face", "audio", "au")
OUTPUT_PATHS = ("output_dir", "base_root")  # written by the run, so they need not exist yet


class ConfigError(UserError, ValueError):
    """A config that cannot be used; the message names every key at fault and the fix."""


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
    if origin in (dict, Dict):
        return "mapping"
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
    if origin in (dict, Dict):
        if not isinstance(value, (dict, DictConfig)):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return OmegaConf.to_container(value) if isinstance(value, DictConfig) else dict(value)
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


def _looks_like_path(value: str) -> bool:
    """A value that can only be a filesystem path (a hub id is ``name`` or ``org/name``)."""
    return value[0] in "~/.$" or (os.sep in value and value.count("/") != 1)


def _resolve_path(value: str, hub_ok: bool) -> str:
    if not value:
        return value
    expanded = os.path.expanduser(os.path.expandvars(value))
    if hub_ok and not os.path.exists(expanded) and not _looks_like_path(value):
        return value  # a hub id such as Qwen/Qwen2.5-7B-Instruct
    return os.path.abspath(expanded)


def _is_unset_marker(value: Any) -> bool:
    return isinstance(value, str) and value.strip() in schema.UNSET_MARKERS


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is MISSING else f.default


class _Collector:
    """Problems (errors) and notes (reported once) found while validating a config."""

    def __init__(self):
        self.problems: List[str] = []
        self.notes: List[str] = []
        self.ignored: List[str] = []  # original keys with no effect here

    def problem(self, message: str) -> None:
        self.problems.append(message)


def _validate_section(section: str, label: str, cls, raw: Any, found: _Collector):
    """An instance of dataclass ``cls`` from one YAML mapping; every bad key is collected."""
    if raw is None:
        raw = {}
    if not isinstance(raw, (dict, DictConfig)):
        found.problem(f"{label}: expected a mapping of keys, got {type(raw).__name__}")
        raw = {}
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    aliases = schema.KEY_ALIASES.get(section, {})
    values: Dict[str, Any] = {}
    for key in raw:
        value = raw[key]
        canonical = aliases.get(key, key)
        if canonical != key:
            found.notes.append(f"{label}.{key} is an alias of {label}.{canonical}; using it as such")
        unsupported = schema.UNSUPPORTED_VALUES.get(section, {}).get(canonical)
        if unsupported and value not in unsupported[0]:
            found.problem(f"{label}.{key}: {value!r} is not supported: {unsupported[1]}")
            continue
        ignored = schema.LEGACY_IGNORED.get(section, {}).get(canonical)
        if ignored is not None:
            found.ignored.append(f"{label}.{key}")
            continue
        removed = schema.REMOVED_KEYS.get(section, {}).get(canonical)
        if removed is not None:
            found.problem(f"{label}.{key} no longer exists: {removed}")
            continue
        if canonical not in known:
            found.problem(f"unknown key {label}.{key}.{_did_you_mean(key, known)}")
            continue
        if canonical in values:
            found.problem(f"{label}: both {canonical} and its alias are set; keep one")
            continue
        if _is_unset_marker(value):
            continue  # the original's "not set"
        value_aliases = schema.VALUE_ALIASES.get((section, canonical), {})
        if isinstance(value, str) and value in value_aliases:
            found.notes.append(f"{label}.{canonical}: {value!r} read as {value_aliases[value]!r}")
            value = value_aliases[value]
        try:
            value = _coerce(f"{label}.{canonical}", value, hints[canonical])
        except ConfigError as exc:
            found.problem(str(exc))
            continue
        meta = known[canonical].metadata
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "min" in meta and value < meta["min"]:
            found.problem(f"{label}.{canonical}: {value!r} must be >= {meta['min']}")
            continue
        if isinstance(value, str) and (meta.get("path") or meta.get("path_or_hub")):
            value = _resolve_path(value, hub_ok=bool(meta.get("path_or_hub")))
        values[canonical] = value
    return cls(**{name: values.get(name, _default(f)) for name, f in known.items()})


def _fill_dataset_defaults(ds: schema.DatasetConfig, model: schema.ModelConfig) -> None:
    """Resolve the keys whose default comes from elsewhere (the model block, another key)."""
    ds.face_n_frms = ds.face_n_frms or model.face_frames()
    ds.frame_n_frms = ds.frame_n_frms or ds.face_n_frms
    ds.image_size = ds.image_size or model.image_size()
    ds.max_length = ds.max_length or model.max_length
    for stream in STREAMS:
        key = f"use_preextracted_{stream}"
        if getattr(ds, key) is None:
            setattr(ds, key, ds.use_preextracted_features)


def prompt_layout(ds: schema.DatasetConfig) -> PromptLayout:
    return parse_face_or_frame(ds.face_or_frame)


def resolve_au_mode(label: str, ds: schema.DatasetConfig, model: schema.ModelConfig,
                    inference: Optional[schema.InferenceConfig] = None) -> Optional[str]:
    """The AU mode of a dataset block: None (no AU block), preextracted, realtime or agent.

    The block is on when ``face_or_frame`` has an ``au`` part, unless ``use_au`` says
    otherwise; nothing else turns it on. ``inference.use_au_clip_realtime`` counts as its
    source for an eval config whose dataset blocks name none. Raises ConfigError when the
    block is on without a source.
    """
    on = ds.use_au if ds.use_au is not None else prompt_layout(ds).has_au
    if not on:
        return None
    if model.use_au_agent:
        mode, needs = "agent", ("mer_factory_output",)
    elif ds.use_au_clip_realtime:
        mode, needs = "realtime", ("mer_factory_output",)
    elif ds.use_preextracted_au:
        mode, needs = "preextracted", ("preextracted_root",)
    elif inference is not None and inference.use_au_clip_realtime:
        if not (ds.mer_factory_output or inference.mer_factory_output):
            raise ConfigError(f"{label}: the AU block (realtime mode) needs inference.mer_factory_output "
                              f"or {label}.mer_factory_output")
        return "realtime"
    else:
        raise ConfigError(
            f"{label}: the AU block is on (face_or_frame '{ds.face_or_frame}'"
            + (", use_au: True" if ds.use_au else "")
            + ") but has no source: set use_preextracted_features (or use_preextracted_au): True to read "
            "au_CLIP_VITB32_8frms/*.npy, use_au_clip_realtime: True to CLIP-encode the JSONs' "
            "summary_description, or model.use_au_agent: True; or drop the au part / set use_au: False"
        )
    missing = [key for key in needs if not getattr(ds, key)]
    if missing:
        raise ConfigError(f"{label}: the AU block ({mode} mode) needs {label}.{missing[0]}")
    return mode


def _check_dataset(label: str, ds: schema.DatasetConfig, model: schema.ModelConfig, found: _Collector,
                   inference: Optional[schema.InferenceConfig] = None) -> Optional[str]:
    """Contradictions inside one dataset block; returns its AU mode."""
    try:
        layout = prompt_layout(ds)
    except FaceOrFrameError as exc:
        found.problem(f"{label}.face_or_frame: {exc}")
        return None
    if ds.label_type not in schema.LABEL_TYPES:
        found.problem(f"{label}.label_type: {ds.label_type!r} is not valid.{_did_you_mean(ds.label_type, schema.LABEL_TYPES)} "
                      f"Valid values: {', '.join(schema.LABEL_TYPES)}")
    if not 0 < ds.ratio <= 1:
        found.problem(f"{label}.ratio: {ds.ratio} must be in (0, 1]")
    if model.use_au_agent and ds.use_au_clip_realtime:
        found.problem(f"model.use_au_agent and {label}.use_au_clip_realtime are both True; pick one AU mode")
    raw_streams = [s for s in layout.streams if not getattr(ds, f"use_preextracted_{s}")]
    if model.skip_encoders and raw_streams:
        found.problem(
            f"model.skip_encoders is True but {label} reads {', '.join(raw_streams)} from raw media "
            f"(face_or_frame '{ds.face_or_frame}', use_preextracted_features: {ds.use_preextracted_features}): "
            f"either set {label}.use_preextracted_features: True (with preextracted_root) or "
            f"model.skip_encoders: False (with the encoder paths)"
        )
    for problem in _position_problems(label, ds, model, layout):
        found.problem(problem)
    if [s for s in layout.streams if getattr(ds, f"use_preextracted_{s}")] and not ds.preextracted_root:
        found.problem(f"{label} reads pre-extracted features but {label}.preextracted_root is empty")
    try:
        return resolve_au_mode(label, ds, model, inference)
    except ConfigError as exc:
        found.problem(str(exc))
        return None


def _position_problems(label: str, ds: schema.DatasetConfig, model: schema.ModelConfig, layout: PromptLayout):
    """Sequences longer than the original's Q-Former position tables (32 frames, 8 clips, 264 Multi steps)."""
    visual_rows = {"face": ds.face_n_frms, "frame": ds.frame_n_frms}
    if model.video_fusion_type == "qformer":
        for stream in ("face", "frame"):
            if stream in layout.contents and visual_rows[stream] > schema.QFORMER_POSITIONS["video"]:
                yield (f"{label}: {visual_rows[stream]} {stream} rows, but the video Q-Former's position table has "
                       f"{schema.QFORMER_POSITIONS['video']} rows; sample fewer or use another video_fusion_type")
    if model.audio_fusion_type == "qformer" and "audio" in layout.contents \
            and ds.clips_per_video > schema.QFORMER_POSITIONS["audio"]:
        yield (f"{label}.clips_per_video: {ds.clips_per_video}, but the audio Q-Former's position table has "
               f"{schema.QFORMER_POSITIONS['audio']} rows; use at most that or another audio_fusion_type")
    steps = visual_rows[layout.multi_visual] + ds.clips_per_video
    if model.multi_fusion_type == "qformer" and "multi" in layout.contents and steps > schema.QFORMER_POSITIONS["multi"]:
        yield (f"{label}: the Multi Q-Former reads {steps} steps, more than its {schema.QFORMER_POSITIONS['multi']} "
               f"position rows; sample fewer frames or clips")


def _check_run(run: schema.RunConfig, found: _Collector) -> None:
    total = run.max_epoch * run.iters_per_epoch
    if run.warmup_steps > total:
        found.notes.append(
            f"run.warmup_steps ({run.warmup_steps}) is longer than the whole run ({run.max_epoch} x "
            f"{run.iters_per_epoch} = {total} steps): the learning rate never reaches run.init_lr"
        )
    elif 0 < run.warmup_steps <= run.iters_per_epoch and run.lr_sched in ORIGINAL_SCHEDULES:
        found.notes.append(
            f"run.lr_sched {run.lr_sched} computes the original AffectGPT's curve, which starts one epoch in: "
            f"run.warmup_steps ({run.warmup_steps}, at most one epoch) has no effect; "
            f"{ORIGINAL_SCHEDULES[run.lr_sched]} warms up from step 0"
        )
    if run.save_every_iters % run.accum_grad_iters:
        found.problem(
            f"run.save_every_iters ({run.save_every_iters}) must be a multiple of run.accum_grad_iters "
            f"({run.accum_grad_iters}) so that mid-epoch checkpoints fall on optimizer steps"
        )


def _check_model(model: schema.ModelConfig, inference: schema.InferenceConfig, found: _Collector) -> None:
    if model.use_au_agent and not model.au_agent_base_model:
        found.problem("model.use_au_agent is True but model.au_agent_base_model is empty; set the AU Agent LLM path")
    if model.use_au_agent and inference.use_au_clip_realtime:
        found.problem("model.use_au_agent and inference.use_au_clip_realtime are both True; pick one AU mode")
    if model.load_in_4bit and model.load_in_8bit:
        found.problem("model.load_in_4bit and model.load_in_8bit are both True; keep one")
    if inference.test_epoch is not None and inference.test_epochs:
        found.problem("inference.test_epoch and inference.test_epochs are both set; keep one")


@dataclass
class Config:
    """A validated config: ``.model``, ``.datasets`` (name -> block), ``.run``, ``.inference``.

    ``au_modes`` holds each dataset's AU mode, decided once here for the dataset and the model.
    """

    model: schema.ModelConfig
    datasets: Dict[str, schema.DatasetConfig]
    run: schema.RunConfig
    inference: schema.InferenceConfig
    au_modes: Dict[str, Optional[str]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    source: str = ""

    def au_mode(self, name: str) -> Optional[str]:
        return self.au_modes[name]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": dataclasses.asdict(self.model),
            "datasets": {name: dataclasses.asdict(ds) for name, ds in self.datasets.items()},
            "run": dataclasses.asdict(self.run),
            "inference": dataclasses.asdict(self.inference),
        }

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(OmegaConf.create(self.to_dict()))

    def save(self, path: os.PathLike) -> None:
        """Write the resolved config atomically (temp file + os.replace)."""
        write_text_atomic(Path(path), self.to_yaml())

    def select(self, names: Sequence[str]) -> "Config":
        """This config with only the named dataset blocks."""
        unknown = [n for n in names if n not in self.datasets]
        if unknown:
            raise ConfigError(
                f"dataset(s) {', '.join(unknown)} not in the config's datasets ({', '.join(self.datasets) or 'none'})"
            )
        return dataclasses.replace(
            self, datasets={n: self.datasets[n] for n in names}, au_modes={n: self.au_modes[n] for n in names}
        )

    def for_inference(self) -> "Config":
        """The config inference runs with: the ``inference.*`` overrides applied to every dataset
        block (MER-Factory root, frame sampling, realtime AU), AU modes decided again."""
        inf = self.inference
        overrides = {key: getattr(inf, key) for key in ("mer_factory_output", "frame_sampling", "frame_n_frms")
                     if getattr(inf, key)}
        if inf.use_au_clip_realtime:
            overrides["use_au_clip_realtime"] = True
        datasets = {name: dataclasses.replace(ds, **overrides) for name, ds in self.datasets.items()}
        found = _Collector()
        au_modes = {name: _check_dataset(f"datasets.{name}", ds, self.model, found) for name, ds in datasets.items()}
        _raise_problems(found, self.source)
        return dataclasses.replace(self, datasets=datasets, au_modes=au_modes)


def _parse_options(options: Optional[Sequence[str]]) -> DictConfig:
    options = list(options or [])
    for opt in options:
        if "=" not in opt:
            raise ConfigError(f"--options expects key=value pairs such as run.max_epoch=3; got {opt!r}")
    return OmegaConf.from_dotlist(options)


def _raise_problems(found: _Collector, source: str) -> None:
    if not found.problems:
        return
    where = f"{source}: " if source else ""
    if len(found.problems) == 1:
        raise ConfigError(f"{where}{found.problems[0]}")
    listed = "\n".join(f"  - {p}" for p in found.problems)
    raise ConfigError(
        f"{where}{len(found.problems)} problems:\n{listed}\n"
        "Run `python -m my_affectgpt.common.config --describe` for every key."
    )


def _missing_paths(cfg: Config) -> List[str]:
    """Configured paths that do not exist on this machine (for --check)."""
    problems = []
    sections = [("model", cfg.model), ("run", cfg.run), ("inference", cfg.inference)]
    sections += [(f"datasets.{n}", ds) for n, ds in cfg.datasets.items()]
    for label, section in sections:
        for f in fields(section):
            value = getattr(section, f.name)
            if not isinstance(value, str) or not value or f.name in OUTPUT_PATHS:
                continue
            if f.metadata.get("path") or (f.metadata.get("path_or_hub") and os.path.isabs(value)):
                if not os.path.exists(value):
                    problems.append(f"{label}.{f.name}: {value} does not exist")
    return problems


def validate(raw: Any, default_output_dir: str = "", source: str = "", check_paths: bool = False) -> Config:
    """Validate a raw mapping (already merged with overrides) into a :class:`Config`."""
    found = _Collector()
    if raw is None or (isinstance(raw, (dict, DictConfig)) and not raw):
        raise ConfigError(f"{source or 'the config'} is empty; a config has the sections "
                          f"{', '.join(TOP_LEVEL)} (see train_configs/demo.yaml)")
    if not isinstance(raw, (dict, DictConfig)):
        raise ConfigError(f"{source or 'the config'}: expected a mapping with sections {', '.join(TOP_LEVEL)}")
    for key in raw:
        if key in schema.IGNORED_SECTIONS:
            found.ignored.append(str(key))
        elif key not in TOP_LEVEL:
            found.problem(f"unknown top-level section '{key}'.{_did_you_mean(key, TOP_LEVEL)} "
                          f"Sections: {', '.join(TOP_LEVEL)}")
    model = _validate_section("model", "model", schema.ModelConfig, raw.get("model"), found)
    run = _validate_section("run", "run", schema.RunConfig, raw.get("run"), found)
    inference = _validate_section("inference", "inference", schema.InferenceConfig, raw.get("inference"), found)
    raw_datasets = raw.get("datasets") or {}
    if not isinstance(raw_datasets, (dict, DictConfig)):
        found.problem("datasets: expected a mapping of dataset name -> settings")
        raw_datasets = {}
    datasets = {
        str(name): _validate_section("datasets", f"datasets.{name}", schema.DatasetConfig, block, found)
        for name, block in raw_datasets.items()
    }
    for ds in datasets.values():
        _fill_dataset_defaults(ds, model)
    if not run.output_dir and default_output_dir:
        run.output_dir = os.path.abspath(default_output_dir)
    _check_model(model, inference, found)
    _check_run(run, found)
    au_modes = {name: _check_dataset(f"datasets.{name}", ds, model, found, inference) for name, ds in datasets.items()}
    if model.use_au_agent and datasets and "agent" not in au_modes.values():
        found.notes.append("model.use_au_agent is True but no dataset block has an AU block (an '_au' part in "
                           "face_or_frame); the AU Agent is not used")
    if found.ignored:
        found.notes.append(
            f"ignored (keys of the original AffectGPT with no effect here; `--describe` says why): "
            f"{', '.join(found.ignored)}"
        )
    cfg = Config(model, datasets, run, inference, au_modes, found.notes, source)
    if check_paths:
        found.problems += _missing_paths(cfg)
    _raise_problems(found, source)
    for note in dict.fromkeys(found.notes):
        logger.warning(note)
    return cfg


def load_config(cfg_path: os.PathLike, options: Optional[Sequence[str]] = None, check_paths: bool = False) -> Config:
    cfg_path = Path(cfg_path)
    if not cfg_path.is_file():
        raise ConfigError(f"config file not found: {cfg_path}")
    try:
        raw = OmegaConf.load(cfg_path)
    except Exception as exc:  # yaml errors carry the line number
        raise ConfigError(f"{cfg_path}: not valid YAML: {exc}") from exc
    if isinstance(raw, ListConfig):
        raise ConfigError(f"{cfg_path}: expected a mapping with sections {', '.join(TOP_LEVEL)}, got a list")
    merged = OmegaConf.merge(raw or {}, _parse_options(options))
    return validate(merged, default_output_dir=os.path.join("output", cfg_path.stem), source=str(cfg_path),
                    check_paths=check_paths)


def describe() -> str:
    """Markdown reference of every key, generated from the schema."""
    lines = ["Top-level sections: " + ", ".join(f"`{s}`" for s in TOP_LEVEL) + ". Accepted from original AffectGPT "
             "configs and ignored: " + "; ".join(f"`{k}` ({why})" for k, why in schema.IGNORED_SECTIONS.items()) + ".",
             ""]
    for section, cls in list(schema.SECTIONS.items()) + [("datasets.<name>", schema.DatasetConfig)]:
        hints = typing.get_type_hints(cls)
        lines += [f"### `{section}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in fields(cls):
            lines.append(f"| `{f.name}` | {_type_name(hints[f.name])} | `{_default(f)!r}` | {f.metadata['help']} |")
        ignored = schema.LEGACY_IGNORED.get(section.split(".")[0], {})
        if ignored:
            lines += ["", "Accepted from original AffectGPT configs and ignored: "
                      + "; ".join(f"`{k}` ({why})" for k, why in ignored.items()) + "."]
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m my_affectgpt.common.config")
    parser.add_argument("--describe", action="store_true", help="print every config key")
    parser.add_argument("--check", metavar="CFG", help="validate a config file (paths included) and print it resolved")
    parser.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="overrides, as for train.py")
    args = parser.parse_args(argv)
    if args.describe:
        print(describe())
    if args.check:
        try:
            print(load_config(args.check, args.options, check_paths=True).to_yaml())
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
