"""Sample names become file names under user folders: keep them inside those folders."""
from __future__ import annotations

import os


def check_sample_name(name: str, source: str) -> str:
    """Return ``name`` if it is a plain file stem; raise ValueError naming ``source`` otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source}: empty sample name; every row needs a name")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if any(sep in name for sep in separators) or ".." in name:
        raise ValueError(
            f"{source}: sample name {name!r} contains a path separator or '..'; names must be plain "
            f"file stems such as 'sample_00001'"
        )
    return name
