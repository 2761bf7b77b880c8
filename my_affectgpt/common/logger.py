"""Console logging and the training progress line.

Progress lines keep the format users of LAVIS/AffectGPT grep for::

    Train: data epoch: [1]  [ 50/1000]  eta: 0:04:58  lr: 0.00005000  loss: 2.65583491

(the epoch numbered from 1, the iteration from 0 and padded to the width of the last index).
An iteration that produced no loss shows a note instead (``loss: skipped``). Lines are printed every
``run.log_freq`` iterations and at the last one; on an interactive terminal a tqdm bar runs
underneath them.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import time
import warnings
from collections import deque
from typing import Dict, Iterable, Iterator, Optional

from my_affectgpt.common.dist_utils import is_main_process

LOGGER_NAME = "my_affectgpt"
logger = logging.getLogger(LOGGER_NAME)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of the call (pytest, tqdm swap it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


class _PlainFormatter(logging.Formatter):
    """Messages as they are; warnings and errors prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def setup_logging() -> logging.Logger:
    """Send the ``my_affectgpt`` logger to stdout: INFO on rank 0, warnings only elsewhere.

    Safe to call more than once.
    """
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(_PlainFormatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if is_main_process() else logging.WARNING)
    # Libraries may configure the root logger (open_clip's logging.warning does): without this
    # every line would be printed twice.
    logger.propagate = False
    # Raised inside peft on every model build; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # bitsandbytes (the 4/8-bit extra) says on every import, on a CPU, that its optional
    # CPU kernels are missing; it then uses its own, which work.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    if not sys.stderr.isatty():  # transformers' weight-loading bars only clutter logs and CI output
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        hf_logging = sys.modules.get("transformers.utils.logging")
        if hf_logging is not None:  # imported already: it read the variable at import time
            hf_logging.disable_progress_bar()
    return logger


class SmoothedValue:
    """A series of values with a recent window and running totals.

    :meth:`note` marks the latest iteration as having no value: it is shown instead of the
    last value until the next :meth:`update`, and counts in no total.
    """

    def __init__(self, window_size: int = 20, fmt: str = "{median:.4f} ({global_avg:.4f})"):
        self.window = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0
        self.fmt = fmt
        self.missing: Optional[str] = None

    def update(self, value: float, n: int = 1) -> None:
        self.window.append(value)
        self.total += value * n
        self.count += n
        self.missing = None

    def note(self, why: str) -> None:
        self.missing = why

    @property
    def value(self) -> float:
        return self.window[-1]

    @property
    def median(self) -> float:
        ordered = sorted(self.window)
        return ordered[len(ordered) // 2]

    @property
    def avg(self) -> float:
        return sum(self.window) / len(self.window)

    @property
    def global_avg(self) -> float:
        return self.total / self.count

    def __str__(self) -> str:
        if self.missing is not None:
            return self.missing
        return self.fmt.format(value=self.value, median=self.median, avg=self.avg, global_avg=self.global_avg)


class MetricLogger:
    """Named meters plus :meth:`log_every`, which prints the progress line."""

    def __init__(self, delimiter: str = "  "):
        self.meters: Dict[str, SmoothedValue] = {}
        self.delimiter = delimiter

    def add_meter(self, name: str, meter: SmoothedValue) -> None:
        self.meters[name] = meter

    def update(self, **values: float) -> None:
        for name, value in values.items():
            self.meters.setdefault(name, SmoothedValue()).update(float(value))

    def global_avgs(self) -> Dict[str, float]:
        return {name: m.global_avg for name, m in self.meters.items() if m.count}

    def __str__(self) -> str:
        shown = (f"{name}: {meter}" for name, meter in self.meters.items() if meter.count or meter.missing)
        return self.delimiter.join(shown)

    def log_every(self, indices: Iterable[int], total: int, log_freq: int, header: str) -> Iterator[int]:
        """Yield ``indices`` (0-based iterations out of ``total``) and log after each chosen one.

        A line is logged after iteration ``i`` when ``i % log_freq == 0`` or it is the last
        (``total - 1``); the meters then hold that iteration's values.
        """
        indices = list(indices)
        width = len(str(max(total - 1, 0)))
        started, done = time.time(), 0
        with _progress_bar(total, initial=indices[0] if indices else total, desc=header) as bar:
            for i in indices:
                yield i
                done += 1
                if bar is not None:
                    bar.update(1)
                if i % log_freq == 0 or i == total - 1:
                    eta = (time.time() - started) / done * (total - 1 - i)
                    fields = [header, f"[{i:>{width}}/{total}]", f"eta: {datetime.timedelta(seconds=int(eta))}", str(self)]
                    logger.info(self.delimiter.join(fields))


@contextlib.contextmanager
def _progress_bar(total: int, initial: int, desc: str):
    """A tqdm bar on rank 0 when stdout is an interactive terminal (else None).

    While it runs, log records go through ``tqdm.write`` so lines do not tear the bar.
    """
    if not (is_main_process() and sys.stdout.isatty()):
        yield None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logger]), tqdm(
        total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True
    ) as bar:
        yield bar
