"""The configuration schema: one dataclass per YAML section.

Every key users may write lives here, with its type, default and a one-line help string
(`python -m my_affectgpt.common.config --describe` prints them; README's reference is made
from that output). Field metadata:

- ``help``: the description.
- ``path``: the value is a filesystem path: ``~`` and ``$VARS`` are expanded and a relative
  path is resolved against the working directory.
- ``path_or_hub``: like ``path`` when the expanded value exists on disk, otherwise kept as
  given (a Hugging Face hub id).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, List, Literal, Optional

# What each ``face_or_frame`` value puts in the prompt, in prompt order. "multi" is the
# pre-fused token of audio with face (``multiface*``) or frame (``multiframe*``); "text" is
# the subtitle sentence.
PROMPT_CONTENTS = {
    "multiface_audio_face_frame_text": ("multi", "audio", "face", "frame", "text"),
    "multiface_audio_face_text": ("multi", "audio", "face", "text"),
    "multiframe_audio_frame_text": ("multi", "audio", "frame", "text"),
    "multiface_text": ("multi", "text"),
    "faceframe": ("audio", "frame", "face", "text"),
    "face": ("audio", "face", "text"),
    "frame": ("audio", "frame", "text"),
    "audioonly": ("audio",),
    "textonly": ("text",),
    "faceonly": ("face",),
    "frameonly": ("frame",),
    "audio_text": ("audio", "text"),
    "face_text": ("face", "text"),
    "frame_text": ("frame", "text"),
}
FACE_OR_FRAME_CHOICES = tuple(PROMPT_CONTENTS)


def feature_modalities(face_or_frame: str) -> tuple:
    """Raw feature streams (face, frame, audio) a ``face_or_frame`` value needs, in order."""
    contents = PROMPT_CONTENTS[face_or_frame]
    needed = []
    if "multi" in contents:
        needed += ["face" if face_or_frame.startswith("multiface") else "frame", "audio"]
    needed += [m for m in contents if m in ("face", "frame", "audio")]
    return tuple(dict.fromkeys(needed))


LABEL_TYPES = (
    "description",
    "ovlabel",
    "hybrid",
    "onehot",
    "onehot_w_candidates",
    "valence",
    "sentiment",
)


def _f(default, help: str, **meta):
    meta["help"] = help
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


FusionType = Literal["attention", "mean", "qformer"]


@dataclass
class ModelConfig:
    arch: str = _f("affectgpt", "registered model name")
    llama_model: str = _f("", "LLM: local Hugging Face directory or hub id", path_or_hub=True)
    llm_dtype: Literal["auto", "fp32", "fp16", "bf16"] = _f(
        "auto", "LLM weight dtype; auto = bf16 on GPU (fp16 if bf16 is unsupported), fp32 on CPU"
    )
    use_lora: bool = _f(True, "fine-tune the LLM with a LoRA adapter (the base stays frozen)")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    lora_target_modules: List[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "LLM linear layers that get LoRA adapters",
    )
    gradient_checkpointing: bool = _f(False, "trade compute for memory in the LLM")
    skip_encoders: bool = _f(
        True, "do not load the frozen frame/face/audio encoders (train on pre-extracted features)"
    )
    visual_encoder: str = _f("CLIP_VIT_LARGE", "frame/face encoder name (feature folder name too)")
    visual_encoder_path: str = _f("", "HF CLIP directory or hub id for the visual encoder", path_or_hub=True)
    acoustic_encoder: str = _f("HUBERT_LARGE", "audio encoder name (feature folder name too)")
    acoustic_encoder_path: str = _f("", "HF HuBERT directory or hub id", path_or_hub=True)
    preextracted_visual_dim: int = _f(768, "width of frame/face features (CLIP ViT-L/14: 768)")
    preextracted_acoustic_dim: int = _f(1024, "width of audio features (HuBERT-large: 1024)")
    preextracted_au_dim: int = _f(512, "width of AU text features (CLIP ViT-B/32 text: 512)")
    video_fusion_type: FusionType = _f("attention", "frame/face fusion over time")
    audio_fusion_type: FusionType = _f("attention", "audio fusion over clips")
    au_fusion_type: FusionType = _f("attention", "AU fusion over described frames")
    multi_fusion_type: Literal["qformer", "attention"] = _f(
        "qformer", "pre-fusion of face-or-frame with audio (the <MultiHere> token)"
    )
    num_video_query_token: int = _f(1, "tokens for frame/face (attention: heads; qformer: queries)")
    num_audio_query_token: int = _f(1, "tokens for audio")
    num_au_query_token: int = _f(1, "tokens for AU")
    num_multi_query_token: int = _f(16, "tokens for the Multi pre-fusion")
    qformer_hidden_size: int = _f(768, "hidden width of the Q-Formers and of the Multi common space")
    qformer_num_layers: int = _f(2, "Q-Former layers (cross-attention in every layer)")
    qformer_num_heads: int = _f(12, "Q-Former attention heads")
    qformer_max_positions: int = _f(64, "learned position embeddings for Q-Former inputs (time steps)")
    frozen_video_Qformer: bool = _f(False, "freeze the frame/face fusion module")
    frozen_video_proj: bool = _f(False, "freeze the frame/face projection to the LLM")
    frozen_audio_Qformer: bool = _f(False, "freeze the audio fusion module")
    frozen_audio_proj: bool = _f(False, "freeze the audio projection")
    frozen_multi_Qformer: bool = _f(False, "freeze the Multi pre-fusion module")
    frozen_multi_llama_proj: bool = _f(False, "freeze the Multi projection")
    frozen_au_Qformer: bool = _f(False, "freeze the AU fusion module")
    frozen_au_proj: bool = _f(False, "freeze the AU projection")
    au_clip_model: str = _f(
        "ViT-B-32", "open_clip model for realtime AU text encoding, or a model-config JSON path"
    )
    au_clip_pretrained: str = _f(
        "openai", "open_clip weights: 'openai', a local checkpoint path, or 'none' (random, tests)"
    )
    use_au_agent: bool = _f(False, "AU mode 3: the AU Agent writes AU descriptions into the prompt")
    au_agent_base_model: str = _f("", "AU Agent base LLM directory or hub id", path_or_hub=True)
    au_agent_lora_weights: str = _f("", "AU Agent LoRA adapter directory ('' = base only)", path=True)
    au_agent_device: str = _f("", "device for the AU Agent, e.g. cuda:1 ('' = the model's device)")
    au_agent_max_new_tokens: int = _f(96, "AU Agent generation length")
    au_agent_batch_size: int = _f(8, "AU Agent generation batch size")
    au_agent_num_frames: int = _f(1, "frames per video described by the AU Agent (peak frames first)")
    ckpt: str = _f("", "warm-start trainable weights from this checkpoint", path=True)
    ckpt_2: str = _f("", "second warm-start checkpoint (loaded after ckpt)", path=True)
    ckpt_3: str = _f("", "third warm-start checkpoint (loaded after ckpt_2)", path=True)


@dataclass
class DatasetConfig:
    data_root: str = _f("", "dataset folder (CSVs, video/, audio/, openface_face/)", path=True)
    label_csv: str = _f("track2_train_mercaptionplus.csv", "CSV with name, openset (under data_root)")
    reason_csv: str = _f("track3_train_mercaptionplus.csv", "CSV with name, reason (under data_root)")
    subtitle_csv: str = _f("", "CSV with name and subtitle columns, under data_root ('' = the dataset's usual file)")
    subtitle_column: str = _f("english", "subtitle column: english or chinese")
    label_path: str = _f("", "test-set label file (npz or csv); default per dataset", path=True)
    label_split: str = _f("", "split key inside an .npz label file, e.g. test1_corpus ('' = the dataset's usual one)")
    candidate_path: str = _f("", "CSV of candidate labels for one-hot prompts", path=True)
    video_root: str = _f("", "videos folder ('' = the dataset's usual folder under data_root)", path=True)
    audio_root: str = _f("", "audio folder ('' = the dataset's usual folder under data_root)", path=True)
    face_root: str = _f("", "face crops folder ('' = data_root/openface_face)", path=True)
    split: str = _f("train", "which split this block builds (train or test)")
    face_or_frame: str = _f("multiface_audio_face_text", "what the prompt contains; see SPEC 5")
    label_type: str = _f("description", "target kind: " + ", ".join(LABEL_TYPES))
    use_preextracted_features: bool = _f(True, "read frame/face/audio features from .npy files")
    preextracted_root: str = _f("", "folder holding frame_*/face_*/audio_*/au_* feature folders", path=True)
    visual_encoder: str = _f("CLIP_VIT_LARGE", "visual feature folder name")
    acoustic_encoder: str = _f("HUBERT_LARGE", "acoustic feature folder name")
    clips_per_video: int = _f(8, "audio clips per video")
    frame_n_frms: int = _f(8, "frames per video")
    frame_sampling: Literal["uniform", "emotion_peak"] = _f("uniform", "frame sampling strategy")
    image_size: int = _f(224, "frame/face size at decode time")
    mer_factory_output: str = _f("", "MER-Factory output root (AU JSONs)", path=True)
    mer_factory_folder: str = _f("", "override of the dataset's MER-Factory folder name")
    use_au: Optional[bool] = _f(None, "AU channel on/off (default: on when AU data is configured)")
    use_au_clip_realtime: bool = _f(False, "encode AU summary_description texts with CLIP in real time")
    au_missing_description: Literal["error", "empty", "skip"] = _f(
        "error", "a sample whose JSON has no AU descriptions: error, empty AU channel, or skip"
    )
    max_length: int = _f(1024, "token limit of prompt + answer (the answer is truncated to fit)")
    sample_ratio: float = _f(1.0, "mixing weight when several training datasets are configured")


@dataclass
class RunConfig:
    task: str = _f("video_text_pretrain", "registered task")
    runner: str = _f("runner_iter", "registered runner")
    lr_sched: str = _f("linear_warmup_cosine_lr", "registered LR schedule")
    init_lr: float = _f(1e-4, "peak learning rate")
    min_lr: float = _f(1e-5, "final learning rate of the cosine schedule")
    warmup_lr: float = _f(1e-6, "learning rate at step 0")
    warmup_steps: int = _f(0, "linear warmup steps")
    lr_decay_rate: float = _f(0.1, "per-epoch decay for linear_warmup_step_lr")
    weight_decay: float = _f(0.05, "AdamW weight decay (not on biases, norms, 1-D params)")
    beta2: float = _f(0.999, "AdamW beta2")
    max_epoch: int = _f(1, "epochs")
    iters_per_epoch: int = _f(100, "optimizer-loop iterations per epoch")
    batch_size_train: int = _f(2, "per-process training batch size")
    batch_size_eval: int = _f(2, "per-process evaluation batch size")
    accum_grad_iters: int = _f(1, "gradient accumulation (the loss is divided by it)")
    max_grad_norm: Optional[float] = _f(None, "clip gradients to this norm (null: no clipping)")
    seed: int = _f(42, "base seed (each rank adds its rank)")
    num_workers: int = _f(2, "DataLoader workers")
    amp: bool = _f(True, "mixed precision on GPU (ignored on CPU)")
    amp_dtype: Literal["bf16", "fp16"] = _f("bf16", "AMP dtype; fp16 uses a GradScaler")
    device: Literal["cuda", "cpu"] = _f("cuda", "device")
    output_dir: str = _f("", "run folder (default output/<config file stem>)", path=True)
    resume_ckpt_path: Optional[str] = _f(None, "checkpoint to resume, or 'auto' for the newest valid one")
    save_every_iters: int = _f(0, "also checkpoint every N iterations (0: only at epoch end)")
    keep_last_n: int = _f(0, "keep only the newest N checkpoints (0: keep all)")
    visualize_training: bool = _f(True, "write training curves and data every epoch")
    tensorboard: bool = _f(False, "also log TensorBoard scalars")
    log_freq: int = _f(50, "print a log line every N iterations")
    on_bad_sample: Literal["error", "skip"] = _f("error", "a sample that cannot be loaded")
    max_nonfinite_steps: int = _f(0, "consecutive non-finite losses tolerated (skipped) before stopping")


@dataclass
class InferenceConfig:
    ckpt: str = _f("", "checkpoint or exported folder to evaluate", path=True)
    ckpt_root: str = _f("", "folder of checkpoint_XXXXXX.pth files", path=True)
    test_epoch: Optional[int] = _f(None, "epoch under ckpt_root")
    test_epochs: str = _f("", "epoch range under ckpt_root, e.g. '30-60'")
    skip_epoch: int = _f(1, "stride through test_epochs")
    batch_size: int = _f(8, "generation batch size")
    use_au_clip_realtime: bool = _f(False, "AU channel from JSON texts encoded with CLIP in real time")
    mer_factory_output: str = _f("", "MER-Factory output root for every test dataset", path=True)
    frame_sampling: Optional[Literal["uniform", "emotion_peak"]] = _f(None, "override for test datasets")
    frame_n_frms: Optional[int] = _f(None, "override for test datasets")
    max_new_tokens: int = _f(256, "generation length")
    do_sample: bool = _f(False, "sample instead of greedy decoding")
    temperature: float = _f(1.0, "sampling temperature")
    top_p: float = _f(0.9, "sampling nucleus")
    no_reasoning: bool = _f(False, "ask for labels only (also --no_reasoning)")
    label_extractor: str = _f("lexicon", "'lexicon' or a local LLM path for label extraction", path_or_hub=True)
    emotion_wheel: str = _f("", "optional grouping file for HIT rate", path=True)


SECTIONS = {
    "model": ModelConfig,
    "run": RunConfig,
    "inference": InferenceConfig,
}
DATASET_SECTION = DatasetConfig

# Keys from the original AffectGPT configs that have no effect here: accepted so an old
# config loads, reported once.
LEGACY_IGNORED = {
    "model": {"model_type", "frozen_llm", "max_txt_len", "end_sym", "low_resource", "device_8bit"},
    "datasets": {"data_type", "vis_processor", "text_processor", "img_processor", "build_info"},
    "run": {"evaluate", "train_splits", "valid_splits", "test_splits", "world_size", "dist_url", "distributed"},
    "inference": set(),
}

# Aliases users bring from elsewhere: section -> {alias: canonical key}.
KEY_ALIASES = {
    "run": {"gradient_accumulation_steps": "accum_grad_iters"},
}
VALUE_ALIASES = {
    ("datasets", "label_type"): {"hybird": "hybrid"},
}


def schema_for(section: str) -> Any:
    return DATASET_SECTION if section == "datasets" else SECTIONS[section]



def to_dataclass(cls, cfg, label: str):
    """``cfg`` (a dataclass, mapping or OmegaConf node) as a ``cls`` instance, defaults filled in.

    Hot paths (dataset ``__getitem__``, the model's forward) read plain attributes instead of
    OmegaConf nodes, whose attribute lookups cost microseconds each.
    """
    from omegaconf import OmegaConf

    if isinstance(cfg, cls):
        return cfg
    if OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{label}: expected a mapping of keys, got {type(cfg).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"{label}: unknown keys {unknown}")
    return cls(**dict(cfg))
