"""The grader's watchdog and its questions to the kernel, on an ordinary process (no kernel)."""
from __future__ import annotations

import subprocess
import time

import pytest

from grader import watchdog
from grader.kernel_session import ask_kernel
from grader.sandbox import Limits
from grader.watchdog import Watchdog


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _ended(proc, seconds=30.0) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def test_a_busy_tree_without_cpu_is_nudged_once_then_killed_as_stalled(sleeper, monkeypatch):
    woken = []
    monkeypatch.setattr(watchdog, "nudge_kernel", woken.append)
    watch = Watchdog(Limits(stall_seconds=1.5), connection_file="kernel.json")
    assert watch.nudge_seconds == 0.5
    watch.busy = True
    watch.start(sleeper.pid, mark="")
    try:
        assert _ended(sleeper) == -9
    finally:
        watch.stop()
    assert watch.reason == "stalled"
    assert woken == ["kernel.json"] and watch.nudges == 1, "one nudge per quiet spell"


def test_an_idle_tree_is_left_alone(sleeper):
    watch = Watchdog(Limits(stall_seconds=0.5))
    watch.start(sleeper.pid, mark="")
    try:
        assert _ended(sleeper, seconds=2.0) is None
    finally:
        watch.stop()
    assert watch.reason == "" and watch.nudges == 0


@pytest.mark.parametrize("limits, reason", [(Limits(memory=1), "out_of_memory"), (Limits(processes=0), "processes"),
                                            (Limits(output_flood=-1), "output")])
def test_a_tree_over_a_limit_is_killed_with_that_reason(sleeper, limits, reason):
    watch = Watchdog(limits)
    watch.start(sleeper.pid, mark="")
    try:
        assert _ended(sleeper) == -9
    finally:
        watch.stop()
    assert watch.reason == reason


def test_the_first_reason_is_kept():
    watch = Watchdog(Limits())
    watch.kill("output")
    watch.kill("stalled")
    assert watch.reason == "output"


class _Kernel:
    """Answers ``silent`` requests with a fixed user-expression result, seeing whether the watch is busy."""

    def __init__(self, watch, result=None, error=None):
        self.watch, self.result, self.error, self.busy_seen = watch, result, error, []

    def __call__(self, code, expressions, timeout):
        self.busy_seen.append(self.watch.busy)
        assert code == "" and list(expressions) == ["q"] and timeout == 60
        if self.error:
            raise self.error
        return {"status": "ok", "user_expressions": {"q": self.result}}


@pytest.mark.parametrize("result, expected", [
    ({"status": "ok", "data": {"text/plain": "['print was replaced', 2]"}}, ["print was replaced", "2"]),
    ({"status": "ok", "data": {"text/plain": "[]"}}, []),
    ({"status": "error", "ename": "NameError"}, ["the probe was disabled (NameError)"]),
    ({"status": "ok", "data": {"text/plain": "<object at 0x7f>"}}, ["the probe answered nonsense"]),
    ({"status": "ok", "data": {"text/plain": "42"}}, ["the probe answered nonsense"]),
    ({"status": "ok", "data": {}}, ["the probe answered nonsense"]),
])
def test_ask_kernel_reads_the_answer_and_names_the_asker(result, expected):
    watch = Watchdog(Limits())
    kernel = _Kernel(watch, result)
    assert ask_kernel(watch, kernel, "probe()", "the probe") == expected
    assert kernel.busy_seen == [True] and watch.busy is False


def test_ask_kernel_leaves_the_watch_idle_when_the_kernel_does_not_answer():
    watch = Watchdog(Limits())
    with pytest.raises(TimeoutError):
        ask_kernel(watch, _Kernel(watch, error=TimeoutError("no reply")), "probe()", "the probe")
    assert watch.busy is False
