"""The prompt and target text, shared by training and inference so both build it identically.

The wording is the original AffectGPT's, sentence for sentence, so checkpoints trained there
see the prompts they were trained with::

    ###Human: <modality sentences> The subtitle of this video is: <Subtitle>...</Subtitle>.
    Now, please answer my question based on all the provided information. {question} ###Assistant: {answer}###

(``audio_text``, ``face_text`` and ``frame_text`` lack the ``###Human: `` opening there too.)
Each modality sentence carries ONE placeholder (``<FaceHere>`` ...); the model expands it to
the modality's query-token count when it tokenises. The AU sentence, for a ``face_or_frame``
with an ``au`` part, goes right before the subtitle sentence (or before "Now, please answer"
when there is none), where the original's ``multiface_audio_face_frame_au_text`` has it.
"""
from __future__ import annotations

import random
from typing import Optional, Sequence

from my_affectgpt.common.face_or_frame import parse_face_or_frame

AU_AGENT_MARKER = "<AUAgentText>"
HUMAN = "###Human: "
ASSISTANT = "###Assistant: "
ANSWER_END = "###"

_MULTI = "The audio and video merged info is: <Multi><MultiHere></Multi>. "
_AUDIO = "The audio content is as follows: <Audio><AudioHere></Audio>. "
_FACE = "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: <Video><FaceHere></Video>. "
_FACE_MORE = "Additionally, we uniformly sample raw frames from the video and extract faces from these frames: <Video><FaceHere></Video>. "
_FACE_ALONE = "We uniformly sample raw frames from the video and extract faces from these frames: <Video><FaceHere></Video>. "
_FRAME = "Meanwhile, we uniformly sample raw frames from the video: <Video><FrameHere></Video>. "
_FRAME_ALONE = "We uniformly sample raw frames from the video: <Video><FrameHere></Video>. "
_FRAME_LOWER = "we uniformly sample raw frames from the video: <Video><FrameHere></Video>. "
_SUBTITLE = "The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. "
_END = "Now, please answer my question based on all the provided information. {question} " + ASSISTANT
AU_SENTENCES = {
    "au": "The AU (Action Unit) features are: <AU><AUHere></AU>. ",
    "au_agent": f"The AU (Action Unit) features are: <AU>{AU_AGENT_MARKER}</AU>. ",
}

# face_or_frame (without its au part) -> (opening, modality sentences, has a subtitle sentence)
TEMPLATES = {
    "faceframe": (HUMAN, (_AUDIO, _FRAME, _FACE_MORE), True),
    "face": (HUMAN, (_AUDIO, _FACE), True),
    "frame": (HUMAN, (_AUDIO, _FRAME), True),
    "audioonly": (HUMAN, (_AUDIO,), False),
    "textonly": (HUMAN, (), True),
    "faceonly": (HUMAN, (_FACE_ALONE,), False),
    "frameonly": (HUMAN, (_FRAME_ALONE,), False),
    "audio_text": ("", (_AUDIO,), True),
    "face_text": ("", (_FACE_ALONE,), True),
    "frame_text": ("", (_FRAME_LOWER,), True),
    "multiface_text": (HUMAN, (_MULTI,), True),
    "multiface_audio_face_text": (HUMAN, (_MULTI, _AUDIO, _FACE), True),
    "multiframe_audio_frame_text": (HUMAN, (_MULTI, _AUDIO, _FRAME), True),
    "multiface_audio_face_frame_text": (HUMAN, (_MULTI, _AUDIO, _FACE, _FRAME), True),
}

QUESTION_REASONING = "Please infer the person's emotional state and provide your reasoning process."
QUESTION_OPENSET = "Please recognize all possible emotional states of the character."
QUESTION_ONEHOT = "Please recognize the character's most likely emotional state."
QUESTION_ONEHOT_CANDIDATES = (
    "Please select the label that can best describe the person's emotional state from the provided "
    "candidate labels: {candidates}."
)
QUESTION_VALENCE = (
    "Please identify the overall positive or negative emotional polarity of the main characters. "
    "The output should be a \ufb02oating-point number ranging from {low} to {high}. "
    "Here, {low} indicates extremely negative emotions, 0 indicates neutral emotions, and {high} indicates "
    "extremely positive emotions. Please provide your judgment as a \ufb02oating-point number."
)
QUESTION_SENTIMENT = (
    "Please select the most likely sentiment label that can best describe the person's emotional state: "
    "positive, negative, neutral."
)


def build_prompt(face_or_frame: str, subtitle: Optional[str], question: str, au_block: Optional[str] = None) -> str:
    """The ``###Human: ... ###Assistant: `` text for one sample.

    ``au_block`` is ``None`` (AU block off), ``"au"`` (features) or ``"au_agent"`` (text from
    the AU Agent, filled in by the model).
    """
    opening, sentences, has_subtitle = TEMPLATES[parse_face_or_frame(face_or_frame).base]
    parts = [opening, *sentences]
    if au_block:
        parts.append(AU_SENTENCES[au_block])
    if has_subtitle:
        parts.append(_SUBTITLE.format(subtitle="" if subtitle is None else subtitle))
    parts.append(_END.format(question=question))
    return "".join(parts)


def label_sentence(labels: Sequence[str]) -> str:
    labels = [label for label in labels if label] or ["neutral"]
    return f"The character's emotional state is {', '.join(labels)}."


def sentiment_of(valence: float) -> str:
    return "positive" if valence > 0 else "negative" if valence < 0 else "neutral"


def training_target(
    label_type: str,
    rng: random.Random,
    hybrid_choices: Sequence[str] = ("description", "ovlabel"),
    reason: str = "",
    openset: Sequence[str] = (),
    label: str = "",
    candidates: Sequence[str] = (),
    valence: Optional[float] = None,
    valence_range: tuple = (-1, 1),
) -> tuple[str, str]:
    """``(question, answer)`` for one training sample; ``hybrid`` draws one of the dataset's
    ``hybrid_choices`` per sample, as the original's ``hybird`` does."""
    if label_type == "hybrid":
        label_type = rng.choice(tuple(hybrid_choices))
    if label_type == "description":
        return QUESTION_REASONING, reason
    if label_type == "ovlabel":
        return QUESTION_OPENSET, label_sentence(openset)
    if label_type == "onehot_wo_candidates":
        return QUESTION_ONEHOT, f"The character's emotional state is {label}."
    if label_type == "onehot_w_candidates":
        return QUESTION_ONEHOT_CANDIDATES.format(candidates=",".join(candidates)), f"The most likely label is {label}."
    if label_type == "valence":
        low, high = valence_range
        return QUESTION_VALENCE.format(low=low, high=high), f"The valence score is {valence:.2f}."
    if label_type == "sentiment":
        return QUESTION_SENTIMENT, f"The character's sentiment state is {sentiment_of(valence)}."
    raise ValueError(f"unknown label_type {label_type!r}")


def inference_question(no_reasoning: bool, candidates: Sequence[str] = ()) -> tuple[str, str]:
    """``(prompt_kind, question)`` used at inference time."""
    if not no_reasoning:
        return "reasoning", QUESTION_REASONING
    if candidates:
        return "labels", QUESTION_ONEHOT_CANDIDATES.format(candidates=",".join(candidates))
    return "labels", QUESTION_OPENSET
