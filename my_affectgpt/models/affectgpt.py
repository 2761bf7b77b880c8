"""AffectGPT: modality features -> fusion tokens spliced into a causal LLM's prompt.

The model owns tokenisation. A batch (see docs/ARCHITECTURE.md) carries the prompt and
answer strings plus the modality inputs the prompts need; each prompt holds one placeholder
per modality block (``<FaceHere>``, ``<AudioHere>``, ...), which the model expands to that
modality's query-token count and replaces with the fusion branch's output embeddings.

Only the branches the configured prompts use are built, so every trainable parameter gets a
gradient (DDP needs no ``find_unused_parameters``):

- ``video`` (frame and face share it), ``audio``, ``multi`` (face-or-frame + audio
  pre-fusion) and ``au``, each a :class:`~my_affectgpt.models.fusion.FusionBranch`.
- Frozen frame/face and audio encoders, only when ``skip_encoders`` is False and a dataset
  reads raw media.
- The AU CLIP text tower (shared per process, outside the state dict) when AU texts are
  encoded in real time.

Where each part runs is decided in one place (:class:`Placement`, from the LLM's device and
dtype) and applied in one place (``_place_parts``), when the model is built and whenever it
is moved or cast (``to``, ``cuda``, ...): the fusion branches beside the LLM in float32, the
encoders and the AU CLIP text tower beside it in its dtype, the AU Agent on
``model.au_agent_device`` (or beside it). Features enter a fusion branch in float32 and its
output enters the LLM in the LLM's embedding dtype, under autocast or not.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from my_affectgpt.common.atomic import write_folder_atomic
from my_affectgpt.common.config_schema import ModelConfig
from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.common.face_or_frame import parse_face_or_frame
from my_affectgpt.common.registry import registry
from my_affectgpt.models.fusion import build_branch, build_multi_branch
from my_affectgpt.models.llm_utils import add_lora, freeze_for_adapters, llm_load_kwargs, load_pretrained
from my_affectgpt.models.original_names import OriginalNames
from my_affectgpt.models.qformer import load_qformer_bert_config

logger = logging.getLogger("my_affectgpt")

PLACEHOLDERS = {
    "frame": "<FrameHere>",
    "face": "<FaceHere>",
    "audio": "<AudioHere>",
    "multi": "<MultiHere>",
    "au": "<AUHere>",
}
# Which fusion branch turns each placeholder's modality into embeddings.
BRANCH_OF = {"frame": "video", "face": "video", "audio": "audio", "multi": "multi", "au": "au"}
AU_AGENT_MARKER = "<AUAgentText>"
ANSWER_END = "###"
QWEN_BOS = "<|im_start|>"
IGNORE_INDEX = -100
DEFAULT_MAX_LENGTH = 1024

# Widths of common encoders, to say which encoder made features of the wrong width.
KNOWN_WIDTHS = {
    "visual": {768: "CLIP ViT-L/14 image features", 512: "CLIP ViT-B/32 or ViT-B/16 image features",
               1024: "CLIP ViT-H/14 image features"},
    "acoustic": {1024: "HuBERT-large features", 768: "HuBERT-base features"},
    "au": {512: "CLIP ViT-B/32 text features", 768: "CLIP ViT-L/14 text features",
           1024: "CLIP ViT-H/14 text features"},
}
STREAM_KIND = {"frame": "visual", "face": "visual", "audio": "acoustic", "au": "au"}
DIM_KEY = {"visual": "preextracted_visual_dim", "acoustic": "preextracted_acoustic_dim", "au": "preextracted_au_dim"}
RAW_KEY = {"frame": "frame_pixels", "face": "face_pixels", "audio": "audio_wave"}

# The fusion branches train in float32 whatever the LLM's dtype.
FUSION_DTYPE = torch.float32

EXPORT_FUSION = "fusion.safetensors"
EXPORT_ADAPTER = "adapter"
EXPORT_CONFIG = "config.yaml"


class ModelInputError(UserError, ValueError):
    """A batch the model cannot use; the message names the sample or key and the fix."""


class PromptTooLongError(ModelInputError):
    """A prompt that does not fit in ``max_length`` even with an empty answer."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


class StateDictMismatchError(UserError, ValueError):
    """Trainable weights whose names or shapes do not match this model."""


