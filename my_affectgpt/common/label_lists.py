"""Label lists written as text, read the way the original AffectGPT reads them.

Its ``string_to_list`` (used for MER-Caption+ open-set labels, MER-UniBench gold lists and
the evaluation's label caches): a list or array is taken as it is; a string loses one leading
``[`` and one trailing ``]`` and is split at commas and quote characters, each piece trimmed
and empty pieces dropped. ``"['a', 'b']"``, ``"[a, b]"`` and ``"a, b"`` all give
``["a", "b"]``; an empty string, None or NaN gives ``[]``.
"""
from __future__ import annotations

import re
from typing import List

_SEPARATORS = re.compile("['\",]")


def split_label_list(value: object) -> List[str]:
    if hasattr(value, "tolist") and not isinstance(value, str):  # a numpy array or scalar
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    if value is None or (isinstance(value, float) and value != value):
        return []
    text = str(value)
    if text.startswith("["):
        text = text[1:]
    if text.endswith("]"):
        text = text[:-1]
    return [piece.strip() for piece in _SEPARATORS.split(text) if piece.strip()]
