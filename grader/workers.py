"""Where a class's grading tasks run: worker processes on this machine, or a Dask cluster.

A ``Task`` carries one submission, its files packed into it (``grader.batch.pack``), so a worker needs
no access to ``submitted/``. ``run_task`` grades it in the worker: it unpacks the files into a fresh
temporary working copy, calls the grader (``grader.grade_one.grade_in_memory``, or a stand-in named by
``Task.grader``) and sends back an ``Outcome``: the result, the executed notebook's bytes as the grader
handed them back (the notebook carries the result in its metadata; nothing writes it on the worker, and
the parent writes it once, where it is kept) and which host graded it.
``running`` starts the workers for a list of tasks and yields the outcomes as they finish, whatever
order that is:

- default: a pool of ``jobs`` spawned processes on this machine; each lets the kernels it starts use
  ``cores // workers`` threads (``Task.threads``), so workers do not fight over cores;
- ``scheduler``: a Dask distributed scheduler address (or a ``distributed.Client``). Its workers need
  the course folder at ``Task.course_root`` and the course environment.

A worker that dies, or a grader that raises, gives an ``Outcome`` with ``grader_error`` set and no
result: the submission is not at fault, and the next run grades it again.
"""
from __future__ import annotations

import importlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

# The grader a worker calls, as "module:function" (a stand-in has its signature): it returns the result
# and the executed notebook's bytes (None when nothing ran), and writes no notebook itself.
DEFAULT_GRADER = "grader.grade_one:grade_in_memory"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Task:
    """What a worker needs to grade one submission."""

    student: str
    assignment: str
    files: bytes            # the submission folder as an uncompressed tar archive
    submission_hash: str
    course_root: str        # where the course folder is on the worker
    grader: str = DEFAULT_GRADER
    sandbox: bool | None = None
    threads: int | None = None


@dataclass
class Outcome:
    """What a worker sends back: the result (None if the grader itself failed) and the executed notebook."""

    student: str
    assignment: str
    submission_hash: str
    result: object | None
    executed: bytes | None = None   # the .ipynb file's bytes; None when nothing ran
    grader_error: str | None = None
    host: str = ""
    worker_seconds: float = 0.0


def load_grader(spec: str):
    """The function named by ``"module:function"``."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run_task(task: Task) -> Outcome:
    """Grade one submission in a fresh temporary working copy (runs in a worker process)."""
    start = time.perf_counter()
    if task.threads:
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(task.threads)
    outcome = Outcome(task.student, task.assignment, task.submission_hash, None, host=socket.gethostname())
    scratch = Path(tempfile.mkdtemp(prefix=f"grade-{task.assignment}-{task.student}-"))
    try:
        submission_dir = scratch / "submission" / task.student / task.assignment
        submission_dir.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(task.files), mode="r") as tar:
            tar.extractall(submission_dir, filter="data")
        grade = load_grader(task.grader)
        result, executed = grade(Path(task.course_root), task.assignment, task.student,
                                 submission_dir=submission_dir, workdir=scratch / "work", sandbox=task.sandbox)
        outcome.result, outcome.executed = result, executed
    except Exception:
        outcome.grader_error = traceback.format_exc()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        outcome.worker_seconds = time.perf_counter() - start
    return outcome


@contextmanager
def running(tasks: list[Task], *, jobs: int, scheduler=None,
            threads: int | None = None) -> Iterator[tuple[Iterator[Outcome], int]]:
    """Start grading ``tasks``; yield the outcomes (in the order they finish) and the number of workers.

    Args:
        tasks: what to grade; each one's ``threads`` is set here.
        jobs: worker processes on this machine (at most one per task); ignored with ``scheduler``.
        scheduler: a Dask scheduler address ("tcp://HOST:PORT") or a ``distributed.Client`` (left open).
        threads: CPU threads for each submission's kernel. Default: cores // workers on this machine; on a
            Dask cluster, whatever the workers' environment says.

    On leaving, the queued tasks are dropped (Ctrl-C does not grade the rest first) and a client made
    here is closed.
    """
    if scheduler is None or not tasks:
        workers = min(jobs, max(1, len(tasks)))
        for task in tasks:
            task.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        with closing(_local_stream(tasks, workers)) as stream:
            yield stream, workers
        return
    from distributed import Client

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        for task in tasks:
            task.threads = threads
        with closing(_dask_stream(tasks, client)) as stream:
            yield stream, _dask_workers(client)
    finally:
        if client is not scheduler:
            client.close()


def _executor(jobs: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _local_stream(tasks: list[Task], jobs: int) -> Iterator[Outcome]:
    from concurrent.futures import as_completed

    if not tasks:
        return
    pool = _executor(jobs)
    try:
        futures = {pool.submit(run_task, task): task for task in tasks}
        for future in as_completed(futures):
            yield _outcome_of(future, futures[future])
    finally:  # on Ctrl-C or an error here, drop the queued submissions instead of grading them all first
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_stream(tasks: list[Task], client) -> Iterator[Outcome]:
    from distributed import as_completed

    futures = {client.submit(run_task, task, key=f"grade-{task.assignment}-{task.student}-{task.submission_hash[:12]}",
                             pure=False, retries=1): task for task in tasks}
    for future in as_completed(list(futures)):
        yield _outcome_of(future, futures[future])


def _outcome_of(future, task: Task) -> Outcome:
    try:
        return future.result()
    except BaseException as error:  # the worker process died or the task could not run at all
        if isinstance(error, KeyboardInterrupt):
            raise
        return Outcome(task.student, task.assignment, task.submission_hash, None,
                       grader_error="".join(traceback.format_exception(error)))


def _dask_workers(client) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:
        return 1
