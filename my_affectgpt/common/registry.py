"""A LAVIS-style registry of named components.

The production registry is ``registry`` below; modules fill it by decorator when they are
imported (that is the only import-time side effect the package has). Tests that need a toy
component call ``registry.child()`` and register into the child: lookups fall back to the
parent, so nothing global is changed and nothing has to be reset afterwards.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

from my_affectgpt.common.errors import UserError

BUCKETS = (
    "builder",  # dataset builders, keyed by dataset name
    "model",
    "task",
    "runner",
    "lr_scheduler",
    "encoder",
)


class RegistryError(UserError, KeyError):
    """An unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class Registry:
    def __init__(self, parent: Optional["Registry"] = None):
        self._parent = parent
        self._items: Dict[str, Dict[str, object]] = {b: {} for b in BUCKETS}

    def child(self) -> "Registry":
        """A registry that sees everything in this one and can add names of its own."""
        return Registry(parent=self)

    def register(self, bucket: str, name: str) -> Callable:
        self._check_bucket(bucket)

        def wrap(obj):
            if name in self.names(bucket):
                raise RegistryError(
                    f"{bucket} '{name}' is already registered "
                    f"(by {self.get(bucket, name)!r}); pick another name"
                )
            self._items[bucket][name] = obj
            return obj

        return wrap

    def get(self, bucket: str, name: str):
        self._check_bucket(bucket)
        if name in self._items[bucket]:
            return self._items[bucket][name]
        if self._parent is not None and name in self._parent.names(bucket):
            return self._parent.get(bucket, name)
        known = ", ".join(sorted(self.names(bucket))) or "(none)"
        raise RegistryError(f"unknown {bucket} '{name}'; known {bucket} names: {known}")

    def names(self, bucket: str) -> Iterable[str]:
        self._check_bucket(bucket)
        own = set(self._items[bucket])
        return own | set(self._parent.names(bucket)) if self._parent else own

    @staticmethod
    def _check_bucket(bucket: str) -> None:
        if bucket not in BUCKETS:
            raise RegistryError(f"unknown registry bucket '{bucket}'; buckets: {', '.join(BUCKETS)}")

    # LAVIS-style shorthands -------------------------------------------------
    def register_builder(self, name: str):
        return self.register("builder", name)

    def register_model(self, name: str):
        return self.register("model", name)

    def register_task(self, name: str):
        return self.register("task", name)

    def register_runner(self, name: str):
        return self.register("runner", name)

    def register_lr_scheduler(self, name: str):
        return self.register("lr_scheduler", name)

    def register_encoder(self, name: str):
        return self.register("encoder", name)

    def get_builder_class(self, name: str):
        return self.get("builder", name)

    def get_model_class(self, name: str):
        return self.get("model", name)

    def get_task_class(self, name: str):
        return self.get("task", name)

    def get_runner_class(self, name: str):
        return self.get("runner", name)

    def get_lr_scheduler_class(self, name: str):
        return self.get("lr_scheduler", name)

    def get_encoder_class(self, name: str):
        return self.get("encoder", name)


registry = Registry()
