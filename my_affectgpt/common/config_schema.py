"""The configuration schema: one dataclass per YAML section.

Every key users may write lives here, with its type, default and a one-line help string
(`python -m my_affectgpt.common.config --describe` prints them; docs/CONFIG_REFERENCE.md is
made from that output). Defaults and meanings are the original AffectGPT's wherever the
original has the key. Field metadata:

- ``help``: the description.
- ``path``: the value is a filesystem path: ``~`` and ``$VARS`` are expanded and a relative
  path is resolved against the working directory.
- ``path_or_hub``: like ``path`` when the expanded value exists on disk, otherwise kept as
  given (a Hugging Face hub id).
- ``min``: the smallest valid value of a number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional

LABEL_TYPES = (
    "description",
    "ovlabel",
    "hybrid",
    "onehot_w_candidates",
    "onehot_wo_candidates",
    "valence",
    "sentiment",
)
FUSION_TYPES = ("attention", "mean", "qformer", "softmax_attention")
MULTI_FUSION_TYPES = ("qformer", "attention", "cross_attention")
# The original's face-frame count and frame size when its vis_processor block does not say.
# Rows of the learned position tables in front of the Q-Formers, as the original has them.
QFORMER_POSITIONS = {"video": 32, "audio": 8, "au": 32, "multi": 264}
DEFAULT_FACE_FRAMES = 8
DEFAULT_IMAGE_SIZE = 224


def _f(default, help: str, **meta):
    meta["help"] = help
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


FusionType = Literal["attention", "mean", "qformer", "softmax_attention"]


@dataclass
class ModelConfig:
    arch: str = _f("affectgpt", "registered model name")
    llama_model: str = _f("", "LLM: local Hugging Face directory (or hub id org/name)", path_or_hub=True)
    llm_dtype: Literal["auto", "fp32", "fp16", "bf16"] = _f(
        "auto", "LLM weight dtype; auto = bf16 on GPU (fp16 if bf16 is unsupported), fp32 on CPU"
    )
    max_length: int = _f(1024, "token limit of prompt + answer for every dataset (a dataset's max_length overrides it)", min=1)
    use_lora: bool = _f(True, "fine-tune the LLM with a LoRA adapter (the base stays frozen)")
    frozen_llm: bool = _f(False, "freeze the LoRA adapter too (only fusion modules train)")
    lora_r: int = _f(16, "LoRA rank", min=1)
    lora_alpha: int = _f(32, "LoRA alpha", min=1)
    lora_dropout: float = _f(0.05, "LoRA dropout", min=0)
    lora_target_modules: List[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "LLM linear layers that get LoRA adapters",
    )
    load_in_4bit: bool = _f(False, "load the frozen base LLM in 4-bit NF4 (QLoRA; needs the qlora extra, bitsandbytes)")
    load_in_8bit: bool = _f(False, "load the frozen base LLM in 8-bit (needs the qlora extra, bitsandbytes)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory in the LLM")
    skip_encoders: bool = _f(
        False, "do not load the frozen frame/face/audio encoders (train on pre-extracted features)"
    )
    visual_encoder: str = _f("CLIP_VIT_LARGE", "frame/face encoder name (feature folder name too)")
    visual_encoder_path: str = _f("", "HF CLIP directory or hub id for the visual encoder", path_or_hub=True)
    acoustic_encoder: str = _f("HUBERT_LARGE", "audio encoder name (feature folder name too)")
    acoustic_encoder_path: str = _f("", "HF HuBERT directory or hub id", path_or_hub=True)
    preextracted_visual_dim: int = _f(768, "width of frame/face features (CLIP ViT-L/14: 768)", min=1)
    preextracted_acoustic_dim: int = _f(1024, "width of audio features (HuBERT-large: 1024)", min=1)
    preextracted_au_dim: int = _f(512, "width of AU text features (CLIP ViT-B/32 text: 512)", min=1)
    video_fusion_type: FusionType = _f(
        "qformer", "frame/face fusion over time: attention (linear scores, no softmax), mean, qformer, "
        "or softmax_attention (normalised scores, one set per token)"
    )
    audio_fusion_type: FusionType = _f("qformer", "audio fusion over clips (same choices)")
    au_fusion_type: FusionType = _f("mean", "AU fusion over described frames (same choices)")
    multi_fusion_type: Literal["qformer", "attention", "cross_attention"] = _f(
        "attention", "pre-fusion of face-or-frame with audio (the <MultiHere> token): qformer, attention "
        "(a learned two-way gate over the time-averaged streams), or cross_attention (each stream attends to "
        "the other, then softmax attention pooling)"
    )
    num_video_query_token: int = _f(1, "tokens for frame/face", min=1)
    num_audio_query_token: int = _f(1, "tokens for audio", min=1)
    num_au_query_token: int = _f(8, "tokens for AU", min=1)
    num_multi_query_token: int = _f(16, "tokens for the Multi pre-fusion", min=1)
    qformer_config: str = _f(
        "", "BERT config file or folder the Q-Formers are built from (like the original's "
        "models/bert-base-uncased; '' = bert-base sizes)", path=True,
    )
    frozen_video_Qformer: bool = _f(False, "freeze the frame/face Q-Former (qformer fusion)")
    frozen_video_proj: bool = _f(False, "freeze the frame/face projection to the LLM")
    frozen_audio_Qformer: bool = _f(False, "freeze the audio Q-Former (qformer fusion)")
    frozen_audio_proj: bool = _f(False, "freeze the audio projection")
    frozen_multi_Qformer: bool = _f(False, "freeze the Multi Q-Former (multi_fusion_type: qformer)")
    frozen_multi_llama_proj: bool = _f(False, "freeze the Multi projection")
    frozen_au_Qformer: bool = _f(False, "freeze the AU Q-Former (au_fusion_type: qformer)")
    frozen_au_proj: bool = _f(False, "freeze the AU projection")
    vis_processor: Optional[Dict[str, Any]] = _f(
        None, "original processor block; train.n_frms is the number of face frames, train.image_size "
        "the frame/face size (other entries have no effect)"
    )
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
    au_agent_max_new_tokens: int = _f(96, "AU Agent generation length", min=1)
    au_agent_batch_size: int = _f(8, "AU Agent generation batch size", min=1)
    au_agent_num_frames: int = _f(1, "frames per video described by the AU Agent (peak frames first)", min=1)
    ckpt: str = _f("", "warm-start trainable weights from this checkpoint (ours or the original's)", path=True)
    ckpt_2: str = _f("", "second warm-start checkpoint (loaded after ckpt)", path=True)
    ckpt_3: str = _f("", "third warm-start checkpoint (loaded after ckpt_2)", path=True)
    partial_warm_start: bool = _f(
        False, "let model.ckpt* hold only some of the trainable weights (otherwise a checkpoint that "
        "fits none of them is an error)"
    )

    def face_frames(self) -> int:
        """Face frames per video: the original's ``vis_processor.train.n_frms``."""
        return int(_vis_train(self.vis_processor).get("n_frms", DEFAULT_FACE_FRAMES))

    def image_size(self) -> int:
        return int(_vis_train(self.vis_processor).get("image_size", DEFAULT_IMAGE_SIZE))


