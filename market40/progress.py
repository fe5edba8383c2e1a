"""A plain-text progress bar for management commands (stderr, only on a terminal
unless forced), so long runs show where they are without flooding CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self, label: str, *, stream: TextIO | None = None, width: int = 30, force: bool = False
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = force or self.stream.isatty()
        self.started = time.monotonic()
        self._last = -1.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        fraction = min(done / total, 1.0)
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.1:
            return
        self._last = now
        filled = int(self.width * fraction)
        bar = "█" * filled + "░" * (self.width - filled)
        elapsed = now - self.started
        self.stream.write(f"\r{self.label} [{bar}] {fraction:6.1%} {elapsed:5.1f}s")
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()
