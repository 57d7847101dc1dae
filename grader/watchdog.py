"""The trusted side's watchdog over one grading kernel's process tree: stall, memory, processes, output.

A thread samples the tree four times a second (``grader.sandbox.tree_usage``) and kills it, with the
reason kept in ``Watchdog.reason``, when it holds more memory or processes than the limits allow, when
the output received passes the flood limit, or when, while a request is running (``busy``), it has used
no CPU and sent no message for ``stall_seconds``.
"""
from __future__ import annotations

import threading
import time
from enum import StrEnum

from grader import sandbox as sb
from grader.sandbox import Limits


class KillReason(StrEnum):
    """Why the watchdog killed a kernel tree (``Watchdog.reason``); ``grader.runner`` turns it into a ``Status``."""

    OUT_OF_MEMORY = "out_of_memory"   # more resident memory than ``Limits.memory``
    PROCESSES = "processes"           # more processes than ``Limits.processes``
    OUTPUT = "output"                 # more output than ``Limits.output_flood``
    STALLED = "stalled"               # no CPU and no message for ``Limits.stall_seconds`` while busy


def nudge_kernel(connection_file: str) -> None:
    """Connect to the kernel afresh and ask for its info, then disconnect.

    ipykernel 7 can leave an execute request unread in its shell socket until some other client
    connects (ipython/ipykernel#1554): the kernel sits idle and the grader waits for a reply that
    never comes. A request from a new connection wakes the socket, and the waiting request runs.
    Never raises: a kernel that cannot be reached is left to the stall limit.
    """
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient(connection_file=connection_file)
    try:
        kc.load_connection_file()
        kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        kc.kernel_info()
        kc.get_shell_msg(timeout=5)
    except Exception:  # queue.Empty, a dead kernel: the stall limit decides what happens next
        pass
    finally:
        kc.stop_channels()


class Watchdog:
    """Watches one kernel tree from a thread, between ``start`` and ``stop``.

    A kernel that waits idle while a cell is running is first nudged (``nudge_kernel``), once per
    quiet spell, after ``nudge_seconds``; only if it still does nothing for ``stall_seconds`` is it
    killed as stalled. Whoever sends the kernel a request sets ``busy`` while it runs and calls
    ``touch`` for each message received; the output's size in bytes is added to ``output_bytes``.
    """

    def __init__(self, limits: Limits, connection_file: str | None = None):
        self.limits = limits
        self.connection_file = connection_file
        self.nudge_seconds = min(10.0, limits.stall_seconds / 3)
        self.nudges = 0
        self._nudged_since: float | None = None
        self.root: int | None = None
        self.mark = ""
        self.last_activity = time.monotonic()
        self.reason: KillReason | str = ""    # "" while nothing was killed
        self.output_bytes = 0
        self.busy = False
        self.last_message = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, root: int | None, mark: str) -> None:
        """Watch the tree under process ``root`` (None: nothing yet); ``mark`` finds its stragglers."""
        self.root, self.mark = root, mark
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def kill(self, reason: KillReason) -> None:
        """Kill the tree; the first reason given is the one kept."""
        if not self.reason:
            self.reason = reason
        if self.root:
            sb.kill_tree(self.root, mark=self.mark)

    def _run(self) -> None:
        cpu_then, since = None, time.monotonic()
        while not self._stop.wait(0.25):
            if self.root is None:
                continue
            cpu, rss, processes = sb.tree_usage(self.root)
            if rss > self.limits.memory:
                self.kill(KillReason.OUT_OF_MEMORY)
            elif processes > self.limits.processes:
                self.kill(KillReason.PROCESSES)
            elif self.output_bytes > self.limits.output_flood:
                self.kill(KillReason.OUTPUT)
            now = time.monotonic()
            if cpu_then is None or cpu - cpu_then > 0.2 or not self.busy:
                cpu_then, since = cpu, now
            elif now - max(since, self.last_activity) > self.limits.stall_seconds:
                self.kill(KillReason.STALLED)
            elif (self.connection_file and now - max(since, self.last_activity) > self.nudge_seconds
                  and self._nudged_since != max(since, self.last_activity)):
                self._nudged_since = max(since, self.last_activity)
                self.nudges += 1
                nudge_kernel(self.connection_file)
