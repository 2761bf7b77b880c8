"""Reading ``.npz`` files that hold pickled Python objects, without running code from them.

``np.load(allow_pickle=True)`` unpickles object arrays with the standard unpickler, which
imports and calls whatever the file names, so a crafted file runs code when it is opened.
Here object arrays are unpickled by an unpickler that resolves only what numpy needs to
rebuild arrays and scalars, plus a few plain containers; dicts, lists, tuples, strings and
numbers need no lookup at all. A file that names anything else is refused before any of
it is built.
"""
from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np


class RefusedPickleError(pickle.UnpicklingError):
    """A pickle that names something other than plain data."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        super().__init__(f"the pickled data names {module}.{name}, which plain data never needs")


def _allowed_globals() -> Dict[Tuple[str, str], Callable]:
    rebuild_array = np.arange(1).__reduce__()[0]  # numpy's own array reconstructor
    rebuild_scalar = np.float64(0).__reduce__()[0]  # numpy's own scalar reconstructor
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # files from numpy 1.x and 2.x
        allowed[(module, "_reconstruct")] = rebuild_array
        allowed[(module, "scalar")] = rebuild_scalar
    return allowed


class _PlainDataUnpickler(pickle.Unpickler):
    allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise RefusedPickleError(module, name) from None


def _read_npy(data: bytes) -> np.ndarray:
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read_header:
        if version == (3, 0):  # only used for dtypes with non-latin-1 field names: never pickled
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        raise ValueError(f"unsupported .npy format version {version}")
    _, _, dtype = read_header[version](stream)
    if not dtype.hasobject:
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    array = _PlainDataUnpickler(stream, encoding="ASCII").load()  # numpy's own default encoding
    if not isinstance(array, np.ndarray):
        raise ValueError(f"an object array entry unpickles to {type(array).__name__}, not an array")
    return array


def load_npz(path: str | Path) -> Dict[str, np.ndarray]:
    """Every array of an ``.npz``, object arrays unpickled as plain data only.

    Raises ``RefusedPickleError`` for a pickle that names anything else, and
    ``zipfile.BadZipFile``/``ValueError``/``OSError``/``pickle.UnpicklingError`` for a file
    that is not a readable ``.npz``.
    """
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                arrays[member[: -len(".npy")]] = _read_npy(archive.read(member))
    return arrays
