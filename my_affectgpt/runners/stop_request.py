"""Ctrl-C and SIGTERM during training: finish the current iteration, then stop cleanly.

While :class:`StopRequest` is active (in the main thread), the first SIGINT or SIGTERM only
records the request; the runner checks it once per iteration (agreeing across ranks, so every
process stops at the same iteration) and raises :class:`TrainingInterrupted`, whose message
says which checkpoint ``--resume auto`` continues from. A second signal stops at once
(``KeyboardInterrupt``), for a process stuck where the check never comes.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Optional

logger = logging.getLogger("my_affectgpt")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class StopRequest:
    """``with StopRequest() as stop:`` ... ``if stop.signal is not None:`` stop."""

    def __init__(self):
        self.signal: Optional[signal.Signals] = None
        self._previous = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal or signal.SIGINT)

    def _handle(self, signum: int, _frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum)
        logger.warning(f"{self.signal.name} received: stopping after the current iteration "
                       f"(send it again to stop at once)")
