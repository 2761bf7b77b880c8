"""The error a dataset raises for a sample it cannot load."""
from __future__ import annotations

from my_affectgpt.common.errors import UserError


class BadSampleError(UserError, ValueError):
    """A sample that cannot be loaded; the message names the sample and the file."""

    def __init__(self, name: str, path, reason: str, skip: bool = False):
        self.name, self.path, self.reason = name, str(path), reason
        self.skip = skip  # skipped whatever run.on_bad_sample says (a per-dataset policy chose it)
        super().__init__(
            f"sample '{name}': {reason} ({path}). Fix or remove the file, or set run.on_bad_sample: skip "
            f"to skip such samples (they are counted)."
        )

    def __reduce__(self):  # DataLoader workers pickle the exception to the main process
        return (type(self), (self.name, self.path, self.reason, self.skip))


class DatasetError(UserError, ValueError):
    """A dataset block whose files cannot be used as a whole (no samples, missing columns, ...)."""
