"""The AU Agent's prompt format, shared by generation, fine-tuning and the description command.

``build_user_message`` lists a frame's AU codes with their intensities and FACS names (plus
MER-Factory's ``au_description`` line); ``build_prompt`` / ``encode_prompt`` put it in the
LLM's chat template, or a plain ``###Human: ... ###Assistant: `` prompt when the tokenizer
has none; ``clean_reply`` keeps only the assistant's text.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import List

from my_affectgpt.common.errors import UserError
from my_affectgpt.processors.au_json import assistant_text
from my_affectgpt.processors.facs import AU_NAMES, au_code

SYSTEM_PROMPT = (
    "You are an expert in the Facial Action Coding System. Describe the visible facial muscle "
    "movements of one video frame objectively, in one or two sentences. Mention only what the "
    "muscles do; do not name, guess or imply any emotion."
)
USER_INSTRUCTION = "Describe the facial muscle movement in this frame."
# Where a reply ends when the model runs on past its answer.
_REPLY_END = re.compile(r"###|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|</s>")


class AUAgentInputError(UserError, ValueError):
    """A frame the AU Agent cannot describe (bad ``active_aus``); the message names the key."""


def _intensity(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AUAgentInputError(f"active_aus[{key!r}] = {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise AUAgentInputError(f"active_aus[{key!r}] = {value!r} is not a number") from None
    if not math.isfinite(number):
        raise AUAgentInputError(f"active_aus[{key!r}] = {value!r} is not a finite number")
    return number


def build_user_message(frame: Mapping) -> str:
    """The user turn for one frame dict ``{active_aus, au_description, ...}``.

    ``active_aus`` maps AU keys ("AU06_r", "AU6", ...) to intensities; they are listed in AU
    order with their FACS names. ``au_description`` (MER-Factory's "Cheek raiser (intensity:
    2.30), ..." line) is added when present.
    """
    active = frame.get("active_aus") or {}
    if not isinstance(active, Mapping):
        raise AUAgentInputError(f"active_aus must be an object like {{'AU06_r': 2.3}}, got {type(active).__name__}")
    rows = []
    for key, value in active.items():
        code = au_code(key)
        if code is None:
            raise AUAgentInputError(f"active_aus key {key!r} is not an action unit (expected e.g. 'AU12_r')")
        rows.append((int(code[2:]), f"- {code} ({AU_NAMES.get(code, code)}): intensity {_intensity(key, value):.2f}"))
    lines = ["Facial Action Units in this frame (OpenFace intensity, 0-5):"]
    lines += [row for _, row in sorted(rows)] or ["- no action unit above the detection threshold"]
    description = str(frame.get("au_description") or "").strip()
    if description:
        lines.append(f"AU description: {description}")
    lines.append(USER_INSTRUCTION)
    return "\n".join(lines)


def build_prompt(tokenizer, user_message: str) -> str:
    """The full prompt text: the tokenizer's chat template when it has one, else ``###Human:``."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"###Human: {SYSTEM_PROMPT}\n{user_message} ###Assistant: "


def encode_prompt(tokenizer, user_message: str) -> List[int]:
    """Token ids of ``build_prompt``, with the tokenizer's bos token first when it has one."""
    ids = tokenizer(build_prompt(tokenizer, user_message), add_special_tokens=False).input_ids
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def clean_reply(text: str) -> str:
    """The assistant's text only: no transcript turns, stop markers or extra whitespace."""
    marked = _REPLY_END.sub("###", text)  # one end marker, which assistant_text leaves in place
    reply = assistant_text(marked).split("###", 1)[0]
    return " ".join(reply.split())


def format_transcript(user_message: str, reply: str) -> str:
    """The "system\\n...\\nuser\\n...\\nassistant\\n..." transcript MER-Factory JSONs store."""
    return f"system\n{SYSTEM_PROMPT}\nuser\n{user_message}\nassistant\n{reply}"
