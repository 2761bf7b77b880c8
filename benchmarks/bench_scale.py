#!/usr/bin/env python
"""Scale benchmark: the production model sizes with random weights, nothing downloaded.

What is built (setup, not timed), in a temporary folder:

- The LLM: Qwen2.5-7B-Instruct's shapes (hidden 3584, 28 layers, 28 heads, 4 KV heads,
  intermediate 18944, vocabulary 152064, untied output head; 7.6 B parameters), built with
  ``from_config`` straight on the device in bf16 and handed to ``AffectGPT.from_config(cfg,
  llm=...)``, so 15 GB of weights are never written. Its folder holds the config and a small
  byte-level BPE tokenizer (``tiny_models.build_tiny_tokenizer``); the prompts' words are
  single tokens of it, so sequence lengths are close to Qwen's for the same text.
- The 4/8-bit LLM (``model.load_in_4bit`` / ``load_in_8bit``): ``from_pretrained`` with the
  arguments production uses (``llm_utils.llm_load_kwargs``), fed a random bf16 state dict
  from memory instead of a folder.
- The AU Agent (mode 3): ``AUAgent.from_model_config`` loads the same LLM folder, whose
  checkpoint holds no tensors, so ``from_pretrained`` initialises all 7.6 B weights randomly
  (on the CPU, then moved: the slowest part of the setup). It runs on ``cuda:1`` when there
  are two GPUs, else on the model's GPU beside it.
- The encoders: CLIP ViT-L/14 vision tower (+ projection to 768) and HuBERT-large, random
  weights saved in bf16 (1.3 GB) and loaded by ``models/encoders.py``; the AU text encoder is
  open_clip ``ViT-B-32`` with ``pretrained: none``.
- Fusion: the recommended config's (attention for face/audio/AU, Q-Former pre-fusion with
  16 tokens, bert-base-sized Q-Former), ``multiface_audio_face_au_text`` prompts.

Each clip is a synthetic sample as the datasets make it: the real prompt template with a
30-word subtitle, a 160-word description as the answer, face [8, 768] and audio [8, 1024]
features, and per AU mode: 1 ``au`` [8, 512] (pre-extracted .npy), 2 eight ``au_texts``
(CLIP-encoded on the model's GPU), 3 ``au_agent_frames`` (the AU Agent writes the text).
Every clip has a name of its own, so the AU Agent and the CLIP text cache never hit: the
cost of a first epoch.

What is timed, on the device:

- **train**: ``RunnerIter.train_step`` (data stream, bf16 autocast, backward, AdamW from the
  runner's ``build_optimizer``) for each AU mode at batch 1/4/8, gradient checkpointing off and
  on: warmup steps, then timed steps. ms/step, tokens/s (the LLM's attended tokens), MFU,
  peak memory.
- **infer**: ``AffectGPT.generate`` at batch 1 and 16, ``--new-tokens`` each (random weights
  never stop early), after a short warmup generation: answers/s and peak memory.
- **extract**: ``extraction.encode.FeatureEncoders`` over a batch of clips (8 faces + 8 frames
  of 224x224, 8 two-second 16 kHz audio clips, 8 AU texts each): clips/s per encoder and for
  all of them.
- **au agent**: ``AUAgent.describe`` of new frames at ``au_agent_batch_size`` 8: descriptions/s.
- **qlora**: the train measurement of mode 1 with the LLM in 4-bit and in 8-bit, gradient
  checkpointing on, batch 1 and 4; a row says so when bitsandbytes is not installed.

Peak memory is ``torch.cuda.max_memory_allocated`` of the model's GPU from the first warmup
step on (weights, optimizer state, activations; the allocator's cache on top is not counted),
in GiB; with the AU Agent on its own GPU, that GPU's peak is in the check column.

MFU = model FLOPs / step time / the GPU's peak dense bf16 FLOP/s (989 TFLOP/s for H100 SXM and
H200, 756 for H100 PCIe, 312 for A100; ``--peak-tflops`` for others). Model FLOPs count the
LLM only (fusion modules, encoders and the AU Agent are left out; the first two are under 1%),
per sequence of ``t`` attended tokens::

    t * (4 * N_frozen + 6 * N_lora) + 12 * layers * hidden * t**2

``N_frozen``: the base LLM's weights that take part in matrix products (all but the input
embedding table: 7.07 B here, the output head included); a frozen weight costs 2 FLOPs per token
forward and 2 backward (the input gradient; its own gradient is never computed). ``N_lora``:
the LoRA weights, forward + input and weight gradients (6). The last term is attention
(scores and weighted sum, forward and backward, without causal halving, as in PaLM's MFU).
Recomputation under gradient checkpointing is not model FLOPs. The common ``6 * N * tokens``
would count the frozen weights' gradients too and give about 1.5x these MFUs.

Targets on one H100/H200-class GPU: mode 1 peak <= 15 GiB and mode 2 <= 17 GiB at batch 1;
training MFU >= 40% at the best batch size; 4-bit training fits a 24 GiB card.

    python benchmarks/bench_scale.py                    # CUDA, the full table (about 6 min on an H100/H200)
    python benchmarks/bench_scale.py --tiny             # CPU smoke run of the same code paths (< 1 min)
    python benchmarks/bench_scale.py --only train infer --modes 1 2 --peak-tflops 989
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from bench_inference import DecodeSteps  # noqa: E402  (bench_train, imported by it, puts the repository on sys.path)
from bench_train import quiet_libraries, set_threads  # noqa: E402

GIB = 2**30
DATASET = "bench"
FACE_OR_FRAME = "multiface_audio_face_au_text"
MODES = {1: "1 pre-extracted", 2: "2 realtime CLIP", 3: "3 AU Agent"}
SECTIONS = ("extract", "agent", "train", "infer", "qlora")
MEMORY_TARGETS_GIB = {1: 15.0, 2: 17.0}  # training, batch 1
MFU_TARGET = 0.40  # modes 1 and 2: a mode-3 step also waits for the AU Agent's generation
MFU_TARGET_MODES = (1, 2)
AGENT_FRAMES = 1  # model.au_agent_num_frames' default
AGENT_FRAME = {"active_aus": {"AU06_r": 2.1, "AU12_r": 2.6, "AU25_r": 1.2},
               "au_description": "Cheek raiser (intensity: 2.10), lip corner puller (intensity: 2.60)"}
TOKENIZER_VOCAB = 2048  # room for every word of the prompts
QLORA_CARD_GIB = 24.0
# Peak dense bf16 FLOP/s by device name; the first name found in torch's device name wins.
PEAK_BF16_FLOPS = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12))

QWEN25_7B = dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                 intermediate_size=18944, vocab_size=152064, max_position_embeddings=32768, rope_theta=1e6,
                 rms_norm_eps=1e-6, tie_word_embeddings=False)
CLIP_VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=224, patch_size=14, projection_dim=768)
HUBERT_LARGE = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)


@dataclass(frozen=True)
class Scale:
    """Model shapes and measurement sizes of one benchmark run."""

    name: str
    llm: Dict  # Qwen2Config keywords; vocab_size None = the tokenizer's size + room for placeholders
    clip: Dict
    hubert: Dict
    tiny_open_clip: bool  # False: open_clip ViT-B-32
    tiny_qformer: bool  # False: bert-base sizes, as model.qformer_config '' gives
    dtype: str  # llm_dtype, and the encoders' dtype
    warmup: int
    steps: int
    agent_steps: int  # train steps in mode 3, whose steps are long
    new_tokens: int
    agent_new_tokens: int
    extract_clips: int
    extract_rounds: int
    train_batches: Tuple[int, ...] = (1, 4, 8)
    infer_batches: Tuple[int, ...] = (1, 16)
    qlora_batches: Tuple[int, ...] = (1, 4)
    subtitle_words: int = 30
    answer_words: int = 160
    frames: int = 8
    audio_clips: int = 8
    au_rows: int = 8
    agent_batch: int = 8


REAL = Scale("real", QWEN25_7B, CLIP_VIT_L14, HUBERT_LARGE, tiny_open_clip=False, tiny_qformer=False,
             dtype="bf16", warmup=2, steps=3, agent_steps=2, new_tokens=64, agent_new_tokens=96,
             extract_clips=32, extract_rounds=3)
TINY = Scale(
    "tiny",
    dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
         vocab_size=None, max_position_embeddings=2048, tie_word_embeddings=False),
    dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=224,
         patch_size=32, projection_dim=768),
    dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
         conv_dim=(16,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2),
    tiny_open_clip=True, tiny_qformer=True, dtype="fp32", warmup=1, steps=1, agent_steps=1, new_tokens=4,
    agent_new_tokens=4, extract_clips=2, extract_rounds=1, subtitle_words=10, answer_words=40,
)


# --------------------------------------------------------------------------- the table
@dataclass
class Row:
    section: str
    mode: str  # AU mode, or the encoder for extraction rows
    setting: str
    batch: int
    ms: Optional[float]  # per step (train), per batch (infer, extract, au agent)
    rate: Optional[float]
    unit: str
    mfu: Optional[float] = None
    peak_gib: Optional[float] = None
    seq: Optional[float] = None  # mean tokens per training sequence
    checks: List[str] = field(default_factory=list)


COLUMNS = ("section", "AU mode / encoder", "setting", "batch", "ms", "throughput", "MFU", "peak GiB", "tokens/seq",
           "check")


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table of the rows, one line each; numbers to three digits at least."""
    def num(value, suffix=""):
        if value is None:
            return "-"
        return format(value, ",.0f" if value >= 100 else ".1f" if value >= 10 else ".2f") + suffix

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        values = (r.section, r.mode, r.setting, str(r.batch), num(r.ms), num(r.rate, f" {r.unit}"),
                  num(None if r.mfu is None else 100 * r.mfu, "%"), num(r.peak_gib), num(r.seq),
                  "; ".join(r.checks))
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def add_target_checks(rows: Sequence[Row]) -> None:
    """Mark the rows the targets apply to: batch-1 memory of modes 1-2, each mode's best MFU,
    4/8-bit training on a 24 GiB card."""
    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISS"

    train = [r for r in rows if r.section == "train"]
    for mode, limit in MEMORY_TARGETS_GIB.items():
        for r in train:
            if r.mode == MODES[mode] and r.batch == 1 and r.peak_gib is not None:
                r.checks.append(f"peak <= {limit:.0f} GiB: {verdict(r.peak_gib <= limit)}")
    for mode in MFU_TARGET_MODES:
        measured = [r for r in train if r.mode == MODES[mode] and r.mfu is not None]
        if measured:
            best = max(measured, key=lambda r: r.mfu)
            best.checks.append(f"best MFU >= {100 * MFU_TARGET:.0f}%: {verdict(best.mfu >= MFU_TARGET)}")
    for r in rows:
        if r.section == "qlora" and r.peak_gib is not None:
            r.checks.append(f"fits {QLORA_CARD_GIB:.0f} GiB: {verdict(r.peak_gib <= QLORA_CARD_GIB)}")


