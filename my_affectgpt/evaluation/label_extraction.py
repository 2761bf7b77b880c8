"""Turn a model's free-text answer into emotion labels.

Two answer shapes are handled:

* the open-vocabulary answer "The character's emotional state is a, b, c." -- its list is
  the model's explicit answer, so only the list is read (the last one, when there are
  several), and items the lexicon does not know are kept as open-vocabulary labels;
* any other text (a description with reasoning) -- it is scanned for lexicon words.

Negation is handled minimally: a lexicon word within a few words after "not", "no",
"never", "n't", ... in the same clause does not count ("not happy, but sad" -> sad), nor
does a Chinese word right after 不/没/未.

``LLMLabelExtractor`` is the optional alternative: a local causal LM asked to list the
emotions in the text.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from my_affectgpt.evaluation.lexicon import (
    CJK_FORMS,
    LexiconEntry,
    canonical_label,
    clean_label,
    label_polarity,
    lookup,
    normalize_label,
)

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[\u3400-\u9fff]+|[.,;:!?()\"，。；：！？、]")
_NEGATORS = frozenset(
    {"not", "no", "never", "nor", "neither", "without", "hardly", "barely", "cannot", "lacks", "lacking"}
)
_CLAUSE_BREAKS = frozenset({"but", "although", "though", "however", "whereas", "while"})
_NEGATION_WINDOW = 4  # words after a negator that it covers ("does not seem to be happy")
_CJK_NEGATORS = ("不", "没", "未")
_CJK_NEGATION_WINDOW = 3  # characters before a Chinese word searched for a negator

_ANSWER_LIST = re.compile(
    r"emotional\s+states?\s*(?:is|are|was|were|includes?|:)\s*:?\s*([^.\n。]+)", re.IGNORECASE
)
_ITEM_SEPARATORS = re.compile(r"\s*(?:[,;，；、/]|\band\b|\bor\b)\s*", re.IGNORECASE)


def _is_negator(tokens: Sequence[str], i: int) -> bool:
    token = tokens[i]
    if token == "not" and i + 1 < len(tokens) and tokens[i + 1] == "only":
        return False  # "not only happy but also ..." affirms
    return token in _NEGATORS or token.endswith("n't")


def _scan_cjk(run: str) -> List[LexiconEntry]:
    hits, i, last_end = [], 0, 0
    while i < len(run):
        form = next((f for f in CJK_FORMS if run.startswith(f, i)), None)
        if form is None:
            i += 1
            continue
        before = run[max(last_end, i - _CJK_NEGATION_WINDOW):i]
        if not any(n in before for n in _CJK_NEGATORS):
            hits.append(lookup(form))
        i = last_end = i + len(form)
    return hits


def scan_lexicon(text: str) -> List[LexiconEntry]:
    """Lexicon entries found in ``text`` in reading order, negated mentions left out."""
    tokens = _TOKEN.findall(str(text).lower().replace("’", "'"))
    hits: List[LexiconEntry] = []
    negation_left = 0
    for i, token in enumerate(tokens):
        if not token[0].isalnum() or token in _CLAUSE_BREAKS:
            negation_left = 0
            continue
        if "\u3400" <= token[0] <= "\u9fff":
            hits.extend(_scan_cjk(token))
        elif _is_negator(tokens, i):
            negation_left = _NEGATION_WINDOW
            continue
        else:
            entry = lookup(token)
            if entry is not None and negation_left == 0:
                hits.append(entry)
        negation_left = max(0, negation_left - 1)
    return hits


def _unique(labels: Iterable[str]) -> List[str]:
    return list(dict.fromkeys(label for label in labels if label))


def answer_list_items(text: str) -> Optional[List[str]]:
    """The items of the last "emotional state is a, b, c" list in ``text``, or None."""
    matches = _ANSWER_LIST.findall(str(text))
    if not matches:
        return None
    return [item for item in _ITEM_SEPARATORS.split(matches[-1]) if clean_label(item)]


def _item_labels(item: str) -> List[str]:
    hits = [entry.headword for entry in scan_lexicon(item) if entry.is_emotion]
    if hits:
        return hits
    words = _TOKEN.findall(item.lower().replace("’", "'"))
    if any(_is_negator(words, i) for i in range(len(words))):
        return []  # "not lonely": a negated word the lexicon does not know
    return [normalize_label(item)]


def extract_open_labels(text: str) -> List[str]:
    """Open-vocabulary labels (lexicon headwords or the model's own words), ordered, unique."""
    items = answer_list_items(text)
    if items is not None:
        return _unique(label for item in items for label in _item_labels(item))
    return _unique(entry.headword for entry in scan_lexicon(text) if entry.is_emotion)


def canonicalize_labels(labels: Iterable[str]) -> List[str]:
    """Map each label to its basic label when it has one, keep it otherwise; ordered, unique."""
    return _unique(canonical_label(label) or normalize_label(label) for label in labels)


def extract_labels(text: str) -> List[str]:
    """Basic emotion labels in ``text`` ("He seems joyful, not angry." -> ["happy"])."""
    return canonicalize_labels(extract_open_labels(text))


def valence_from_labels(labels: Iterable[str]) -> float:
    """Mean polarity of the labels (an unknown label counts 0); 0.0 for no labels."""
    polarities = [label_polarity(label) for label in labels]
    return sum(polarities) / len(polarities) if polarities else 0.0


def predict_valence(text: str) -> float:
    """Valence in [-1, 1] from the emotion and sentiment words in ``text`` (0.0: none).

    Like label extraction, an "emotional state is a, b, c" list is read on its own,
    item by item, when the text has one.
    """
    items = answer_list_items(text)
    hits = scan_lexicon(text) if items is None else [e for item in items for e in scan_lexicon(item)]
    return sum(entry.polarity for entry in hits) / len(hits) if hits else 0.0


_LLM_PROMPT = (
    "Read the description of a person below and list every emotion the person feels, "
    "as English words separated by commas. Answer with the list only.\n\n"
    "Description: {text}\n\nEmotions:"
)
_MAX_LABEL_WORDS = 3  # longer reply fragments are sentences, not labels


def parse_llm_reply(reply: str) -> List[str]:
    """Labels from an extractor LLM's comma-separated reply, normalised, ordered, unique."""
    first_block = str(reply).strip().split("\n\n")[0]
    items = re.split(r"[,;\n，；、]", first_block)
    return _unique(
        normalize_label(item)
        for item in items
        if 0 < len(clean_label(item).split()) <= _MAX_LABEL_WORDS
    )


class LLMLabelExtractor:
    """Ask a local causal LM (a Hugging Face model directory) for the emotions in a text.

    The model loads on the first call, so building the extractor for a CLI flag costs
    nothing until it is used. Decoding is greedy, so results are reproducible.
    """

    def __init__(self, model_path: str | Path, device: str = "cpu", max_new_tokens: int = 32):
        self.model_path = Path(model_path)
        self.device = device
        self.max_new_tokens = max_new_tokens
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if not self.model_path.is_dir():
            raise FileNotFoundError(
                f"LLM label extractor: model directory {self.model_path} does not exist; "
                "pass a local Hugging Face model folder (config.json + weights + tokenizer)"
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        model = AutoModelForCausalLM.from_pretrained(str(self.model_path))
        self._model = model.to(self.device).eval()

    def _prompt(self, text: str) -> str:
        content = _LLM_PROMPT.format(text=text)
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        return content

    def __call__(self, text: str) -> List[str]:
        import torch

        if self._model is None:
            self._load()
        tok = self._tokenizer
        inputs = tok(self._prompt(text), return_tensors="pt").to(self.device)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            output = self._model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad_id
            )
        reply = tok.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return parse_llm_reply(reply)
