"""The grading benchmark counts every kernel that sat idle mid-cell, from the submissions' logs."""
import sys
from types import SimpleNamespace

from conftest import ROOT  # noqa: E402
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_grading  # noqa: E402


def test_kernel_waits_reads_wakes_and_stalls_from_the_logs(tmp_path):
    quiet = tmp_path / "a.log"
    quiet.write_text("integrity probe: 0.4 s\nstatus graded; score 7/7; sandboxed\n")
    woken = tmp_path / "b.log"
    woken.write_text("woke a kernel that waited idle 2 time(s) (a request left unread)\nstatus graded\n")
    stalled = tmp_path / "c.log"
    stalled.write_text("attempt 1: the kernel stalled in cell slider (no CPU and no output); grading again\n"
                       "woke a kernel that waited idle 1 time(s) (a request left unread)\n")
    rows = [SimpleNamespace(student=s, assignment="01_UNets", log=str(p))
            for s, p in (("s1", quiet), ("s2", woken), ("s3", stalled))]
    rows.append(SimpleNamespace(student="s4", assignment="01_UNets", log=None))  # the grader failed: no log
    waits = bench_grading.kernel_waits(rows)
    assert (waits["gradings"], waits["woken"], waits["nudges"], waits["stalled"]) == (4, 2, 3, 1)
    assert waits["where"] == ["s3 01_UNets: the kernel stalled in cell slider (no CPU and no output)"]