def peak_flops(device_name: str, override_tflops: Optional[float]) -> Optional[float]:
    """Peak dense bf16 FLOP/s: ``--peak-tflops``, else from the device name, else None (no MFU)."""
    if override_tflops:
        return override_tflops * 1e12
    return next((flops for name, flops in PEAK_BF16_FLOPS if name in device_name), None)


@dataclass(frozen=True)
class LLMShape:
    frozen_matmul_params: int  # every base weight but the input embedding table
    layers: int
    hidden: int

    @classmethod
    def of_config(cls, config) -> "LLMShape":
        """Counted on the meta device: no memory, exact for any config."""
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            llm = AutoModelForCausalLM.from_config(config)
        total = sum(p.numel() for p in llm.parameters())
        if not config.tie_word_embeddings:  # a tied table is also the output head's matrix
            total -= llm.get_input_embeddings().weight.numel()
        return cls(total, config.num_hidden_layers, config.hidden_size)

    def train_flops(self, seq_lengths: Sequence[int], lora_params: int) -> float:
        """Model FLOPs of one training step over sequences of these attended-token counts."""
        per_token = 4 * self.frozen_matmul_params + 6 * lora_params
        return float(sum(t * per_token + 12 * self.layers * self.hidden * t * t for t in seq_lengths))


