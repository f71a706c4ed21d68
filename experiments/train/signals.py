"""Signal handlers held while the trainer is inside an optimizer step or writing a checkpoint.

`DeferredSignals` holds Python signal handlers (submitit's USR2 handler, the CLI's) during a
critical section and runs them right after it, so a handler that saves a checkpoint always sees
the state of a completed step. With several ranks (`hold=True`) it holds them until `release()`:
the ranks first agree, in the step's all-reduce, to stop after the same optimizer step, so that
no rank leaves while another waits for it in a collective.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class StopRequested(BaseException):  # noqa: N818 - a requested stop, not an error
    """Raised to leave the training loop on a signal (after a checkpoint, where one is due)."""


class DeferredSignals:
    """Run Python handlers of `signums` only outside `critical()` sections of the main thread.

    `hold=True`: only when `release()` is called (several ranks stop at an agreed step).
    """

    def __init__(self, signums: tuple[int, ...] | None = None, hold: bool = False) -> None:
        default = (
            (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM) if hasattr(signal, "SIGUSR1") else ()
        )
        self.signums = default if signums is None else signums
        self.hold = hold
        self._originals: dict[int, Callable[..., Any]] = {}
        self._pending: list[tuple[int, Any]] = []
        self._depth = 0

    @property
    def pending(self) -> bool:
        """Whether a signal arrived whose handler has not run yet."""
        return bool(self._pending)

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
        if self._depth or self.hold:
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
        if not self.hold:
            self.release()

    def release(self) -> None:
        """Run the handlers of the signals that arrived, in their order (outside any block)."""
        while not self._depth and self._pending:
            signum, frame = self._pending.pop(0)
            self._originals[signum](signum, frame)
