"""The AU Agent: a frame's Action Unit values -> an objective facial-movement text.

Three pieces share one prompt format, so training and generation see exactly the same text:

* ``build_user_message`` / ``build_prompt`` / ``encode_prompt``: the AU codes with their
  intensities and FACS names (plus MER-Factory's ``au_description`` line) in the LLM's chat
  template, or a plain ``###Human: ... ###Assistant: `` prompt when the tokenizer has none;
  ``clean_reply`` keeps only the assistant's text.
* :class:`AUAgent`: a frozen causal LM (+ optional LoRA) that generates descriptions greedily
  and in batches on its own device, with a per-process cache keyed by (video, frame). The
  AU-description command and AU-Agent mode (mode 3) use it.
* :class:`AUAgentLM` (``model.arch: au_agent_lm``): the same LLM with a trainable LoRA adapter,
  fine-tuned on (AU values -> description) pairs by the ``au_agent_lora`` task.

``AUAgent(lora_weights=...)`` takes a peft adapter folder (``AUAgentLM.save_adapter``) or an
``au_agent_lora`` runner checkpoint (``checkpoint_*.pth``) directly.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Dict, Hashable, List, Tuple

import torch
from torch import nn

from my_affectgpt.common.atomic import write_folder_atomic
from my_affectgpt.common.registry import registry
from my_affectgpt.processors.facs import find_emotion_words
from my_affectgpt.conversation.au_agent_prompts import (
    AUAgentInputError,
    build_user_message,
    clean_reply,
    encode_prompt,
)
from my_affectgpt.common.devices import precision_as_placed, resolve_dtype
from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.models.llm_utils import add_lora, load_pretrained

logger = logging.getLogger("my_affectgpt")

IGNORE_INDEX = -100
AGENT_ARCH = "au_agent_lm"
LOGGED_VIOLATIONS = 5  # emotion-word replies logged in full; later ones are only counted


# --------------------------------------------------------------------------- loading


def load_tokenizer(path: str, key: str):
    from transformers import AutoTokenizer

    tokenizer = load_pretrained(AutoTokenizer, path, key)
    if tokenizer.eos_token_id is None:
        raise UserError(f"{key}: the tokenizer at {path} has no eos token; AU Agent replies could not end")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_lora_state(peft_llm, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy LoRA weights (named as in ``peft_llm``) into it; every trainable weight must be there."""
    own = dict(peft_llm.named_parameters())
    trainable = {name for name, p in own.items() if p.requires_grad}
    missing, unexpected = sorted(trainable - set(state)), sorted(set(state) - trainable)
    if missing or unexpected:
        raise UserError(
            f"{source}: the LoRA weights do not fit this AU Agent (missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}); was it trained with another base LLM or other lora_* settings?"
        )
    with torch.no_grad():
        for name, value in state.items():
            if own[name].shape != value.shape:
                raise UserError(
                    f"{source}: LoRA weight {name} has shape {tuple(value.shape)}, this model expects "
                    f"{tuple(own[name].shape)}; check lora_r and the base LLM"
                )
            own[name].copy_(value.to(device=own[name].device, dtype=own[name].dtype))


def _lora_from_checkpoint(llm, path: Path):
    """``llm`` with the LoRA adapter of an ``au_agent_lora`` runner checkpoint."""
    from omegaconf import OmegaConf

    from my_affectgpt.common.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path} is not a training checkpoint (no 'model'/'config'); pass a peft adapter folder")
    model_cfg = OmegaConf.create(state["config"]).model
    if model_cfg.arch != AGENT_ARCH:
        raise UserError(
            f"{path} was trained with model.arch {model_cfg.arch!r}, not {AGENT_ARCH!r}: it is not an AU Agent "
            "checkpoint (train one with run.task: au_agent_lora)"
        )
    peft_llm = add_lora(llm, model_cfg)
    load_lora_state(peft_llm, state["model"], str(path))
    return peft_llm


def attach_lora_weights(llm, lora_weights: str):
    """``llm`` with the LoRA adapter merged in, from a peft folder or an ``au_agent_lora`` checkpoint."""
    path = Path(lora_weights)
    if path.is_dir():
        if not (path / "adapter_config.json").is_file():
            raise UserFileNotFoundError(
                f"{path} has no adapter_config.json: it is not a peft LoRA adapter folder "
                "(set model.au_agent_lora_weights to the adapter folder or an au_agent_lora checkpoint_*.pth)"
            )
        from peft import PeftModel

        peft_llm = PeftModel.from_pretrained(llm, str(path))
    elif path.is_file():
        peft_llm = _lora_from_checkpoint(llm, path)
    else:
        raise UserFileNotFoundError(
            f"AU Agent LoRA weights not found: {path}; set model.au_agent_lora_weights to a peft adapter "
            "folder, an au_agent_lora checkpoint_*.pth, or '' for the base model"
        )
    return peft_llm.merge_and_unload()


# --------------------------------------------------------------------------- generation


