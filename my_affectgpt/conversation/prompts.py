"""The prompt and target text, shared by training and inference so both build it identically.

Sequence (SPEC 6)::

    ###Human: <modality blocks> The subtitle of this video is: <Subtitle>...</Subtitle>.
    Now, please answer my question based on all the provided information. {question}
    ###Assistant: {answer}###

Each modality block carries ONE placeholder (``<FaceHere>`` ...); the model expands it to the
modality's query-token count when it tokenises.
"""
from __future__ import annotations

import random
from typing import Optional, Sequence

from my_affectgpt.common.config_schema import PROMPT_CONTENTS

AU_AGENT_MARKER = "<AUAgentText>"

MODALITY_BLOCKS = {
    "audio": "The audio content is as follows: <Audio><AudioHere></Audio>.",
    "frame": "Meanwhile, we uniformly sample raw frames from the video: <Video><FrameHere></Video>.",
    "face": "Additionally, the face sequence of the person is: <Video><FaceHere></Video>.",
    "multi_face": "The fused face and audio information is: <Multi><MultiHere></Multi>.",
    "multi_frame": "The fused frame and audio information is: <Multi><MultiHere></Multi>.",
    "au": "The facial action units of the person are described as: <AU><AUHere></AU>.",
    "au_agent": f"The facial action units of the person are described as: <AU>{AU_AGENT_MARKER}</AU>.",
}

QUESTION_REASONING = "Please infer the person's emotional state and provide your reasoning process."
QUESTION_OPENSET = "Please recognize all possible emotional states of the character."
QUESTION_ONEHOT = "Please recognize the character's most likely emotional state."
QUESTION_ONEHOT_CANDIDATES = (
    "Please choose the character's most likely emotional state from the following candidates: {candidates}."
)
QUESTION_VALENCE = (
    "Please judge the overall emotional valence of the character as a number from -1 (most negative) "
    "to 1 (most positive)."
)
QUESTION_SENTIMENT = "Please judge whether the character's overall sentiment is positive, negative or neutral."


def build_prompt(face_or_frame: str, subtitle: Optional[str], question: str, au_block: Optional[str] = None) -> str:
    """The ``###Human: ... ###Assistant: `` text for one sample.

    ``au_block`` is ``None`` (AU channel off), ``"au"`` (features) or ``"au_agent"`` (text from
    the AU Agent, filled in by the model).
    """
    contents = PROMPT_CONTENTS[face_or_frame]
    parts = []
    for item in contents:
        if item == "multi":
            parts.append(MODALITY_BLOCKS["multi_face" if face_or_frame.startswith("multiface") else "multi_frame"])
        elif item != "text":
            parts.append(MODALITY_BLOCKS[item])
    if au_block:
        parts.append(MODALITY_BLOCKS[au_block])
    if "text" in contents:
        parts.append(f"The subtitle of this video is: <Subtitle>{subtitle or ''}</Subtitle>.")
    parts.append(f"Now, please answer my question based on all the provided information. {question}")
    return "###Human: " + " ".join(parts) + " ###Assistant: "


def label_sentence(labels: Sequence[str]) -> str:
    labels = [label for label in labels if label] or ["neutral"]
    return f"The character's emotional state is {', '.join(labels)}."


def training_target(
    label_type: str,
    rng: random.Random,
    reason: str = "",
    openset: Sequence[str] = (),
    label: str = "",
    candidates: Sequence[str] = (),
    valence: Optional[float] = None,
) -> tuple[str, str]:
    """``(question, answer)`` for one training sample of the given ``label_type``."""
    if label_type == "hybrid":
        label_type = rng.choice(("description", "ovlabel"))
    if label_type == "description":
        return QUESTION_REASONING, reason
    if label_type == "ovlabel":
        return QUESTION_OPENSET, label_sentence(openset)
    if label_type == "onehot":
        return QUESTION_ONEHOT, label_sentence([label])
    if label_type == "onehot_w_candidates":
        return QUESTION_ONEHOT_CANDIDATES.format(candidates=", ".join(candidates)), label_sentence([label])
    if label_type == "valence":
        return QUESTION_VALENCE, f"The valence score is {valence:.2f}."
    if label_type == "sentiment":
        polarity = "positive" if valence > 0 else "negative" if valence < 0 else "neutral"
        return QUESTION_SENTIMENT, f"The character's sentiment is {polarity}."
    raise ValueError(f"unknown label_type {label_type!r}")


def inference_question(no_reasoning: bool, candidates: Sequence[str] = ()) -> tuple[str, str]:
    """``(prompt_kind, question)`` used at inference time."""
    if not no_reasoning:
        return "reasoning", QUESTION_REASONING
    if candidates:
        return "labels", QUESTION_ONEHOT_CANDIDATES.format(candidates=", ".join(candidates))
    return "labels", QUESTION_OPENSET