@dataclass(frozen=True)
class PromptNeeds:
    """What the configured datasets' prompts need from the model."""

    contents: frozenset  # placeholder modalities: frame, face, audio, multi, au
    raw_visual: bool  # frames/faces arrive as pixels (encoder needed)
    raw_acoustic: bool
    au_realtime: bool

    @classmethod
    def from_config(cls, cfg) -> "PromptNeeds":
        """From a validated Config: every dataset block's ``face_or_frame``, which streams it
        reads raw, and its AU mode (decided by the config)."""
        contents, raw_visual, raw_acoustic, au_realtime = set(), False, False, False
        for name, ds in cfg.datasets.items():
            layout = parse_face_or_frame(ds.face_or_frame)
            contents |= {m for m in layout.contents if m != "text"}
            raw = {s for s in layout.streams if not getattr(ds, f"use_preextracted_{s}")}
            raw_visual |= bool({"face", "frame"} & raw)
            raw_acoustic |= "audio" in raw
            mode = cfg.au_mode(name)
            if mode in ("preextracted", "realtime"):
                contents.add("au")
                au_realtime |= mode == "realtime"
        return cls(frozenset(contents), raw_visual, raw_acoustic, au_realtime)


@dataclass(frozen=True)
class Placement:
    """Where the model's parts run, and in which dtype.

    ``device``/``dtype``: the LLM's (its input embeddings'); the frozen encoders and the AU CLIP
    text tower run there in that dtype, the fusion branches there in ``fusion_dtype``. The AU
    Agent runs on ``au_agent_device`` in the dtype it was loaded in.
    """

    device: torch.device
    dtype: torch.dtype
    au_agent_device: torch.device
    fusion_dtype: torch.dtype = FUSION_DTYPE


def _describe_width(kind: str, width: int) -> str:
    return KNOWN_WIDTHS[kind].get(width, "no encoder this project knows")


def _check_width(stream: str, feats: torch.Tensor, expected: int) -> None:
    found = feats.shape[-1]
    if found == expected:
        return
    kind = STREAM_KIND[stream]
    key = DIM_KEY[kind]
    label = "AU" if stream == "au" else stream
    raise ModelInputError(
        f"{label} features are {found} wide but model.{key} is {expected} "
        f"({_describe_width(kind, expected)} are {expected}; {found} is {_describe_width(kind, found)}). "
        f"Re-extract the {label} features with the encoder that gives {expected}, or set "
        f"model.{key}: {found} and train the fusion modules for that width"
    )


def _per_sample(value, batch_size: int, default) -> list:
    if value is None:
        return [default] * batch_size
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * batch_size


