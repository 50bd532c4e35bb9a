"""Reaping supervisors as soon as they exit, so the agent's process tree holds only runs in flight.

A supervisor that has exited stays a zombie until its parent (the agent) waits for it. Left to
the monitor, which looks at each run once per ``monitor_interval`` and is busy with API calls,
a burst of short runs piles up hundreds of them. The :class:`Reaper` owns the agent's
supervisor children and waits for each one the moment it exits: one thread blocked on the
children's pidfds (Linux), or polling them every :data:`POLL_SECONDS` where pidfds are missing.
It only ever waits for its own children's pids, never for "any child", so it cannot steal the
exit status of another part of the agent.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading

POLL_SECONDS = 0.1

Child = subprocess.Popen[bytes]


class Reaper:
    """The supervisor children of one agent, keyed by run directory name."""

    def __init__(self) -> None:
        self._children: dict[str, Child] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._closed = False

    # --- the children ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the reaping thread (at start-up, so that no deploy pays for it; idempotent)."""
        with self._lock:
            self._start()

    def add(self, key: str, child: Child) -> None:
        """Own ``child`` (just started) until it exits."""
        with self._lock:
            self._children[key] = child
            if not self._closed:  # shutting down: whoever holds the process after us reaps it
                self._start()
                self._wake()

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_w, False)  # a full pipe already means "wake up"
            self._thread = threading.Thread(target=self._run, name="local-reaper", daemon=True)
            self._thread.start()

    def alive(self, key: str) -> bool | None:
        """Whether the child of ``key`` still runs; ``None`` if it is not ours (any more).

        Exited children are dropped once reaped, so ``None`` also answers for them: the caller
        then looks at the run directory and ``/proc``.
        """
        with self._lock:
            child = self._children.get(key)
        if child is None:
            return None
        return child.poll() is None

    def running(self) -> list[Child]:
        """The children that have not exited (for tests and shutdown)."""
        with self._lock:
            children = list(self._children.values())
        return [child for child in children if child.poll() is None]

    def close(self) -> None:
        """Stop the reaping thread; the children keep running (a restarted agent re-attaches)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._wake()
        if thread is not None:
            thread.join(5)
            with contextlib.suppress(OSError):
                os.close(self._wake_r)
                os.close(self._wake_w)

    # --- the thread -----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _run(self) -> None:
        watched: dict[str, int] = {}  # key -> pidfd
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            while True:
                with self._lock:
                    if self._closed:
                        break
                    children = dict(self._children)
                unwatched = self._watch(selector, watched, children)
                for event, _ in selector.select(POLL_SECONDS if unwatched else None):
                    if event.data is None:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 4096)
                self._reap_exited(selector, watched, children)
            for fd in watched.values():
                selector.unregister(fd)
                os.close(fd)

    def _watch(self, selector: selectors.BaseSelector, watched: dict[str, int], children: dict[str, Child]) -> bool:
        """Register a pidfd for each new child; True if some child must be polled instead."""
        unwatched = False
        for key, child in children.items():
            if key in watched:
                continue
            try:
                fd = os.pidfd_open(child.pid)
            except (AttributeError, OSError):
                unwatched = True  # no pidfds here (or not for this pid): polled
                continue
            watched[key] = fd
            selector.register(fd, selectors.EVENT_READ, key)
        return unwatched

    def _reap_exited(
        self, selector: selectors.BaseSelector, watched: dict[str, int], children: dict[str, Child]
    ) -> None:
        for key, child in children.items():
            if child.poll() is None:  # reaps it if it has exited
                continue
            with self._lock:
                if self._children.get(key) is child:
                    del self._children[key]
            fd = watched.pop(key, None)
            if fd is not None:
                selector.unregister(fd)
                os.close(fd)
        for key in [key for key in watched if key not in children]:
            fd = watched.pop(key)  # forgotten by the plugin meanwhile
            selector.unregister(fd)
            os.close(fd)
