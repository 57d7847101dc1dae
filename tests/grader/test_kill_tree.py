"""The grader's clean-up kills every process a submission started, even one that looks dead."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from grader.sandbox import RUN_MARK, kill_tree, marked_processes

# A process whose main thread exits (pthread_exit) while another thread runs on: /proc shows the
# process as a zombie, yet its second thread keeps running and could go on writing files.
HALF_DEAD = """
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(600,)).start()
time.sleep(0.1)
ctypes.CDLL(None).pthread_exit(None)
"""
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(600)
"""


def state(stat: bytes) -> str:
    """The state letter of a /proc stat line."""
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3].decode()


def read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def thread_states(pid: int) -> list[str]:
    """The state letter of each thread of ``pid`` (none once it is gone)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    return [state(data) for tid in tasks if (data := read(f"/proc/{pid}/task/{tid}/stat"))]


def main_state(pid: int) -> str:
    """The state letter /proc/PID/stat shows: its main thread's."""
    data = read(f"/proc/{pid}/stat")
    return state(data) if data else ""


def test_kill_tree_kills_a_process_whose_main_thread_has_exited():
    mark = f"test-{os.getpid()}"
    env = {**os.environ, RUN_MARK: mark}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, HALF_DEAD], stdout=subprocess.PIPE, env=env)
    child = None
    try:
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while not (main_state(child) == "Z" and any(state not in "ZX" for state in thread_states(child))):
            assert time.monotonic() < deadline, f"the child never reached its half-dead state: {thread_states(child)}"
            time.sleep(0.05)
        assert child in marked_processes(mark), "a half-dead process must still be found by its mark"

        kill_tree(parent.pid, mark=mark)
        deadline = time.monotonic() + 10
        while any(state not in "ZX" for state in thread_states(child)):
            assert time.monotonic() < deadline, f"a thread outlived kill_tree: {thread_states(child)}"
            time.sleep(0.05)
    finally:
        for pid in (parent.pid, child):
            try:
                if pid:
                    os.kill(pid, 9)
            except ProcessLookupError:
                pass
        parent.wait()
