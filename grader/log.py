"""The grader's one logger, for diagnostics, warnings and progress notes.

Each module of ``grader`` logs to its own child of the ``grader`` logger::

    logger = logging.getLogger(__name__)   # "grader.batch", "grader.runner", ...

(a module that also runs as ``python -m grader.<name>`` spells its name out, since ``__name__`` is then
"__main__"), and each command line entry point (the ``main`` of ``python -m grader``, ``grader.rubric``,
``grader.feedback``, ...) calls ``setup`` once. What a command was asked for (a table of grades, the
checks of a notebook, the files it wrote) is its result: it is printed to stdout, not logged.

Where ``setup`` was not called (a worker process, a library caller), Python's last-resort handler
still shows warnings and errors on stderr.
"""
from __future__ import annotations

import logging
import sys

NAME = "grader"


class _Format(logging.Formatter):
    """A note as it is; a warning or an error after its level ("error: ..."), unless it already says it."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = record.levelname.lower() + ": "
        if record.levelno >= logging.WARNING and not text.lower().startswith(prefix):
            text = prefix + text
        return text


def setup(verbose: bool = False) -> logging.Logger:
    """Send the grader's messages to stderr: progress notes and above, details too when ``verbose``.

    Calling it again replaces what the first call set up (one handler, never two).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format("%(message)s"))
    logger = logging.getLogger(NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False  # the handler above is the one place the messages go
    return logger
