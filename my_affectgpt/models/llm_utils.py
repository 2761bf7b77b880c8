"""Helpers every model that wraps a causal LM shares: 4/8-bit loading, freezing for adapter
training and the LoRA adapter."""
from __future__ import annotations

import importlib.util
import logging
import os
from typing import Optional

from my_affectgpt.common.devices import resolve_dtype
from my_affectgpt.common.errors import UserError

logger = logging.getLogger("my_affectgpt")

def load_pretrained(loader, name_or_path: str, key: str, **kwargs):
    """``loader.from_pretrained(name_or_path)`` with one clear error naming the config ``key``.

    A value that is a folder is loaded from it; a missing folder, or a name that is neither a
    folder here nor reachable as a hub id, is a UserError instead of transformers' chain of
    tracebacks ending in "Repo id must be in the form".
    """
    if not name_or_path:
        raise UserError(f"{key} is empty; set it to a local Hugging Face model folder")
    if os.path.isabs(name_or_path) and not os.path.exists(name_or_path):
        hint = " (build the demo assets first: python -m my_affectgpt.demo_assets)" if "demo_assets" in name_or_path else ""
        raise UserError(f"{key}: folder not found: {name_or_path}; set it to the local model folder{hint}")
    try:
        return loader.from_pretrained(name_or_path, **kwargs)
    except OSError as exc:  # transformers' "not a local folder and not a valid model identifier"
        if os.path.isdir(name_or_path):
            raise UserError(f"{key}: {name_or_path} is not a usable model folder ({str(exc).splitlines()[0]})") from None
        raise UserError(
            f"{key}: {name_or_path!r} is not a folder here and could not be loaded as a hub id "
            f"({str(exc).splitlines()[0]}). Set it to the local model folder (the original AffectGPT looked "
            f"names such as Qwen25 up in its config.py)"
        ) from None


QUANTIZATION_KEYS = ("load_in_4bit", "load_in_8bit")


def quantization_key(cfg) -> Optional[str]:
    """The ``model.load_in_*`` key that is set in ``cfg``, or None (config validation allows one)."""
    return next((key for key in QUANTIZATION_KEYS if getattr(cfg, key)), None)


def llm_load_kwargs(cfg) -> dict:
    """``from_pretrained`` arguments for the base LLM of a ``model`` config section.

    With ``load_in_4bit`` (QLoRA: NF4 with double quantization, computing in ``llm_dtype``) or
    ``load_in_8bit`` (LLM.int8) the weights are quantized by bitsandbytes as they are placed on
    this process's device (its current CUDA GPU, else the CPU), so the model is loaded there
    rather than moved later.
    """
    dtype = resolve_dtype(cfg.llm_dtype)
    key = quantization_key(cfg)
    if key is None:
        return {"dtype": dtype}
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    _check_bitsandbytes(f"model.{key}", device)
    from transformers import BitsAndBytesConfig

    if key == "load_in_4bit":
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
    else:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    return {"dtype": dtype, "quantization_config": quantization, "device_map": {"": device}}


def _check_bitsandbytes(key: str, device) -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(
            f"{key} needs the bitsandbytes package, which is not installed: pip install 'my_affectgpt[qlora]' "
            f"(4/8-bit loading is made for a CUDA GPU; recent bitsandbytes also runs it, slowly, on the CPU), "
            f"or set {key}: False"
        )
    import bitsandbytes

    supported = set(getattr(bitsandbytes, "supported_torch_devices", ()))
    if device.type not in supported:
        raise UserError(
            f"{key}: bitsandbytes {bitsandbytes.__version__} cannot run on this machine's {device.type} "
            f"(it supports {', '.join(sorted(supported)) or 'no device here'}); 4/8-bit loading needs a CUDA GPU "
            f"with bitsandbytes, or set {key}: False"
        )


def freeze_for_adapters(llm, cfg):
    """Freeze the base LLM and ready it for adapter training; returns the LLM.

    A 4/8-bit LLM first gets peft's k-bit preparation (layer norms, embeddings and output head
    in float32, as QLoRA trains). ``gradient_checkpointing`` then recomputes activations in
    the backward pass; inputs are made to require gradients so the checkpointed layers
    backpropagate into the fusion modules and adapters.
    """
    llm.requires_grad_(False)
    if quantization_key(cfg):
        from peft import prepare_model_for_kbit_training

        llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=False)
    if cfg.gradient_checkpointing:
        llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        llm.enable_input_require_grads()
        llm.config.use_cache = False
    return llm


def add_lora(llm, cfg):
    """Wrap ``llm`` with a fresh peft LoRA adapter from the ``lora_*`` keys of ``cfg``.

    Target names the LLM does not have are reported and left out (e.g. an LLM without
    gate/up/down projections); none at all is an error.
    """
    from peft import LoraConfig, get_peft_model

    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in llm.named_modules()}
    targets = [t for t in cfg.lora_target_modules if t in leaf_names]
    if not targets:
        raise UserError(
            f"none of model.lora_target_modules {list(cfg.lora_target_modules)} is a layer of the LLM; "
            "pick names of its linear layers (q_proj, v_proj, ...)"
        )
    absent = sorted(set(cfg.lora_target_modules) - set(targets))
    if absent:
        logger.warning("LoRA: the LLM has no %s layers; adapting %s", ", ".join(absent), ", ".join(targets))
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=targets, bias="none", task_type="CAUSAL_LM",
    )
    return get_peft_model(llm, lora)
