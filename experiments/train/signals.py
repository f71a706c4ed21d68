"""Signal handlers held while the trainer is inside an optimizer step or writing a checkpoint.

`DeferredSignals` holds Python signal handlers (submitit's USR2 handler, the CLI's) during a
critical section and runs them right after it, so a handler that saves a checkpoint always sees
the state of a completed step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class DeferredSignals:
    """Run Python handlers of `signums` only outside `critical()` sections of the main thread."""

    def __init__(self, signums: tuple[int, ...] | None = None) -> None:
        default = (
            (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)
            if hasattr(signal, "SIGUSR1")
            else ()
        )
        self.signums = default if signums is None else signums
        self._originals: dict[int, Callable[..., Any]] = {}
        self._pending: list[tuple[int, Any]] = []
        self._depth = 0

    @property
    def busy(self) -> bool:
        """Whether a critical section is open."""
        return self._depth > 0

    def install(self) -> None:
        """Wrap the callable handlers now installed (again, if someone replaced ours)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signums:
            handler = signal.getsignal(signum)
            if callable(handler) and handler != self._handle:
                self._originals[signum] = handler
                signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Put the original handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._originals.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, handler)
        self._originals.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self._depth:
            self._pending.append((signum, frame))
        else:
            self._originals[signum](signum, frame)

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Hold the wrapped handlers until the block ends, then run those that arrived.

        If the block raises, the held handlers are dropped: the state may be half-updated,
        and a checkpoint of it must not be written.
        """
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if not self._depth:
                self._pending.clear()
            raise
        self._depth -= 1
        while not self._depth and self._pending:
            signum, frame = self._pending.pop(0)
            self._originals[signum](signum, frame)
