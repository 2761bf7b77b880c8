"""A tiny AU Agent LLM for tests: random weights, but replies that differ per prompt.

``build_tiny_llm``'s random model with tied embeddings mostly repeats the prompt's last token
(a space), which ``clean_reply`` strips to an empty text. Scaling the transformer layers'
matrices makes the layers dominate the residual stream, so greedy replies are non-empty and
depend on the prompt. The vocabulary is trained on the AU Agent's prompt words to keep
prompts short.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from my_affectgpt.common.tiny_models import build_tiny_llm

PROMPT_WORDS = (
    "Facial Action Units in this frame (OpenFace intensity, 0-5): AU description: intensity "
    "AU01 AU02 AU04 AU05 AU06 AU07 AU09 AU10 AU12 AU14 AU15 AU17 AU20 AU23 AU25 AU26 AU45 "
    "- ( ): 0.12 3.45 6.78 9.00"
)
LAYER_SCALE = 6.0
REPO_ROOT = Path(__file__).resolve().parents[1]


def build_tiny_agent_llm(out_dir: Path, seed: int = 3) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    from my_affectgpt.conversation.au_agent_prompts import SYSTEM_PROMPT, USER_INSTRUCTION

    out_dir = build_tiny_llm(Path(out_dir), extra_texts=[SYSTEM_PROMPT, USER_INSTRUCTION, PROMPT_WORDS], seed=seed)
    model = AutoModelForCausalLM.from_pretrained(str(out_dir))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".layers." in name and param.ndim == 2:
                param.mul_(LAYER_SCALE)
    model.save_pretrained(str(out_dir))
    return out_dir


def load_script(name: str):
    """Import ``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