@registry.register_model("affectgpt")
class AffectGPT(nn.Module):
    """The AffectGPT model; build it with :meth:`from_config`."""

    def __init__(self, cfg: ModelConfig, needs: PromptNeeds, llm=None):
        super().__init__()
        self.cfg = cfg
        self.needs = needs
        self._load_llm(llm)
        self.branches = self._build_branches(self.llama_model.get_input_embeddings().embedding_dim)
        self._load_encoders()
        # Neither is a submodule: both are frozen, never saved, and placed by _place_parts.
        self._au_text_encoder = None  # shared per process (au_clip)
        self._au_agent = None  # may run on its own device
        if needs.au_realtime:
            self._au_encoder()
        self._place_parts()

    @classmethod
    def from_config(cls, cfg, llm=None) -> "AffectGPT":
        """Build from a validated Config: its ``model`` section and its dataset blocks, which
        say which modalities the prompts use.

        ``llm``: an already built causal LM to use instead of loading the weights at
        ``model.llama_model`` (whose tokenizer is still loaded); benchmarks/bench_scale.py
        builds real-size LLMs with random weights this way, without writing them to disk.
        """
        if not cfg.datasets:
            raise UserError("the model needs at least one dataset block to know which modalities prompts use")
        return cls(cfg.model, PromptNeeds.from_config(cfg), llm)

    # ------------------------------------------------------------------ building
    def _load_llm(self, llm=None) -> None:
        """Tokenizer with the placeholder tokens, and the frozen LLM (``llm``, or the weights at
        ``model.llama_model``, in 4/8 bit when configured) with its LoRA adapter."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.cfg
        tokenizer = load_pretrained(AutoTokenizer, cfg.llama_model, "model.llama_model")
        for token in PLACEHOLDERS.values():  # one at a time, as the original adds them
            tokenizer.add_tokens([token], special_tokens=True)
        if tokenizer.eos_token_id is None:
            raise UserError(f"model.llama_model: the tokenizer at {cfg.llama_model} has no eos token; answers cannot end")
        tokenizer.pad_token = tokenizer.eos_token  # as the original: padding is eos, and hidden from attention
        # The token training sequences start with: the tokenizer's bos, or for Qwen (which has
        # none) <|im_start|>, as the original sets it. Generation prompts start without one,
        # as the original's inference does.
        bos = tokenizer.bos_token_id
        if bos is None and QWEN_BOS in tokenizer.get_vocab():
            bos = tokenizer.convert_tokens_to_ids(QWEN_BOS)
        self._train_bos = [] if bos is None else [bos]
        self.tokenizer = tokenizer
        self.placeholder_ids = {m: tokenizer.convert_tokens_to_ids(t) for m, t in PLACEHOLDERS.items()}
        self._modality_of_id = {i: m for m, i in self.placeholder_ids.items()}

        if llm is None:
            llm = load_pretrained(AutoModelForCausalLM, cfg.llama_model, "model.llama_model", **llm_load_kwargs(cfg))
        self._fit_vocabulary(llm, len(tokenizer))
        llm = freeze_for_adapters(llm, cfg)
        if cfg.use_lora:
            llm = add_lora(llm, cfg)
            if cfg.frozen_llm:  # the original's switch: the adapter stays at its (loaded) weights
                for name, param in llm.named_parameters():
                    if "lora_" in name:
                        param.requires_grad_(False)
        self.llama_model = llm

    @staticmethod
    def _fit_vocabulary(llm, vocab_size: int) -> None:
        """Grow the embeddings only if the added tokens do not fit; new rows are the old mean.

        The new rows are set deterministically, so a model rebuilt from the same base LLM
        (when loading an export) has the same embeddings; generation never emits them.
        """
        old = llm.get_input_embeddings().num_embeddings
        if vocab_size <= old:
            return
        llm.resize_token_embeddings(vocab_size, mean_resizing=False)
        tables = [llm.get_input_embeddings()]
        head = llm.get_output_embeddings()
        if head is not None and head.weight is not tables[0].weight:  # untied output head
            tables.append(head)
        with torch.no_grad():
            for table in tables:
                table.weight[old:] = table.weight[:old].mean(dim=0)

    def _build_branches(self, llm_width: int) -> nn.ModuleDict:
        cfg, contents = self.cfg, self.needs.contents
        bert = load_qformer_bert_config(cfg.qformer_config)
        branches = nn.ModuleDict()
        if {"frame", "face"} & contents:
            branches["video"] = build_branch(
                "video", cfg.video_fusion_type, cfg.preextracted_visual_dim, cfg.num_video_query_token, llm_width,
                bert, cfg.frozen_video_Qformer, cfg.frozen_video_proj)
        if "audio" in contents:
            branches["audio"] = build_branch(
                "audio", cfg.audio_fusion_type, cfg.preextracted_acoustic_dim, cfg.num_audio_query_token, llm_width,
                bert, cfg.frozen_audio_Qformer, cfg.frozen_audio_proj)
        if "multi" in contents:
            branches["multi"] = build_multi_branch(
                cfg.multi_fusion_type, cfg.preextracted_visual_dim, cfg.preextracted_acoustic_dim,
                cfg.num_multi_query_token, llm_width, bert, cfg.frozen_multi_Qformer, cfg.frozen_multi_llama_proj)
        if "au" in contents:
            branches["au"] = build_branch(
                "au", cfg.au_fusion_type, cfg.preextracted_au_dim, cfg.num_au_query_token, llm_width,
                bert, cfg.frozen_au_Qformer, cfg.frozen_au_proj)
        return branches

    def _load_encoders(self) -> None:
        """Frozen frame/face and audio encoders, when media arrive raw and encoders are not skipped."""
        cfg = self.cfg
        self.visual_encoder = self.acoustic_encoder = None
        if cfg.skip_encoders:
            return
        from my_affectgpt.models.encoders import build_encoder

        for kind, needed, name, path_key in (
            ("visual", self.needs.raw_visual, cfg.visual_encoder, "visual_encoder_path"),
            ("acoustic", self.needs.raw_acoustic, cfg.acoustic_encoder, "acoustic_encoder_path"),
        ):
            if not needed:
                continue
            path = getattr(cfg, path_key)
            if not path:
                raise UserError(
                    f"model.skip_encoders is False and a dataset reads raw {kind} media, but "
                    f"model.{path_key} is empty; set it to the {name} checkpoint"
                )
            encoder = build_encoder(name, path)  # placed beside the LLM by _place_parts
            expected = getattr(cfg, DIM_KEY[kind])
            if encoder.out_dim != expected:
                raise UserError(
                    f"model.{path_key} ({path}) gives {encoder.out_dim}-wide features but "
                    f"model.{DIM_KEY[kind]} is {expected} ({_describe_width(kind, expected)} are {expected}); "
                    f"use the matching encoder or set model.{DIM_KEY[kind]}: {encoder.out_dim}"
                )
            setattr(self, f"{kind}_encoder", encoder)

    def _au_encoder(self):
        """The shared AU CLIP text encoder, loaded on first use where :attr:`placement` says."""
        from my_affectgpt.models.au_clip import AUClipTextEncoder

        if self._au_text_encoder is None:
            where = self.placement
            self._au_text_encoder = AUClipTextEncoder(
                self.cfg.au_clip_model, self.cfg.au_clip_pretrained, device=where.device, dtype=where.dtype)
        return self._au_text_encoder

    def _au_agent_model(self):
        """The AU Agent, loaded on first use where :attr:`placement` says."""
        from my_affectgpt.models.au_agent import AUAgent

        if self._au_agent is None:
            self._au_agent = AUAgent.from_model_config(self.cfg, default_device=str(self.placement.au_agent_device))
        return self._au_agent

    # ------------------------------------------------------------------ placement
    @property
    def device(self) -> torch.device:
        return self.llama_model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.llama_model.get_input_embeddings().weight.dtype

    @property
    def placement(self) -> Placement:
        """Where each part belongs, following the LLM."""
        from my_affectgpt.models.au_agent import au_agent_device

        return Placement(self.device, self.dtype, au_agent_device(self.cfg, self.device))

    def _place_parts(self) -> None:
        """Put every part where :attr:`placement` says: the one place that moves them."""
        where = self.placement
        self.branches.to(device=where.device, dtype=where.fusion_dtype)
        for encoder in (self.visual_encoder, self.acoustic_encoder):
            if encoder is not None:
                encoder.to(device=where.device, dtype=where.dtype)
        if self._au_text_encoder is not None:
            self._au_text_encoder.to(where.device, where.dtype)
        if self._au_agent is not None:
            self._au_agent.to(where.au_agent_device)

    def _apply(self, fn, recurse=True):
        """Every move or cast of the model (``to``, ``cuda``, ``cpu``, ``half``, ...) goes
        through here: after the submodules, the parts are placed again after the LLM, so the
        AU CLIP text tower and the AU Agent (not submodules) follow it and the fusion branches
        stay in float32."""
        super()._apply(fn, recurse)
        self._place_parts()
        return self

    # ------------------------------------------------------------------ tokenisation
    def _num_tokens(self, modality: str) -> int:
        cfg = self.cfg
        return {
            "frame": cfg.num_video_query_token, "face": cfg.num_video_query_token,
            "audio": cfg.num_audio_query_token, "multi": cfg.num_multi_query_token,
            "au": cfg.num_au_query_token,
        }.get(modality, 1)

    def _prompt_ids(self, prompt: str, name: str, agent_text: Optional[str]) -> List[int]:
        """The prompt's tokens with each placeholder repeated to its query-token count."""
        if AU_AGENT_MARKER in prompt:
            if agent_text is None:
                raise ModelInputError(
                    f"sample '{name}': the prompt has {AU_AGENT_MARKER} but the batch has no "
                    "au_agent_texts; run the AU Agent (model.use_au_agent) before the model"
                )
            prompt = prompt.replace(AU_AGENT_MARKER, agent_text)
        ids = []
        for token in self.tokenizer(prompt, add_special_tokens=False).input_ids:
            modality = self._modality_of_id.get(token)
            ids.extend([token] * (self._num_tokens(modality) if modality else 1))
        return ids

    def au_agent_texts(self, batch: Mapping, names: List[str]) -> Optional[List[str]]:
        """AU-Agent mode: the batch's ``au_agent_texts``, generated from ``au_agent_frames`` by the
        AU Agent when not given (loaded on first use, on ``model.au_agent_device``)."""
        if batch.get("au_agent_texts") is not None or batch.get("au_agent_frames") is None:
            return batch.get("au_agent_texts")
        if not self.cfg.use_au_agent:
            raise ModelInputError("the batch has au_agent_frames but model.use_au_agent is False")
        return self._au_agent_model().describe_batch(names, batch["au_agent_frames"])

    def _tokenize(self, batch: Mapping, with_answers: bool) -> Tuple[List[List[int]], List[List[int]]]:
        """Per-sample token ids and labels, laid out as the original lays them out.

        Training: ``[bos] + prompt + tokens(answer + "###") + [eos]``, the labels -100 over bos
        and prompt. Generation: the prompt alone. Prompt and answer fit in ``max_length``
        (bos and eos come on top, as in the original); a longer answer is cut to fit.
        """
        prompts = list(batch["prompt"])
        size = len(prompts)
        names = self._names(batch)
        max_lengths = _per_sample(batch.get("max_length"), size, DEFAULT_MAX_LENGTH)
        agent_texts = _per_sample(self.au_agent_texts(batch, names), size, None)
        answers = _per_sample(batch.get("answer"), size, None) if with_answers else [None] * size
        all_ids, all_labels = [], []
        for i in range(size):
            prefix = self._prompt_ids(prompts[i], names[i], agent_texts[i])
            limit = int(max_lengths[i])
            room = limit - len(prefix)  # training needs at least one answer token; generation none
            if room < (1 if with_answers else 0):
                raise PromptTooLongError(
                    f"sample '{names[i]}': the prompt is {len(prefix)} tokens (modality tokens included), "
                    f"which leaves no room for an answer within max_length {limit}; raise max_length or "
                    "shorten the subtitle", names[i],
                )
            if with_answers:
                if answers[i] is None:
                    raise ModelInputError(f"sample '{names[i]}': the batch has no answer for training")
                target = self.tokenizer(answers[i] + ANSWER_END, add_special_tokens=False).input_ids[:room]
                target = target + [self.tokenizer.eos_token_id]
                prefix = self._train_bos + prefix
            else:
                target = []
            all_ids.append(prefix + target)
            all_labels.append([IGNORE_INDEX] * len(prefix) + target)
        return all_ids, all_labels

    def _pad(self, rows: List[List[int]], value: int, left: bool) -> torch.Tensor:
        width = max(len(r) for r in rows)
        padded = [([value] * (width - len(r)) + r) if left else (r + [value] * (width - len(r))) for r in rows]
        return torch.tensor(padded, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ modality embeddings
    def _stream(self, batch: Mapping, stream: str, cache: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Frame/face/audio features ``[B, T, D]``, from the batch or from raw media via the encoder."""
        if stream in cache:
            return cache[stream]
        raw_key = RAW_KEY[stream]
        if stream in batch:
            feats = batch[stream].to(self.device)
        elif raw_key in batch:
            encoder = self.acoustic_encoder if stream == "audio" else self.visual_encoder
            if encoder is None:
                raise ModelInputError(
                    f"the batch has raw '{raw_key}' but no {stream} encoder is loaded: set "
                    "model.skip_encoders: False with the encoder path, or use pre-extracted features"
                )
            raw = batch[raw_key].to(self.device)
            feats = encoder(raw.flatten(0, 1) if stream == "audio" else raw).view(*raw.shape[:2], -1)
        else:
            raise ModelInputError(
                f"the prompts need {stream} but the batch has neither '{stream}' nor '{raw_key}'"
            )
        if feats.ndim != 3:
            raise ModelInputError(f"'{stream}' features must be [batch, time, width], got {tuple(feats.shape)}")
        _check_width(stream, feats, getattr(self.cfg, DIM_KEY[STREAM_KIND[stream]]))
        cache[stream] = feats
        return feats

    def _au_features(self, batch: Mapping) -> Tuple[torch.Tensor, torch.Tensor]:
        """AU features ``[B, N, 512]`` and mask ``[B, N]``, pre-encoded or CLIP-encoded from texts."""
        if "au" in batch and "au_texts" in batch:
            raise ModelInputError("the batch has both 'au' and 'au_texts'; the dataset must give one AU mode")
        if "au_texts" in batch:
            feats, mask = self._encode_au_texts(batch["au_texts"])
        elif "au" in batch:
            feats = batch["au"].to(self.device)
            mask = batch.get("au_mask")
            mask = torch.ones(feats.shape[:2], dtype=torch.bool) if mask is None else mask
            mask = mask.to(device=self.device, dtype=torch.bool)
        else:
            raise ModelInputError("the prompts have <AUHere> but the batch has neither 'au' nor 'au_texts'")
        if feats.ndim != 3:
            raise ModelInputError(f"'au' features must be [batch, rows, width], got {tuple(feats.shape)}")
        _check_width("au", feats, self.cfg.preextracted_au_dim)
        return feats, mask

    def _encode_au_texts(self, texts_per_sample: Sequence[Sequence[str]]) -> Tuple[torch.Tensor, torch.Tensor]:
        encoder = self._au_encoder()
        flat = [t for texts in texts_per_sample for t in texts]
        feats = encoder.encode(flat)
        rows = max([len(t) for t in texts_per_sample] + [0])
        out = feats.new_zeros(len(texts_per_sample), rows, feats.shape[-1])
        mask = torch.zeros(len(texts_per_sample), rows, dtype=torch.bool, device=feats.device)
        start = 0
        for i, texts in enumerate(texts_per_sample):
            out[i, : len(texts)] = feats[start:start + len(texts)]
            mask[i, : len(texts)] = True
            start += len(texts)
        return out, mask

    def _modality_embeddings(self, batch: Mapping, used: Iterable[str]) -> Dict[str, torch.Tensor]:
        cache: Dict[str, torch.Tensor] = {}
        out = {}
        for modality in used:
            branch_name = BRANCH_OF.get(modality)
            if branch_name not in self.branches:
                raise ModelInputError(
                    f"the prompts use {PLACEHOLDERS[modality]} but this model has no {modality} branch; it was "
                    f"built for prompts with {', '.join(sorted(self.needs.contents)) or 'text only'} "
                    "(check the datasets' face_or_frame and use_au)"
                )
            branch = self.branches[branch_name]
            if modality == "multi":
                visual = "face" if ("face" in batch or "face_pixels" in batch) else "frame"
                out[modality] = branch(self._stream(batch, visual, cache), self._stream(batch, "audio", cache))
            elif modality == "au":
                feats, mask = self._au_features(batch)
                out[modality] = branch(feats, mask=mask)
            else:
                out[modality] = branch(self._stream(batch, modality, cache))
        return out

    def _inputs_embeds(self, batch: Mapping, input_ids: torch.Tensor, names: List[str]) -> torch.Tensor:
        """Token embeddings with every placeholder row replaced by its modality embedding."""
        present = {self._modality_of_id[i] for i in input_ids.unique().tolist() if i in self._modality_of_id}
        used = [m for m in PLACEHOLDERS if m in present]
        modality_embeds = self._modality_embeddings(batch, used)
        for modality, token_id in self.placeholder_ids.items():
            counts = (input_ids == token_id).sum(dim=1).tolist()
            rows = modality_embeds[modality].shape[1] if modality in modality_embeds else 0
            for name, count in zip(names, counts):
                if count != rows:
                    raise ModelInputError(
                        f"sample '{name}': the prompt has {count} {PLACEHOLDERS[modality]} tokens after "
                        f"expansion but the {modality} embeddings have {rows} rows; a prompt needs exactly one "
                        f"{PLACEHOLDERS[modality]} per {modality} block (the model repeats it to "
                        f"num_*_query_token)"
                    )
        embeds = self.llama_model.get_input_embeddings()(input_ids)
        for modality, feats in modality_embeds.items():
            mask = (input_ids == self.placeholder_ids[modality]).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(mask, feats.to(embeds.dtype))
        return embeds

    def _names(self, batch: Mapping) -> List[str]:
        names = _per_sample(batch.get("names"), len(batch["prompt"]), None)
        return [n if n is not None else f"#{i}" for i, n in enumerate(names)]

    # ------------------------------------------------------------------ training / generation
    def llm_inputs(self, batch: Mapping, with_answers: bool = True) -> Dict[str, torch.Tensor]:
        """What the LLM is called with: ``inputs_embeds``, ``attention_mask`` and (training)
        ``labels``, right-padded for training and left-padded for generation.

        As in the original, whose pad token is its eos token, the attention mask also hides
        the eos that closes a training sequence; it changes only the logits at that position.
        """
        ids, labels = self._tokenize(batch, with_answers=with_answers)
        left = not with_answers
        input_ids = self._pad(ids, self.tokenizer.pad_token_id, left=left)
        attention_mask = self._pad([[1] * len(r) for r in ids], 0, left=left).bool()
        if with_answers:
            attention_mask &= input_ids != self.tokenizer.eos_token_id
        inputs = {"inputs_embeds": self._inputs_embeds(batch, input_ids, self._names(batch)),
                  "attention_mask": attention_mask}
        if with_answers:
            inputs["labels"] = self._pad(labels, IGNORE_INDEX, left=False)
        return inputs

    def forward(self, batch: Mapping) -> Dict[str, torch.Tensor]:
        return {"loss": self.llama_model(**self.llm_inputs(batch)).loss}

    @torch.no_grad()
    def generate(self, batch: Mapping, max_new_tokens: int = 256, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 0.9) -> List[str]:
        """Answers for the batch's prompts: left-padded, greedy unless ``do_sample``, stopped at
        eos or ``###`` and cleaned as the original cleans them (see :meth:`clean_answer`)."""
        was_training = self.training
        self.eval()
        try:
            inputs = self.llm_inputs(batch, with_answers=False)
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else \
                {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            out = self.llama_model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=[ANSWER_END],
                tokenizer=self.tokenizer,
                use_cache=True,
                **sampling,
            )
        finally:
            self.train(was_training)
        return [self.clean_answer(row.tolist()) for row in out]

    def clean_answer(self, token_ids: Sequence[int]) -> str:
        """The answer in generated tokens, as the original's chat cleans it: up to the first eos
        (or padding), before the last ``###``, after the last ``Assistant:``, stripped."""
        stops = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        end = next((i for i, token in enumerate(token_ids) if token in stops), len(token_ids))
        text = self.tokenizer.decode(token_ids[:end], skip_special_tokens=False)
        return text.rsplit(ANSWER_END, 1)[0].split("Assistant:")[-1].strip()

    # ------------------------------------------------------------------ weights
    def _own_parameters(self) -> Dict[str, nn.Parameter]:
        """Parameters this project trains or may train: fusion branches (frozen or not) and LoRA."""
        return {
            name: p for name, p in self.named_parameters()
            if name.startswith("branches.") or "lora_" in name
        }

    @property
    def original_names(self) -> OriginalNames:
        """The name map between this model's branches and the original AffectGPT's attributes."""
        return OriginalNames(self.branches)

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """The ``requires_grad`` parameters (LoRA + unfrozen fusion branches), under the original
        AffectGPT's names where the fusion type is one of the original's, so a checkpoint of
        either project loads in the other."""
        own = {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}
        return self.original_names.to_original_names(own)

    def load_trainable_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True):
        """Load trainable weights written by this project or by the original AffectGPT runner;
        also accepts weights of branches frozen in this config.

        Weights of parts the original always builds but this config does not (another
        modality's branch, ``image_llama_proj``) are reported and left out. ``strict``: every
        trainable parameter must be present and no other key may be present. Returns
        ``(missing, unexpected)`` key lists.
        """
        renamed = self.original_names.from_original_names(state_dict)
        if renamed.not_used:
            logger.info("%d weight(s) of the checkpoint belong to parts this config does not build, not used: %s",
                        len(renamed.not_used), ", ".join(sorted({n.split(".")[0] for n in renamed.not_used})))
        state_dict = renamed.weights
        own = self._own_parameters()
        required = {name for name, p in own.items() if p.requires_grad}
        missing = sorted(required - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if strict and (missing or unexpected):
            raise StateDictMismatchError(
                "the checkpoint does not fit this model: "
                f"missing {len(missing)} key(s) {missing[:8]}, unexpected {len(unexpected)} key(s) {unexpected[:8]}. "
                "Was it trained with another config (fusion types, query-token counts, LoRA targets, "
                "face_or_frame)? Use strict=False to load what matches"
            )
        with torch.no_grad():
            for name, value in state_dict.items():
                if name not in own:
                    continue
                param = own[name]
                if param.shape != value.shape:
                    raise StateDictMismatchError(
                        f"checkpoint weight '{name}' has shape {tuple(value.shape)}, the model expects "
                        f"{tuple(param.shape)}; the checkpoint was trained with another config"
                    )
                param.copy_(value.to(device=param.device, dtype=param.dtype))
        return missing, unexpected

    def export(self, out_dir: os.PathLike, config_yaml: str) -> Path:
        """Write a self-contained folder: LoRA adapter (peft), fusion weights, ``config.yaml``.

        The folder is assembled beside ``out_dir`` and renamed into place, so an interrupted
        export never leaves a half-written folder. An existing export there is replaced.
        """
        from safetensors.torch import save_file

        def fill(tmp: Path) -> None:
            if self.cfg.use_lora:
                self.llama_model.save_pretrained(str(tmp / EXPORT_ADAPTER), save_embedding_layers=False)
            weights = {k: v.detach().cpu().contiguous() for k, v in self.branches.state_dict().items()}
            save_file(weights, str(tmp / EXPORT_FUSION), metadata={"format": "my_affectgpt-fusion"})
            (tmp / EXPORT_CONFIG).write_text(config_yaml, encoding="utf-8")

        return write_folder_atomic(out_dir, fill, EXPORT_FUSION)

    def load_export(self, export_dir: os.PathLike) -> None:
        """Load the weights of a folder written by :meth:`export` into this (same-config) model."""
        from safetensors.torch import load_file

        folder = Path(export_dir)
        fusion_path = folder / EXPORT_FUSION
        if not fusion_path.is_file():
            raise UserFileNotFoundError(f"{fusion_path} not found: {folder} is not an exported model folder")
        weights = load_file(str(fusion_path))
        expected = set(self.branches.state_dict())
        missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
        if missing or unexpected:
            raise StateDictMismatchError(
                f"{fusion_path} does not fit this model: missing {missing[:8]}, unexpected {unexpected[:8]}; "
                f"build the model from {folder / EXPORT_CONFIG}"
            )
        self.branches.load_state_dict(weights)
        self._load_adapter(folder / EXPORT_ADAPTER)

    def _load_adapter(self, adapter_dir: Path) -> None:
        if not self.cfg.use_lora:
            if adapter_dir.exists():
                raise StateDictMismatchError(
                    f"{adapter_dir} holds a LoRA adapter but model.use_lora is False; set it to True"
                )
            return
        if not (adapter_dir / "adapter_config.json").is_file():
            raise UserFileNotFoundError(f"{adapter_dir}/adapter_config.json not found; the export has no LoRA adapter")
        from peft.utils import load_peft_weights, set_peft_model_state_dict

        saved = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        current = self.llama_model.peft_config["default"]
        for key in ("r", "lora_alpha"):
            if saved.get(key) != getattr(current, key):
                raise StateDictMismatchError(
                    f"{adapter_dir}: adapter {key} is {saved.get(key)} but this model uses {getattr(current, key)}"
                )
        if set(saved.get("target_modules") or ()) != set(current.target_modules):
            raise StateDictMismatchError(
                f"{adapter_dir}: adapter targets {sorted(saved.get('target_modules') or ())} but this model "
                f"adapts {sorted(current.target_modules)}"
            )
        result = set_peft_model_state_dict(self.llama_model, load_peft_weights(str(adapter_dir), device="cpu"))
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise StateDictMismatchError(
                f"{adapter_dir}: adapter weights do not fit: missing {missing[:8]}, "
                f"unexpected {list(result.unexpected_keys)[:8]}"
            )
