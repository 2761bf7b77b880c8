"""The official MER-UniBench emotion wheels: a folder holding ``format.csv``, ``synonym.xlsx``
and ``wheel1.xlsx`` .. ``wheel5.xlsx`` (the ``emotion_wheel/`` folder of AffectGPT).

A label reaches a wheel in three steps, exactly as MER-UniBench defines it:

1. ``format.csv`` (columns ``name``, ``format``) maps each inflected form listed in ``format``
   ("happier", "happiness") and each ``name`` itself to its base word(s) ``name``.
2. ``synonym.xlsx`` holds eight runs of columns ``word_runK``/``synonym_runK``: in every run a
   wheel word maps to itself and each of its synonyms maps to that wheel word; the eight runs
   are merged, so a base word maps to a set of wheel words.
3. A wheel ``.xlsx`` (columns ``level1``, ``level2``, ``level3``; an empty cell repeats the
   value above it) groups its words. At level 1 every word goes to its level-1 emotion. At
   level 2 a level-2 or level-3 word goes to its level-2 emotion, and a level-1 emotion to its
   alphabetically first level-2 emotion. When a word appears twice, its later row wins.

A label is lower-cased and trimmed; if ``format.csv`` does not list it, it maps to nothing.
Otherwise the wheel words of all its base words are sorted, and the first one the wheel lists
decides the group; if the wheel lists none, the label maps to nothing. Labels that map to
nothing are dropped before any score is computed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.common.label_lists import split_label_list

WHEELS = tuple(f"wheel{i}" for i in range(1, 6))
LEVELS = (1, 2)
FORMAT_FILE = "format.csv"
SYNONYM_FILE = "synonym.xlsx"
SYNONYM_RUNS = tuple(f"run{i}" for i in range(1, 9))
REQUIRED_FILES = (FORMAT_FILE, SYNONYM_FILE, *(f"{wheel}.xlsx" for wheel in WHEELS))

class EmotionWheelError(UserError, ValueError):
    """An emotion-wheel file or folder that cannot be read; the message names the file."""


def _clean(word: object) -> str:
    return str(word).lower().strip()


class OfficialEmotionWheels:
    """The five MER-UniBench wheels, ready to map labels to wheel groups at level 1 or 2.

    Build it with :meth:`load`; the constructor takes the parsed tables:
    ``form_to_bases`` (format.csv), ``base_to_wheel_words`` (synonym.xlsx, runs merged) and
    ``wheel_trees`` (wheel name -> {level1: {level2: [level3, ...]}}, in file order).
    """

    def __init__(
        self,
        form_to_bases: Mapping[str, Iterable[str]],
        base_to_wheel_words: Mapping[str, Iterable[str]],
        wheel_trees: Mapping[str, Mapping[str, Mapping[str, List[str]]]],
        source: str = "emotion wheels",
    ):
        self.source = source
        self.wheels = tuple(wheel_trees)
        self._groups: Dict[Tuple[str, int], Dict[str, str]] = {}
        for wheel, tree in wheel_trees.items():
            for level in LEVELS:
                on_wheel = _level_groups(tree, level)
                groups = {}
                for form, bases in form_to_bases.items():
                    words = sorted({word for base in bases for word in base_to_wheel_words[base]})
                    hit = next((word for word in words if word in on_wheel), None)
                    if hit is not None:
                        groups[form] = on_wheel[hit]
                self._groups[(wheel, level)] = groups

    @classmethod
    def load(cls, folder: str | Path) -> "OfficialEmotionWheels":
        """Read and check an official wheel folder; one :class:`EmotionWheelError` names the
        first missing or malformed file."""
        folder = Path(folder)
        if not folder.is_dir():
            raise UserFileNotFoundError(
                f"emotion wheel folder {folder} does not exist; pass the MER-UniBench emotion_wheel folder "
                f"({', '.join(REQUIRED_FILES)})"
            )
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise EmotionWheelError(
                f"emotion wheel folder {folder} lacks {', '.join(missing)}; an official wheel folder holds "
                f"{', '.join(REQUIRED_FILES)} (copy the whole emotion_wheel folder of AffectGPT)"
            )
        trees = {wheel: _read_wheel(folder / f"{wheel}.xlsx") for wheel in WHEELS}
        wheel_words = {word for tree in trees.values() for word in _tree_words(tree)}
        base_to_wheel_words = _read_synonyms(folder / SYNONYM_FILE, wheel_words)
        form_to_bases = _read_formats(folder / FORMAT_FILE, base_to_wheel_words)
        return cls(form_to_bases, base_to_wheel_words, trees, source=str(folder))

    def group(self, label: str, wheel: str, level: int) -> Optional[str]:
        """The group of one label on ``wheel`` at ``level``, or None when it maps to nothing."""
        return self._groups[(wheel, level)].get(_clean(label))

    def group_set(self, labels: Iterable[str], wheel: str, level: int) -> Set[str]:
        """The groups of ``labels`` on ``wheel`` at ``level``; labels that map to nothing are dropped."""
        groups = self._groups[(wheel, level)]
        return {groups[key] for key in map(_clean, labels) if key in groups}


def _level_groups(tree: Mapping[str, Mapping[str, List[str]]], level: int) -> Dict[str, str]:
    groups: Dict[str, str] = {}
    for level1, branches in tree.items():
        groups[level1] = level1 if level == 1 else sorted(branches)[0]
        for level2, leaves in branches.items():
            groups[level2] = level1 if level == 1 else level2
            for level3 in leaves:
                groups[level3] = level1 if level == 1 else level2
    return groups


def _tree_words(tree: Mapping[str, Mapping[str, List[str]]]) -> Set[str]:
    words = set(tree)
    for branches in tree.values():
        words.update(branches)
        for leaves in branches.values():
            words.update(leaves)
    return words


def _read_table(path: Path, columns: Iterable[str]):
    """A pandas DataFrame of ``path`` (csv or xlsx) that has ``columns``."""
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_excel(path)
    except ImportError:
        raise
    except Exception as exc:  # pandas and its readers raise many types for an unreadable file
        raise EmotionWheelError(f"emotion wheel file {path} cannot be read: {exc}") from exc
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        raise EmotionWheelError(
            f"emotion wheel file {path} has the columns {', '.join(map(str, frame.columns)) or 'none'}; "
            f"it lacks {', '.join(absent)}"
        )
    if frame.empty:
        raise EmotionWheelError(f"emotion wheel file {path} has a header but no rows")
    return frame


def _read_wheel(path: Path) -> Dict[str, Dict[str, List[str]]]:
    import pandas as pd

    frame = _read_table(path, ("level1", "level2", "level3"))
    tree: Dict[str, Dict[str, List[str]]] = {}
    current = ["", "", ""]
    for row in frame[["level1", "level2", "level3"]].itertuples(index=False):
        for i, cell in enumerate(row):
            if not pd.isna(cell):
                current[i] = _clean(cell)
        level1, level2, level3 = current
        if not level1:
            raise EmotionWheelError(f"emotion wheel file {path}: its first row has no level1 emotion")
        tree.setdefault(level1, {}).setdefault(level2, []).append(level3)
    return tree


def _read_synonyms(path: Path, wheel_words: Set[str]) -> Dict[str, Set[str]]:
    columns = [name for run in SYNONYM_RUNS for name in (f"word_{run}", f"synonym_{run}")]
    frame = _read_table(path, columns)
    base_to_wheel_words: Dict[str, Set[str]] = {}
    for run in SYNONYM_RUNS:
        for row, (word, synonyms) in enumerate(zip(frame[f"word_{run}"], frame[f"synonym_{run}"]), start=2):
            if not isinstance(word, str) or not word.strip():
                raise EmotionWheelError(f"emotion wheel file {path}: column word_{run}, row {row} is empty")
            wheel_word = _clean(word)
            if wheel_word not in wheel_words:
                raise EmotionWheelError(
                    f"emotion wheel file {path}: word_{run}, row {row} is {word!r}, which no wheel*.xlsx lists"
                )
            base_to_wheel_words.setdefault(wheel_word, set()).add(wheel_word)
            for synonym in split_label_list(synonyms):
                base_to_wheel_words.setdefault(_clean(synonym), set()).add(wheel_word)
    return base_to_wheel_words


def _read_formats(path: Path, base_to_wheel_words: Mapping[str, Set[str]]) -> Dict[str, List[str]]:
    import pandas as pd

    frame = _read_table(path, ("name", "format"))
    form_to_bases: Dict[str, List[str]] = {}
    for row, (base, forms) in enumerate(zip(frame["name"], frame["format"]), start=2):
        base = "" if pd.isna(base) else str(base)
        if base not in base_to_wheel_words:
            raise EmotionWheelError(
                f"emotion wheel file {path}: row {row} names the base word {base!r}, which {SYNONYM_FILE} "
                "does not list; format.csv and synonym.xlsx must come from the same wheel folder"
            )
        for form in split_label_list("" if pd.isna(forms) else forms):
            form_to_bases.setdefault(form, []).append(base)
        form_to_bases.setdefault(base, []).append(base)
    return form_to_bases
