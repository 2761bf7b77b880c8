"""What a ``face_or_frame`` value puts in the prompt.

The values are the original AffectGPT's (``multiface_audio_face_text``, ``face``,
``audioonly``, ...). Each may also carry an ``au`` part (``multiface_audio_face_frame_au_text``
is the original's own): it switches the AU block on. The config, the datasets, the prompt
builder and the model all read a value through :func:`parse_face_or_frame`.
"""
from __future__ import annotations

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


def valid_values() -> Tuple[str, ...]:
    return tuple(PROMPT_CONTENTS)


def parse_face_or_frame(value: str) -> PromptLayout:
    """The layout of ``value``; :class:`FaceOrFrameError` when it is not a known value with an
    optional ``au`` part."""
    parts = str(value).split("_")
    has_au = AU_PART in parts
    base = "_".join(p for p in parts if p != AU_PART)
    if base not in PROMPT_CONTENTS:
        raise FaceOrFrameError(
            f"{value!r} is not a valid face_or_frame. Valid values: {', '.join(PROMPT_CONTENTS)}; "
            f"each may carry an '_au' part that adds the AU block (e.g. multiface_audio_face_frame_au_text)"
        )
    return PromptLayout(str(value), base, PROMPT_CONTENTS[base], has_au)
