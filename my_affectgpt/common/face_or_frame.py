"""What a ``face_or_frame`` value puts in the prompt.

The values are the original AffectGPT's (``multiface_audio_face_text``, ``face``,
``audioonly``, ...). Each may also carry an ``au`` part (``multiface_audio_face_frame_au_text``
is the original's own): it switches the AU block on. The config, the datasets, the prompt
builder and the model all read a value through :func:`parse_face_or_frame`.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Tuple

from my_affectgpt.common.errors import UserError

# What each value without its ``au`` part puts in the prompt, in prompt order. "multi" is the
# pre-fused token of audio with face (``multiface*``) or frame (``multiframe*``); "text" is the
# subtitle sentence.
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
AU_PART = "au"
# Values the original's prompt builder took that this project does not, and why.
UNSUPPORTED_VALUES = {
    "image": "it is the original's single-image prompt (<ImageHere>), and no dataset here has single images",
}


class FaceOrFrameError(UserError, ValueError):
    """A ``face_or_frame`` value this project does not know."""


@dataclass(frozen=True)
class PromptLayout:
    """One ``face_or_frame`` value, parsed."""

    value: str
    base: str  # the value without its au part: a key of PROMPT_CONTENTS
    contents: Tuple[str, ...]  # placeholder modalities and "text", in prompt order (AU not included)
    has_au: bool  # the value asks for the AU block

    @property
    def multi_visual(self) -> str:
        """The visual stream the Multi token fuses with audio: ``face`` or ``frame``."""
        return "frame" if self.base.startswith("multiframe") else "face"

    @property
    def streams(self) -> Tuple[str, ...]:
        """Feature streams (face, frame, audio) the prompt needs, the Multi token's included."""
        needed = []
        if "multi" in self.contents:
            needed += [self.multi_visual, "audio"]
        needed += [m for m in self.contents if m in ("face", "frame", "audio")]
        return tuple(dict.fromkeys(needed))


def _split(value: str) -> Tuple[str, bool]:
    parts = str(value).split("_")
    return "_".join(p for p in parts if p != AU_PART), AU_PART in parts


def _with_au(base: str) -> str:
    """``base`` with the au part where the original's own value has it: before ``_text``."""
    return f"{base[:-len('_text')]}_au_text" if base.endswith("_text") else f"{base}_au"


def _closest(value: str) -> str:
    """The valid value nearest ``value`` (its au part kept), or ''."""
    base, has_au = _split(value)
    close = difflib.get_close_matches(base, list(PROMPT_CONTENTS), n=1, cutoff=0.6)
    if not close:
        return ""
    return _with_au(close[0]) if has_au else close[0]


def parse_face_or_frame(value: str) -> PromptLayout:
    """The layout of ``value``; :class:`FaceOrFrameError` saying why (and what is valid) when
    it is not a known value with an optional ``au`` part."""
    base, has_au = _split(value)
    if base in PROMPT_CONTENTS:
        return PromptLayout(str(value), base, PROMPT_CONTENTS[base], has_au)
    if base in UNSUPPORTED_VALUES:
        raise FaceOrFrameError(f"{value!r} is not supported: {UNSUPPORTED_VALUES[base]}")
    close = _closest(value)
    raise FaceOrFrameError(
        f"{value!r} is not valid." + (f" Did you mean '{close}'?" if close else "")
        + f" Valid values: {', '.join(PROMPT_CONTENTS)}; each may carry an '_au' part that adds the AU block "
        f"(e.g. multiface_audio_face_frame_au_text)"
    )
