"""Sample names become file names under user folders: keep them inside those folders."""
from __future__ import annotations

import os

from my_affectgpt.common.errors import UserError


class InvalidSampleNameError(UserError, ValueError):
    """A sample name that is not a plain file stem."""


def check_sample_name(name: str, source: str = "") -> str:
    """Return ``name`` if it is a plain file stem; raise InvalidSampleNameError (naming
    ``source``, where the name came from) otherwise."""
    where = f"{source}: " if source else ""
    if not isinstance(name, str) or not name.strip():
        raise InvalidSampleNameError(f"{where}empty sample name {name!r}; every row needs a name")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if any(sep in name for sep in separators) or ".." in name or "\x00" in name:
        raise InvalidSampleNameError(
            f"{where}sample name {name!r} contains a path separator or '..'; names must be plain "
            f"file stems such as 'sample_00001'"
        )
    return name