# --------------------------------------------------------------------------- assets
@dataclass(frozen=True)
class Assets:
    root: Path
    llm: Path  # tokenizer + config.json + a checkpoint without tensors
    qformer: str
    clip: Path
    hubert: Path
    au_clip_model: str
    au_clip_pretrained: str


def prompt_words() -> List[str]:
    from my_affectgpt.common.tiny_models import BASE_CORPUS

    return BASE_CORPUS.replace(".", " ").replace(",", " ").replace(":", " ").split()


def write_llm_folder(folder: Path, scale: Scale) -> Path:
    """Tokenizer, the LLM's ``config.json`` and an empty ``model.safetensors``: ``from_pretrained``
    of this folder (the AU Agent's loader) builds the full-size LLM with random weights.

    The tokenizer learns the benchmark's prompts, so their words and tags are whole tokens as
    they mostly are for Qwen's tokenizer."""
    from safetensors.torch import save_file
    from transformers import Qwen2Config

    from my_affectgpt.common.tiny_models import build_tiny_tokenizer
    from my_affectgpt.conversation.au_agent_prompts import SYSTEM_PROMPT, build_user_message

    clips = [SyntheticClips(scale, mode, 1, "") for mode in sorted(MODES)]
    texts = [c.prompt for c in clips] + au_texts("", 1) + [SYSTEM_PROMPT, build_user_message(AGENT_FRAME)]
    tokenizer = build_tiny_tokenizer(folder, texts, vocab_size=TOKENIZER_VOCAB)
    shape = dict(scale.llm)
    if shape["vocab_size"] is None:
        shape["vocab_size"] = len(tokenizer) + 16
    Qwen2Config(**shape, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=None).save_pretrained(str(folder))
    save_file({}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def write_encoders(root: Path, scale: Scale, device) -> Tuple[Path, Path]:
    """Random CLIP vision (+ projection) and HuBERT checkpoints, built on ``device``."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, HubertConfig, HubertModel

    from my_affectgpt.common.devices import resolve_dtype

    dtype = resolve_dtype(scale.dtype)
    paths = root / "clip_vision", root / "hubert"
    for path, model_cls, config in ((paths[0], CLIPVisionModelWithProjection, CLIPVisionConfig(**scale.clip)),
                                    (paths[1], HubertModel, HubertConfig(**scale.hubert))):
        with torch.device(device):
            model = model_cls(config).to(dtype)
        model.save_pretrained(str(path))
        del model
    return paths


def build_assets(root: Path, scale: Scale, device) -> Assets:
    from my_affectgpt.common.tiny_models import build_tiny_bert_config, build_tiny_open_clip

    llm = write_llm_folder(root / "llm", scale)
    clip, hubert = write_encoders(root, scale, device)
    qformer = str(build_tiny_bert_config(root / "bert", hidden_size=32, num_heads=4)) if scale.tiny_qformer else ""
    if scale.tiny_open_clip:
        clip_json, clip_weights = build_tiny_open_clip(root / "au_clip")
        au_clip = (str(clip_json), str(clip_weights))
    else:
        au_clip = ("ViT-B-32", "none")
    return Assets(root, llm, qformer, clip, hubert, *au_clip)


def random_llm(folder: Path, device, dtype):
    """The LLM of ``folder``'s config with random weights, built on ``device`` in ``dtype``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device(device):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(folder)), dtype=dtype)


def quantized_llm(folder: Path, model_cfg, device):
    """The LLM loaded as production loads it with ``model.load_in_4bit``/``load_in_8bit``, its
    (random) weights coming from memory instead of a folder. UserError without bitsandbytes."""
    from my_affectgpt.models.llm_utils import llm_load_kwargs

    kwargs = llm_load_kwargs(model_cfg)
    source = random_llm(folder, device, kwargs["dtype"])
    llm = type(source).from_pretrained(None, config=source.config, state_dict=source.state_dict(), **kwargs)
    del source
    free_memory()
    return llm


# --------------------------------------------------------------------------- configs and data
def bench_config(assets: Assets, scale: Scale, mode: int, device: str, grad_ckpt: bool = False,
                 quantization: Optional[str] = None, agent_device: str = ""):
    """A validated Config like the recommended ones, in AU mode 1, 2 or 3."""
    from my_affectgpt.common.config import validate

    model = dict(
        arch="affectgpt", llama_model=str(assets.llm), llm_dtype=scale.dtype, skip_encoders=True,
        video_fusion_type="attention", audio_fusion_type="attention", au_fusion_type="attention",
        multi_fusion_type="qformer", num_video_query_token=1, num_audio_query_token=1, num_au_query_token=1,
        num_multi_query_token=16, qformer_config=assets.qformer, au_clip_model=assets.au_clip_model,
        au_clip_pretrained=assets.au_clip_pretrained, gradient_checkpointing=grad_ckpt,
    )
    if quantization:
        model[quantization] = True
    if mode == 3:
        model.update(use_au_agent=True, au_agent_base_model=str(assets.llm), au_agent_device=agent_device,
                     au_agent_max_new_tokens=scale.agent_new_tokens, au_agent_batch_size=scale.agent_batch)
    block = dict(face_or_frame=FACE_OR_FRAME, label_type="description", use_preextracted_features=True,
                 preextracted_root=str(assets.root), use_au_clip_realtime=mode == 2)
    if mode in (2, 3):
        block["mer_factory_output"] = str(assets.root)
    run = dict(device=device, amp=True, amp_dtype="bf16", num_workers=0,
               output_dir=str(assets.root / "out"), visualize_training=False, warmup_steps=0, log_freq=10**6)
    return validate({"model": model, "datasets": {DATASET: block}, "run": run})


class SyntheticClips:
    """Clips as the datasets make them (see the module docstring); item ``i`` is named
    ``{prefix}{i}``, so clips of different prefixes are new to every cache."""

    def __init__(self, scale: Scale, mode: int, size: int, prefix: str):
        from my_affectgpt.common.config_schema import ModelConfig
        from my_affectgpt.conversation.prompts import QUESTION_REASONING, build_prompt

        words = prompt_words()
        subtitle = " ".join(words[i % len(words)] for i in range(scale.subtitle_words))
        self.prompt = build_prompt(FACE_OR_FRAME, subtitle, QUESTION_REASONING, "au_agent" if mode == 3 else "au")
        self.answer = " ".join(words[(7 * i) % len(words)] for i in range(scale.answer_words))
        self.scale, self.mode, self.size, self.prefix = scale, mode, size, prefix
        widths = ModelConfig()  # CLIP ViT-L/14, HuBERT-large and CLIP ViT-B/32 text features
        self.dims = (widths.preextracted_visual_dim, widths.preextracted_acoustic_dim, widths.preextracted_au_dim)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> Dict:
        import torch

        scale, (visual_dim, acoustic_dim, au_dim) = self.scale, self.dims
        name = f"{self.prefix}{i}"
        gen = torch.Generator().manual_seed(i)
        item = {"name": name, "prompt": self.prompt, "answer": self.answer, "max_length": 1024,
                "face": torch.randn(scale.frames, visual_dim, generator=gen),
                "audio": torch.randn(scale.audio_clips, acoustic_dim, generator=gen)}
        if self.mode == 1:
            au = torch.randn(scale.au_rows, au_dim, generator=gen)
            item["au"] = au / au.norm(dim=-1, keepdim=True)
        elif self.mode == 2:
            item["au_texts"] = au_texts(name, scale.au_rows)
        else:
            item["au_agent_frames"] = [{"frame": 1 + 12 * k, **AGENT_FRAME} for k in range(AGENT_FRAMES)]
        return item

    @staticmethod
    def collater(samples: List[Dict]) -> Dict:
        from my_affectgpt.datasets.collate import collate

        return collate(samples)

    def batch(self, start: int, size: int, device) -> Dict:
        from my_affectgpt.runners.runner_iter import move_to_device

        return move_to_device(self.collater([self[i] for i in range(start, start + size)]), device)


def au_texts(name: str, rows: int) -> List[str]:
    """``rows`` MER-Factory-style AU summaries, each mentioning ``name`` so each is new."""
    return [f"Frame {1 + 12 * k} of {name}: the person's cheek raiser (intensity: 2.10) and lip corner "
            f"puller (intensity: 2.60) are active, the lips part and the brows stay relaxed." for k in range(rows)]


# --------------------------------------------------------------------------- measuring
def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> Optional[float]:
    """Peak allocated memory of ``device`` since :func:`reset_peak`; None on the CPU."""
    import torch

    return torch.cuda.max_memory_allocated(device) / GIB if torch.device(device).type == "cuda" else None


def timed(fn: Callable[[], None], device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


class SequenceLengths:
    """Records the attended-token count of every sequence the LLM's forward gets."""

    def __init__(self, llm):
        self.lengths: List = []
        self.handle = llm.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs) -> None:
        self.lengths.append(kwargs["attention_mask"].sum(dim=1))  # read after timing: no sync here

    def take(self) -> List[int]:
        lengths = [int(t) for tensor in self.lengths for t in tensor.tolist()]
        self.lengths = []
        return lengths


@dataclass
class Context:
    """What every measurement needs."""

    scale: Scale
    assets: Assets
    device: str
    agent_device: str  # "" = the model's device
    peak_flops: Optional[float]
    shape: LLMShape
    log: Callable[[str], None]


def agent_note(ctx: Context) -> str:
    if ctx.agent_device:
        return f"AU Agent on {ctx.agent_device}"
    return f"AU Agent on {ctx.device} too (one GPU)" if ctx.device.startswith("cuda") else "AU Agent on the CPU"


def train_rows(ctx: Context, model, cfg, mode: int, section: str, setting: str,
               batch_sizes: Sequence[int]) -> List[Row]:
    """``RunnerIter.train_step`` timings of ``model`` at each batch size (a fresh runner each)."""
    from my_affectgpt.common.registry import registry

    steps = ctx.scale.agent_steps if mode == 3 else ctx.scale.steps
    lora = sum(p.numel() for n, p in model.llama_model.named_parameters() if "lora_" in n and p.requires_grad)
    rows = []
    for bs in batch_sizes:
        size = bs * (ctx.scale.warmup + steps)
        run_cfg = dataclasses.replace(cfg.run, batch_size_train=bs, iters_per_epoch=size // bs)
        bs_cfg = dataclasses.replace(cfg, run=run_cfg)
        data = {DATASET: {"train": SyntheticClips(ctx.scale, mode, size, f"{section}{mode}{setting}{bs}-")}}
        task = registry.get_task_class(cfg.run.task)()
        runner = registry.get_runner_class(cfg.run.runner)(bs_cfg, task, model, data)
        lengths = SequenceLengths(model.llama_model)
        try:
            model.train()
            for device in filter(None, (ctx.device, ctx.agent_device)):
                reset_peak(device)
            for i in range(ctx.scale.warmup):
                runner.run_iteration(1, i, i)
            lengths.take()
            seconds = timed(lambda: [runner.run_iteration(1, i, i) for i in range(ctx.scale.warmup, size // bs)],
                            ctx.device)
        finally:
            lengths.handle.remove()
        seqs = lengths.take()
        flops = ctx.shape.train_flops(seqs, lora)
        row = Row(section, MODES[mode], setting, bs, 1e3 * seconds / steps, sum(seqs) / seconds, "tok/s",
                  None if ctx.peak_flops is None else flops / seconds / ctx.peak_flops, peak_gib(ctx.device),
                  sum(seqs) / len(seqs))
        if mode == 3 and ctx.agent_device:
            row.checks.append(f"{agent_note(ctx)}: peak {peak_gib(ctx.agent_device):.1f} GiB")
        elif mode == 3:
            row.checks.append(agent_note(ctx))
        rows.append(row)
        ctx.log(f"{section} mode {mode} {setting} batch {bs}: {row.ms:,.0f} ms/step, {row.rate:,.0f} tok/s")
        del runner
        free_memory()
    return rows


def infer_rows(ctx: Context, model, mode: int) -> List[Row]:
    """``AffectGPT.generate`` of ``--new-tokens`` per answer at each inference batch size."""
    rows = []
    steps = DecodeSteps(model.llama_model)
    try:
        for bs in ctx.scale.infer_batches:
            clips = SyntheticClips(ctx.scale, mode, 2 * bs, f"infer{mode}-{bs}-")
            warm, batch = clips.batch(0, bs, ctx.device), clips.batch(bs, bs, ctx.device)
            model.generate(warm, max_new_tokens=2)
            steps.steps.clear()
            reset_peak(ctx.device)
            seconds = timed(lambda: model.generate(batch, max_new_tokens=ctx.scale.new_tokens), ctx.device)
            row = Row("infer", MODES[mode], f"{steps.steps[0]} new tokens", bs, 1e3 * seconds, bs / seconds,
                      "answers/s", peak_gib=peak_gib(ctx.device))
            if mode == 3:
                row.checks.append(agent_note(ctx))
            rows.append(row)
            ctx.log(f"infer mode {mode} batch {bs}: {row.rate:.2f} answers/s")
    finally:
        del model.llama_model.generate  # DecodeSteps' wrapper; the class's method shows again
    return rows


def mode_rows(ctx: Context, mode: int, sections: Sequence[str]) -> List[Row]:
    """Training (checkpointing off, then on) and inference rows of one AU mode; each model
    gets a new random LLM."""
    import torch

    from my_affectgpt.models.affectgpt import AffectGPT
    from my_affectgpt.common.devices import resolve_dtype

    rows = []
    for grad_ckpt in (False, True):
        if "train" not in sections and (grad_ckpt or "infer" not in sections):
            continue
        cfg = bench_config(ctx.assets, ctx.scale, mode, ctx.device.split(":")[0], grad_ckpt=grad_ckpt,
                           agent_device=ctx.agent_device)
        torch.manual_seed(0)
        model = AffectGPT.from_config(cfg, llm=random_llm(ctx.assets.llm, ctx.device, resolve_dtype(ctx.scale.dtype)))
        if "train" in sections:
            rows += train_rows(ctx, model, cfg, mode, "train", f"ckpt {'on' if grad_ckpt else 'off'}",
                               ctx.scale.train_batches)
        if not grad_ckpt and "infer" in sections:
            rows += infer_rows(ctx, model.to(ctx.device), mode)
        del model
        free_memory()
    return rows


def qlora_rows(ctx: Context) -> List[Row]:
    """Mode-1 training with the base LLM in 4-bit and in 8-bit, gradient checkpointing on."""
    import torch

    from my_affectgpt.common.errors import UserError
    from my_affectgpt.models.affectgpt import AffectGPT

    rows = []
    for key, setting in (("load_in_4bit", "4-bit NF4, ckpt on"), ("load_in_8bit", "8-bit, ckpt on")):
        cfg = bench_config(ctx.assets, ctx.scale, 1, ctx.device.split(":")[0], grad_ckpt=True, quantization=key)
        try:
            llm = quantized_llm(ctx.assets.llm, cfg.model, ctx.device)
        except UserError as err:
            rows.append(Row("qlora", MODES[1], setting, 0, None, None, "tok/s", checks=[f"not run: {err}"]))
            ctx.log(f"qlora {setting}: not run: {err}")
            continue
        torch.manual_seed(0)
        model = AffectGPT.from_config(cfg, llm=llm)
        rows += train_rows(ctx, model, cfg, 1, "qlora", setting, ctx.scale.qlora_batches)
        del model, llm
        free_memory()
    return rows


def agent_rows(ctx: Context) -> List[Row]:
    """``AUAgent.describe`` throughput on the agent's device."""
    from my_affectgpt.models.au_agent import AUAgent

    cfg = bench_config(ctx.assets, ctx.scale, 3, ctx.device.split(":")[0], agent_device=ctx.agent_device)
    agent = AUAgent.from_model_config(cfg.model, default_device=ctx.device)
    frame = SyntheticClips(ctx.scale, 3, 1, "agent")[0]["au_agent_frames"][0]
    n = ctx.scale.agent_batch

    def items(prefix: str):
        return [((f"{prefix}{i}", 1), frame) for i in range(n)]

    agent.describe(items("warm"))
    reset_peak(agent.device)
    seconds = timed(lambda: agent.describe(items("timed")), agent.device)
    row = Row("au agent", MODES[3], f"{ctx.scale.agent_new_tokens} new tokens", n, 1e3 * seconds, n / seconds,
              "descriptions/s", peak_gib=peak_gib(agent.device), checks=[agent_note(ctx)])
    ctx.log(f"au agent: {row.rate:.2f} descriptions/s on {agent.device}")
    del agent
    free_memory()
    return [row]


def extract_rows(ctx: Context) -> List[Row]:
    """``FeatureEncoders`` over ``extract_clips`` clips per pass: clips/s per encoder and in all."""
    import numpy as np

    from my_affectgpt.extraction.encode import EncoderSpec, FeatureEncoders

    scale, assets = ctx.scale, ctx.assets
    spec = EncoderSpec("CLIP_VIT_LARGE", str(assets.clip), "HUBERT_LARGE", str(assets.hubert),
                       assets.au_clip_model, assets.au_clip_pretrained, device=ctx.device, dtype=scale.dtype)
    n = scale.extract_clips
    encoders = FeatureEncoders(spec, ("face", "frame", "audio", "au"), n, {"frame": scale.frames, "audio": scale.audio_clips})
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (scale.frames, 224, 224, 3), dtype=np.uint8) for _ in range(n)]
    waves = [rng.standard_normal((scale.audio_clips, 32000)).astype(np.float32) for _ in range(n)]
    passes = {
        "CLIP ViT-L/14 (faces + frames)": lambda r: [encoders.encode(m, images) for m in ("face", "frame")],
        "HuBERT-large (audio)": lambda r: encoders.encode("audio", waves),
        "CLIP ViT-B/32 text (AU)": lambda r: encoders.encode("au", [au_texts(f"x{r}-{i}", scale.au_rows) for i in range(n)]),
    }
    seconds = {}
    peaks = {}
    for name, encode in passes.items():
        encode(-1)  # warmup
        reset_peak(ctx.device)
        seconds[name] = sum(timed(lambda r=r: encode(r), ctx.device) for r in range(scale.extract_rounds))
        peaks[name] = peak_gib(ctx.device)
    clips = n * scale.extract_rounds
    rows = [Row("extract", name, f"{scale.dtype}, {n} clips per pass", n, 1e3 * s / scale.extract_rounds, clips / s,
                "clips/s", peak_gib=peaks[name]) for name, s in seconds.items()]
    total = sum(seconds.values())
    measured_peaks = [p for p in peaks.values() if p is not None]
    rows.append(Row("extract", "all encoders", f"{scale.dtype}, {n} clips per pass", n, 1e3 * total / scale.extract_rounds,
                    clips / total, "clips/s", peak_gib=max(measured_peaks, default=None)))
    ctx.log(f"extract: {clips / total:.1f} clips/s with every encoder")
    del encoders
    free_memory()
    return rows


# --------------------------------------------------------------------------- the run
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU: the same code paths in under a minute")
    parser.add_argument("--device", help="default: cuda (cpu with --tiny)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--modes", nargs="+", type=int, choices=sorted(MODES), default=sorted(MODES), help="AU modes")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak dense bf16 TFLOP/s (default: by GPU name)")
    parser.add_argument("--steps", type=int, help="timed training steps (mode 3: this too)")
    parser.add_argument("--new-tokens", type=int, help="new tokens per answer in the inference rows")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> Tuple[List[Row], str]:
    """All requested measurements; returns the rows and a line describing the machine."""
    import torch
    from transformers import AutoConfig

    import my_affectgpt

    my_affectgpt.import_components()
    scale = TINY if args.tiny else REAL
    overrides = {}
    if args.steps:
        overrides.update(steps=args.steps, agent_steps=args.steps)
    if args.new_tokens:
        overrides["new_tokens"] = args.new_tokens
    scale = dataclasses.replace(scale, **overrides)
    device = args.device or ("cpu" if args.tiny else "cuda")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU here: run with --tiny (CPU), or on a GPU machine")
        device = f"cuda:{torch.cuda.current_device()}"
    on_gpu = device.startswith("cuda")
    device_name = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    agent_device = "cuda:1" if on_gpu and torch.cuda.device_count() > 1 and device != "cuda:1" else ""
    started = time.perf_counter()

    def progress(message: str) -> None:
        log(f"[{time.perf_counter() - started:6.1f}s] {message}")

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        assets = build_assets(Path(tmp), scale, device)
        shape = LLMShape.of_config(AutoConfig.from_pretrained(str(assets.llm)))
        ctx = Context(scale, assets, device, agent_device, peak_flops(device_name, args.peak_tflops), shape, progress)
        progress(f"{scale.name} shapes on {device_name}: LLM {shape.frozen_matmul_params / 1e9:.2f} B matmul weights")
        rows: List[Row] = []
        if "extract" in args.only:
            rows += extract_rows(ctx)
        if "agent" in args.only and 3 in args.modes:
            rows += agent_rows(ctx)
        for mode in args.modes:
            rows += mode_rows(ctx, mode, args.only)
        if "qlora" in args.only:
            rows += qlora_rows(ctx)
    add_target_checks(rows)
    gpus = torch.cuda.device_count() if on_gpu else 0
    machine = (f"{time.strftime('%Y-%m-%d')}, {device_name}" + (f" x{gpus}" if gpus > 1 else "")
               + f", torch {torch.__version__}, {scale.name} shapes, peak "
               + (f"{ctx.peak_flops / 1e12:.0f} TFLOP/s" if ctx.peak_flops else "FLOP/s unknown (no MFU)")
               + f", {time.perf_counter() - started:.0f} s")
    return rows, machine


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    if args.tiny:
        set_threads(1)  # steady CPU timings on a small shared machine (see bench_train.set_threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the AU Agent's checkpoint has no tensors: a 7 B "missing weights" report
    rows, machine = run(args, log=lambda message: print(message, file=sys.stderr, flush=True))
    print(machine)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