def generate_replies(
    llm, tokenizer, user_messages: Sequence[str], max_new_tokens: int, batch_size: int, **gen_kwargs
) -> List[str]:
    """Clean replies to ``user_messages``, greedy unless ``gen_kwargs`` say otherwise.

    Prompts are left-padded in batches of ``batch_size``; generation stops at the tokenizer's
    and the model's eos tokens.
    """
    device = llm.get_input_embeddings().weight.device
    eos = {tokenizer.eos_token_id}
    configured = getattr(getattr(llm, "generation_config", None), "eos_token_id", None)
    eos |= set(configured) if isinstance(configured, (list, tuple)) else {configured} - {None}
    settings = {"do_sample": False, "max_new_tokens": max_new_tokens, **gen_kwargs}
    replies: List[str] = []
    for start in range(0, len(user_messages), batch_size):
        rows = [encode_prompt(tokenizer, m) for m in user_messages[start:start + batch_size]]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor(
            [[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows], dtype=torch.long, device=device
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long, device=device
        )
        with torch.no_grad():
            output = llm.generate(
                input_ids=input_ids, attention_mask=attention_mask, eos_token_id=sorted(eos),
                pad_token_id=tokenizer.pad_token_id, **settings,
            )
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        replies.extend(clean_reply(t) for t in texts)
    return replies


def au_agent_device(model_cfg, model_device) -> torch.device:
    """Where the AU Agent runs: ``model.au_agent_device``, or the main model's device when empty."""
    return torch.device(model_cfg.au_agent_device or model_device)


class AUAgent:
    """A frozen causal LM (+ optional LoRA) that describes frames' facial muscle movement.

    Not an ``nn.Module`` on purpose: it lives on its own device (e.g. ``cuda:1``) and is never
    part of a trainable model's state dict. ``describe`` caches every (key, text) for the life
    of the object, so in AU-Agent mode each (video, frame) is generated once per process.
    """

    def __init__(
        self,
        base_model: str,
        lora_weights: str = "",
        device: str = "cpu",
        max_new_tokens: int = 96,
        batch_size: int = 8,
        dtype=None,
    ):
        from transformers import AutoModelForCausalLM

        if not base_model:
            raise UserError("AU Agent: no base model; set model.au_agent_base_model (or --base-model)")
        if max_new_tokens < 1 or batch_size < 1:
            raise UserError(
                f"AU Agent: max_new_tokens ({max_new_tokens}) and batch_size ({batch_size}) must be >= 1"
            )
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(base_model, "model.au_agent_base_model")
        llm = load_pretrained(AutoModelForCausalLM, base_model, "model.au_agent_base_model",
                              dtype=resolve_dtype(dtype, self.device))
        if lora_weights:
            llm = attach_lora_weights(llm, lora_weights)
        llm.requires_grad_(False)
        self.llm = llm.eval().to(self.device)
        self._cache: Dict[Hashable, str] = {}
        self.emotion_word_violations = 0  # generated replies that contain emotion words
        logger.info(
            "AU Agent: %s%s on %s (%s)", base_model, f" + LoRA {lora_weights}" if lora_weights else "",
            self.device, self.llm.dtype,
        )

    @classmethod
    def from_model_config(cls, model_cfg, default_device: str = "cpu") -> "AUAgent":
        """Build from the ``model.au_agent_*`` keys; an empty ``au_agent_device`` means ``default_device``."""
        return cls(
            base_model=model_cfg.au_agent_base_model,
            lora_weights=model_cfg.au_agent_lora_weights,
            device=au_agent_device(model_cfg, default_device),
            max_new_tokens=model_cfg.au_agent_max_new_tokens,
            batch_size=model_cfg.au_agent_batch_size,
        )

    def to(self, device) -> "AUAgent":
        """Move the agent's LLM to ``device``, in the dtype it has; the description cache is kept."""
        self.device = torch.device(device)
        self.llm.to(self.device)
        return self

    def generate(self, user_messages: Sequence[str]) -> List[str]:
        """Replies to ready-made user messages (no cache), in the LLM's own dtype whatever
        autocast the caller runs under, so a description does not depend on where it was first
        asked for (training or inference, AMP or not)."""
        with precision_as_placed(self.device):
            return generate_replies(self.llm, self.tokenizer, user_messages, self.max_new_tokens, self.batch_size)

    def describe(self, items: Sequence[Tuple[Hashable, Mapping]]) -> List[str]:
        """One description per ``(key, frame_dict)``, in order; each key is generated once.

        ``key`` identifies the frame, e.g. ``(video_name, frame_number)``; keys already in the
        cache (or repeated within ``items``) are not generated again.
        """
        todo: Dict[Hashable, str] = {}
        for key, frame in items:
            if key not in self._cache and key not in todo:
                try:
                    todo[key] = build_user_message(frame)
                except AUAgentInputError as err:
                    raise AUAgentInputError(f"AU Agent input {key}: {err}") from None
        if todo:
            for key, text in zip(todo, self.generate(list(todo.values()))):
                self._cache[key] = text
                self._check_emotion_words(key, text)
        return [self._cache[key] for key, _ in items]

    def _check_emotion_words(self, key: Hashable, text: str) -> None:
        """Count replies with emotion words; the first few are logged with their text."""
        words = find_emotion_words(text)
        if not words:
            return
        self.emotion_word_violations += 1
        if self.emotion_word_violations <= LOGGED_VIOLATIONS:
            last = self.emotion_word_violations == LOGGED_VIOLATIONS
            logger.warning(
                "AU Agent reply for %s contains emotion words %s (it should describe muscle movement only): %r%s",
                key, words, text, "; further ones are only counted" if last else "",
            )

    def describe_batch(self, names: Sequence[str], au_agent_frames: Sequence[Sequence[Mapping]]) -> List[str]:
        """One text per sample: its frames' descriptions in frame order, "Frame 12: ... Frame 30: ...".

        A sample without frames gets an empty text. All samples' frames are generated together.
        """
        if len(names) != len(au_agent_frames):
            raise ValueError(f"describe_batch: {len(names)} names but {len(au_agent_frames)} frame lists")
        ordered = [sorted(frames, key=lambda f: int(f["frame"])) for frames in au_agent_frames]
        items = [((name, int(f["frame"])), f) for name, frames in zip(names, ordered) for f in frames]
        texts = iter(self.describe(items))
        return [" ".join(f"Frame {int(f['frame'])}: {next(texts)}" for f in frames) for frames in ordered]


# --------------------------------------------------------------------------- fine-tuning model


@registry.register_model(AGENT_ARCH)
class AUAgentLM(nn.Module):
    """The AU Agent's LLM with a trainable LoRA adapter (base frozen), for ``au_agent_lora``.

    A batch holds ``user_message`` (from ``build_user_message``) and ``answer`` lists, and
    optionally ``max_length`` and ``names``. Prompt and padding tokens are masked out of the loss.
    """

    def __init__(self, cfg):
        from transformers import AutoModelForCausalLM

        super().__init__()
        if not cfg.use_lora:
            raise UserError("model.arch au_agent_lm trains a LoRA adapter only; set model.use_lora: True")
        self.cfg = cfg
        self.tokenizer = load_tokenizer(cfg.llama_model, "model.llama_model")
        llm = load_pretrained(AutoModelForCausalLM, cfg.llama_model, "model.llama_model",
                              dtype=resolve_dtype(cfg.llm_dtype))
        llm.requires_grad_(False)
        if cfg.gradient_checkpointing:
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            llm.enable_input_require_grads()
            llm.config.use_cache = False
        self.llm = add_lora(llm, cfg)

    @classmethod
    def from_config(cls, cfg) -> "AUAgentLM":
        """Build from a validated Config (only its ``model`` section matters here)."""
        return cls(cfg.model)

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def _rows(self, batch: Mapping) -> Tuple[List[List[int]], List[List[int]]]:
        messages, answers = list(batch["user_message"]), list(batch["answer"])
        names = list(batch.get("names") or [f"#{i}" for i in range(len(messages))])
        limit = int(batch.get("max_length") or 1024)
        end = self.tokenizer.eos_token_id
        all_ids, all_labels = [], []
        for name, message, answer in zip(names, messages, answers):
            prompt = encode_prompt(self.tokenizer, message)
            room = limit - len(prompt)
            if room < 1:
                raise UserError(
                    f"AU pair '{name}': the prompt is {len(prompt)} tokens, no room for a target within "
                    f"max_length {limit}; raise the dataset's max_length"
                )
            target = (self.tokenizer(answer, add_special_tokens=False).input_ids + [end])[:room]
            all_ids.append(prompt + target)
            all_labels.append([IGNORE_INDEX] * len(prompt) + target)
        return all_ids, all_labels

    def forward(self, batch: Mapping) -> Dict[str, torch.Tensor]:
        ids, labels = self._rows(batch)
        width = max(len(r) for r in ids)
        pad = self.tokenizer.pad_token_id

        def padded(rows, value):
            return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long, device=self.device)

        attention_mask = padded([[1] * len(r) for r in ids], 0)
        output = self.llm(
            input_ids=padded(ids, pad), attention_mask=attention_mask, labels=padded(labels, IGNORE_INDEX)
        )
        return {"loss": output.loss}

    def generate(self, batch: Mapping, max_new_tokens: int = 96, **gen_kwargs) -> List[str]:
        """Clean replies for the batch's ``user_message`` list (greedy by default)."""
        was_training = self.training
        self.eval()
        try:
            messages = list(batch["user_message"])
            return generate_replies(self.llm, self.tokenizer, messages, max_new_tokens, len(messages), **gen_kwargs)
        finally:
            self.train(was_training)

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """The LoRA weights, named as in the peft model (what ``AUAgent`` loads from a checkpoint)."""
        return {name: p.detach() for name, p in self.llm.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        load_lora_state(self.llm, state_dict, "checkpoint")

    def save_adapter(self, out_dir: os.PathLike) -> Path:
        """Write the LoRA adapter in peft's format (``AUAgent(lora_weights=out_dir)`` loads it).

        Assembled in a temp folder beside ``out_dir`` and renamed into place; an existing
        adapter folder there is replaced.
        """
        return write_folder_atomic(out_dir, lambda tmp: self.llm.save_pretrained(str(tmp)), "adapter_config.json")