def _vis_train(block: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return dict((block or {}).get("train") or {})


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
    split: str = _f("train", "which split this block builds (train, or test for inference)")
    face_or_frame: str = _f(
        "multiface_audio_face_text", "what the prompt contains (an '_au' part adds the AU block); see README"
    )
    label_type: str = _f("description", "target kind: " + ", ".join(LABEL_TYPES) + " (hybird = hybrid)")
    ratio: float = _f(1.0, "train on a random fraction of the samples (seeded by run.seed)", min=0)
    use_preextracted_features: bool = _f(False, "read frame/face/audio (and AU) features from .npy files")
    use_preextracted_frame: Optional[bool] = _f(None, "frames from .npy (null = use_preextracted_features)")
    use_preextracted_face: Optional[bool] = _f(None, "faces from .npy (null = use_preextracted_features)")
    use_preextracted_audio: Optional[bool] = _f(None, "audio from .npy (null = use_preextracted_features)")
    use_preextracted_au: Optional[bool] = _f(None, "AU from .npy (null = use_preextracted_features)")
    preextracted_root: str = _f("", "folder holding frame_*/face_*/audio_*/au_* feature folders", path=True)
    visual_encoder: str = _f("CLIP_VIT_LARGE", "visual feature folder name")
    acoustic_encoder: str = _f("HUBERT_LARGE", "acoustic feature folder name")
    clips_per_video: int = _f(8, "audio clips per video", min=1)
    frame_n_frms: Optional[int] = _f(None, "frames per video (null = the face frame count)", min=1)
    face_n_frms: Optional[int] = _f(None, "face crops per video (null = model.vis_processor.train.n_frms, 8)", min=1)
    frame_sampling: Literal["uniform", "emotion_peak"] = _f("uniform", "frame sampling strategy")
    face_sampling: Literal["uniform", "emotion_peak"] = _f("uniform", "face crop sampling strategy")
    image_size: Optional[int] = _f(None, "frame/face size at decode time (null = model.vis_processor, 224)", min=1)
    mer_factory_output: str = _f("", "MER-Factory output root (AU JSONs)", path=True)
    mer_factory_folder: str = _f("", "override of the dataset's MER-Factory folder name")
    use_au: Optional[bool] = _f(None, "AU block on/off (null = on when face_or_frame has an '_au' part)")
    use_au_clip_realtime: bool = _f(False, "encode AU summary_description texts with CLIP in real time")
    au_missing_description: Literal["error", "empty", "skip"] = _f(
        "error", "a sample whose JSON has no AU descriptions: error, empty AU channel, or skip"
    )
    max_length: Optional[int] = _f(None, "token limit of prompt + answer (null = model.max_length)", min=1)
    sample_ratio: float = _f(1.0, "mixing weight when several training datasets are configured", min=0)


@dataclass
class RunConfig:
    task: str = _f("video_text_pretrain", "registered task")
    runner: str = _f("runner_iter", "registered runner (runner_base, the original's name, is read as runner_iter)")
    lr_sched: str = _f(
        "warmup_cosine_lr", "registered LR schedule: warmup_cosine_lr, warmup_step_lr, constant; "
        "linear_warmup_cosine_lr and linear_warmup_step_lr give the original AffectGPT's curves step for step",
    )
    init_lr: float = _f(1e-4, "peak learning rate", min=0)
    min_lr: float = _f(1e-5, "final learning rate of the cosine schedules, floor of the step ones", min=0)
    warmup_lr: float = _f(1e-6, "learning rate at step 0", min=0)
    warmup_steps: int = _f(0, "linear warmup steps", min=0)
    lr_decay_rate: float = _f(0.1, "per-epoch decay of the step schedules", min=0)
    weight_decay: float = _f(0.05, "AdamW weight decay (not on biases, norms, 1-D params)", min=0)
    beta2: float = _f(0.999, "AdamW beta2", min=0)
    max_epoch: int = _f(1, "epochs (numbered from 1)", min=1)
    iters_per_epoch: int = _f(100, "optimizer-loop iterations per epoch", min=1)
    batch_size_train: int = _f(2, "per-process training batch size", min=1)
    batch_size_eval: int = _f(2, "per-process evaluation batch size", min=1)
    accum_grad_iters: int = _f(1, "gradient accumulation (the loss is divided by it)", min=1)
    max_grad_norm: Optional[float] = _f(None, "clip gradients to this norm (null: no clipping)", min=0)
    seed: int = _f(42, "base seed (each rank adds its rank)")
    num_workers: int = _f(2, "DataLoader workers", min=0)
    amp: bool = _f(False, "mixed precision: autocast in amp_dtype (training and inference, GPU and CPU)")
    amp_dtype: Literal["bf16", "fp16"] = _f("bf16", "AMP dtype; fp16 uses a GradScaler")
    device: Literal["cuda", "cpu"] = _f("cuda", "device")
    output_dir: str = _f("", "run folder (default output/<config file stem>)", path=True)
    resume_ckpt_path: Optional[str] = _f(None, "checkpoint to resume, or 'auto' for the newest valid one")
    save_every_iters: int = _f(0, "also checkpoint every N iterations (0: only at epoch end)", min=0)
    keep_last_n: int = _f(0, "keep only the newest N checkpoints (0: keep all)", min=0)
    visualize_training: bool = _f(True, "write training curves and data every epoch")
    tensorboard: bool = _f(False, "also log TensorBoard scalars")
    log_freq: int = _f(50, "print a log line every N iterations", min=1)
    on_bad_sample: Literal["error", "skip"] = _f("error", "a sample that cannot be loaded")
    max_nonfinite_steps: int = _f(0, "consecutive non-finite losses tolerated (skipped) before stopping", min=0)


@dataclass
class InferenceConfig:
    ckpt: str = _f("", "checkpoint (ours or the original's) or exported folder to evaluate", path=True)
    ckpt_root: str = _f("", "folder of checkpoint_XXXXXX[_loss_*].pth files", path=True)
    ckpt_name: str = _f("", "run folder under output/<config stem>/ (the original's ckpt_name; used when ckpt_root is unset)")
    test_epoch: Optional[int] = _f(None, "epoch under ckpt_root (epochs count from 1)", min=0)
    test_epochs: str = _f("", "epoch range under ckpt_root, e.g. '30-60' ('' with no test_epoch: the last epoch)")
    skip_epoch: int = _f(1, "in test_epochs, only epochs divisible by this", min=1)
    batch_size: int = _f(8, "generation batch size", min=1)
    use_au_clip_realtime: bool = _f(False, "AU channel from JSON texts encoded with CLIP in real time")
    mer_factory_output: str = _f("", "MER-Factory output root for every test dataset", path=True)
    frame_sampling: Optional[Literal["uniform", "emotion_peak"]] = _f(None, "override for test datasets")
    frame_n_frms: Optional[int] = _f(None, "override for test datasets", min=1)
    max_new_tokens: int = _f(256, "generation length", min=1)
    do_sample: bool = _f(False, "sample instead of greedy decoding")
    temperature: float = _f(1.0, "sampling temperature", min=0)
    top_p: float = _f(0.9, "sampling nucleus", min=0)
    no_reasoning: bool = _f(False, "ask for labels only (also --no_reasoning)")
    label_extractor: str = _f("lexicon", "'lexicon' or a local LLM path for label extraction", path_or_hub=True)
    emotion_wheel: str = _f(
        "", "the official MER-UniBench emotion-wheel folder (format.csv, synonym.xlsx, wheel1..5.xlsx), or a "
        "word,group CSV / {group: [words]} JSON file", path=True,
    )
    base_root: str = _f("", "the original's results root: results go to {base_root}-{dataset}/ ('' = run.output_dir/results-{dataset})", path=True)
    gpu: Optional[int] = _f(None, "the original's GPU index: run on cuda:{gpu}", min=0)


SECTIONS = {
    "model": ModelConfig,
    "run": RunConfig,
    "inference": InferenceConfig,
}

# A later AffectGPT revision wrote a per-sample caption (read from nonverbal_json) into the prompt
# in place of the AU block; this project keeps the AU block the '_au' part asks for.
_NONVERBAL_JSON = "only read with use_nonverbal_text: True, a later AffectGPT revision's nonverbal text"
_NONVERBAL_OFF = "False switches off a later AffectGPT revision's nonverbal text, which this project does not have"
_NONVERBAL_UNSUPPORTED = (
    "a later AffectGPT revision's nonverbal text (a caption per sample from nonverbal_json, written into the "
    "prompt) is not part of this project; set it to False (the '_au' part of face_or_frame then asks for AU "
    "features; drop that part to train without AU)"
)

# Revision 447851e's inference never read these; a later revision applied them to every test
# dataset. Here the test datasets' own blocks say it, once per dataset.
_LATER_INFERENCE_INPUT = (
    "revision 447851e's inference did not read it; a later revision applied it to every test dataset: set "
    "it in each test dataset's block here"
)

# Keys of the original AffectGPT configs that had no effect there (or only on inputs this
# project does not take, such as single images): accepted so an original config loads, and
# reported once. Each maps to why.
LEGACY_IGNORED = {
    "model": {
        "model_type": "the original never read it",
        "image_fusion_type": "it only applies to single-image inputs, which no dataset here has",
        "num_image_query_token": "it only applies to single-image inputs, which no dataset here has",
        "text_processor": "the original's text processor left subtitles unchanged",
        "img_processor": "it only applies to single-image inputs",
        "low_resource": "the original never read it",
        "device_8bit": "the original never read it",
        "end_sym": "the original never read it",
        "max_txt_len": "the original never read it",
    },
    "datasets": {
        "data_type": "the dataset's name decides its reader",
        "vis_processor": "the model block's vis_processor is the one the original read",
        "text_processor": "the original's text processor left subtitles unchanged",
        "img_processor": "it only applies to single-image inputs",
        "build_info": "paths come from data_root and the *_root keys",
        "use_realtime_extraction": "the original's feature-extraction service is not part of this project "
                                   "(use pre-extracted features or model.skip_encoders: False)",
        "extraction_server_host": "the original's feature-extraction service is not part of this project",
        "extraction_server_port": "the original's feature-extraction service is not part of this project",
        "ann_paths": "the original never read it; a dataset's label file is its label_path, by default the "
                     "dataset's usual file",
        "nonverbal_json": _NONVERBAL_JSON,
        "use_nonverbal_text": _NONVERBAL_OFF,
    },
    "run": {
        "evaluate": "training never evaluates on a validation split here; run inference.py",
        "train_splits": "each dataset block's split key says which split it builds",
        "valid_splits": "there is no validation loop during training",
        "test_splits": "there is no test loop during training; run inference.py",
        "world_size": "torchrun sets the world size",
        "dist_url": "torchrun sets the rendezvous",
        "distributed": "torchrun decides (several processes = distributed)",
        "job_name": "run.output_dir names the run folder",
    },
    "inference": {
        "task": "inference always runs the model's generation",
        "vis_processor": "the model block's vis_processor is the one the original read",
        "text_processor": "the original's text processor left subtitles unchanged",
        "img_processor": "it only applies to single-image inputs",
        "face_or_frame": "the original took face_or_frame from the training datasets' blocks",
        "use_preextracted_features": "the original's inference decoded raw media whatever it said; "
                                     "each dataset block's use_preextracted_* keys decide here",
        "use_preextracted_frame": "no revision's inference read it; each dataset block's use_preextracted_* keys "
                                  "decide",
        "use_preextracted_face": _LATER_INFERENCE_INPUT,
        "use_preextracted_audio": _LATER_INFERENCE_INPUT,
        "use_preextracted_au": _LATER_INFERENCE_INPUT,
        "preextracted_root": _LATER_INFERENCE_INPUT,
        "visual_encoder": _LATER_INFERENCE_INPUT,
        "acoustic_encoder": _LATER_INFERENCE_INPUT,
        "clips_per_video": "the original's inference never read it; each dataset block's clips_per_video decides",
        "nonverbal_json": _NONVERBAL_JSON,
        "use_nonverbal_text": _NONVERBAL_OFF,
    },
}

# Top-level sections of original configs that nothing read; accepted and reported once.
IGNORED_SECTIONS = {
    "evaluation_datasets_cfg": "the original never read it; the test datasets are the blocks of the datasets "
                               "section, and inference.py --dataset picks among them",
}

# Original keys that are accepted only with their harmless value; anything else is an error
# naming what to do instead. section -> key -> (harmless values, message).
UNSUPPORTED_VALUES = {
    "datasets": {
        "use_realtime_extraction": ((False, None), "the original's feature-extraction service is not part of "
                                    "this project; pre-extract features or set model.skip_encoders: False"),
        "use_nonverbal_text": ((False, None), _NONVERBAL_UNSUPPORTED),
    },
    "run": {
        "evaluate": ((False, None), "evaluation during training is not part of this project; run inference.py"),
    },
    "inference": {
        "use_nonverbal_text": ((False, None), _NONVERBAL_UNSUPPORTED),
    },
}

# Keys this project once had and replaced; using one is an error that says what to write now.
REMOVED_KEYS = {
    "model": {
        "qformer_hidden_size": "the Q-Former sizes come from model.qformer_config (a BERT config: hidden_size, "
                               "num_attention_heads, intermediate_size)",
        "qformer_num_heads": "the Q-Former sizes come from model.qformer_config (a BERT config)",
        "qformer_num_layers": "the Q-Formers have 2 layers, as in the original; their sizes come from "
                              "model.qformer_config",
        "qformer_max_positions": "the Q-Former position tables have the original's sizes (32 frames, 8 clips, "
                                 "264 Multi steps)",
    },
}

# Aliases users bring from elsewhere: section -> {alias: canonical key}.
KEY_ALIASES = {
    "run": {"gradient_accumulation_steps": "accum_grad_iters"},
}
VALUE_ALIASES = {
    ("datasets", "label_type"): {"hybird": "hybrid", "onehot": "onehot_wo_candidates"},
    ("run", "runner"): {"runner_base": "runner_iter"},
}
# The original's configs write 'xxx' for "not set" (and 'xxx-xxx' for an unset epoch range).
UNSET_MARKERS = ("xxx", "xxx-xxx")
