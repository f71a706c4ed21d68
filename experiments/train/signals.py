"""Signal handlers held while the trainer is inside an optimizer step or writing a checkpoint.

`DeferredSignals` holds Python signal handlers (submitit's USR2 handler, the CLI's) during a
critical section and runs them right after it, so a handler that saves a checkpoint always sees
the state of a completed step. With several ranks (`hold=True`) it holds them until `release()`:
the ranks first agree, in the step's all-reduce, to stop after the same optimizer step, so that
no rank leaves while another waits for it in a collective.

DataLoader workers are forked copies of the trainer: a signal to the whole process group (Slurm
signals every process of a job step) reaches them too, and a copy that ran the trainer's handler
would checkpoint its stale state, or die and fail the run. Every loader the project builds
passes `worker_signals` as its `worker_init_fn`, and `DeferredSignals` never runs a handler in a
process other than the one that installed it (the moments between a fork and `worker_signals`).

Python runs a handler wherever the main thread is, and what the handler raises is printed and
dropped there if that is a `__del__`, a weakref callback or an at-fork hook (a loader forking
its workers). The trainer then calls `raise_swallowed()` at its safe points, so a handler's
`Preempted` or `SystemExit` still ends the run.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PREEMPTION_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGUSR1", "SIGUSR2", "SIGTERM") if hasattr(signal, name)
)


def worker_signals(worker_id: int) -> None:
    """`worker_init_fn` of every loader: the preemption signals never stop a loader worker.

    USR1 and USR2 are ignored. SIGTERM is blocked and read by a thread: from the worker's parent
    (torch's and multiprocessing's way of ending a worker) it ends the worker at once, as
    torch's own handler does; from anyone else (a signal to the process group) it is ignored,
    and the parent, which checkpoints and exits on it, ends its workers itself.
    """
    del worker_id
    if threading.current_thread() is not threading.main_thread():
        return
    others = {s for s in PREEMPTION_SIGNALS if s != getattr(signal, "SIGTERM", None)}
    for signum in others:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "sigwaitinfo"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, others)  # blocked since the fork: `blocked`
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_end_on_parents_sigterm, daemon=True).start()


@contextmanager
def blocked() -> Iterator[None]:
    """Block the preemption signals in this thread while the block runs (they wait, not lost).

    Loader workers are forked inside it: they start with the signals blocked (a fork inherits
    the mask) and keep them so until `worker_signals`, so a signal to the process group as they
    start neither kills one (torch's own SIGTERM handler) nor reaches a handler in a fork hook.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, PREEMPTION_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _end_on_parents_sigterm() -> None:
    """Wait for SIGTERMs (blocked in every thread); exit on the parent's, ignore the others'."""
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == os.getppid():
            os._exit(0)


class StopRequested(BaseException):  # noqa: N818 - a requested stop, not an error
    """Raised to leave the training loop on a signal (after a checkpoint, where one is due)."""


class DeferredSignals:
    """Run Python handlers of `signums` only outside `critical()` sections of the main thread.

    `hold=True`: only when `release()` is called (several ranks stop at an agreed step).
    """

    def __init__(self, signums: tuple[int, ...] | None = None, hold: bool = False) -> None:
        self.signums = PREEMPTION_SIGNALS if signums is None else signums
        self.hold = hold
        self._originals: dict[int, Callable[..., Any]] = {}
        self._pending: list[tuple[int, Any]] = []
        self._depth = 0
        self._pid = os.getpid()  # a forked copy (a loader worker) never runs the handlers
        self._raised: BaseException | None = None  # by a handler: see `raise_swallowed`

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
        self._pid, self._raised = os.getpid(), None

    def uninstall(self) -> None:
        """Put the original handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._originals.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, handler)
        self._originals.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            return  # a forked copy of the trainer (a loader worker before `worker_signals`)
        if self._depth or self.hold:
            self._pending.append((signum, frame))
        else:
            self._run(signum, frame)

    def _run(self, signum: int, frame: Any) -> None:
        """Run a wrapped handler; keep what it raises for `raise_swallowed`."""
        try:
            self._originals[signum](signum, frame)
        except BaseException as err:
            self._raised = err
            raise

    def raise_swallowed(self) -> None:
        """Raise again what a handler raised where Python swallowed it (see the module doc)."""
        err, self._raised = self._raised, None
        if err is not None:
            raise err

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
            self._run(signum, frame)
