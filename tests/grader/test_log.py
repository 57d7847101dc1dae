"""grader.log: the grader's one logger, as the command line entry points set it up."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from conftest import ROOT
from grader.log import NAME, setup


@pytest.fixture
def grader_logger():
    logger = logging.getLogger(NAME)
    saved = logger.handlers[:], logger.level, logger.propagate
    yield logging.getLogger(f"{NAME}.test_log")
    logger.handlers[:], logger.level, logger.propagate = saved


def test_notes_go_as_they_are_warnings_named_and_details_only_when_verbose(grader_logger, capsys):
    setup(verbose=False)
    grader_logger.debug("a detail")
    grader_logger.info("  01_UNets 1/3: a note")
    grader_logger.warning("a warning")
    grader_logger.error("error: said already")
    assert capsys.readouterr() == ("", "  01_UNets 1/3: a note\nwarning: a warning\nerror: said already\n")
    setup(verbose=True)
    setup(verbose=True)
    grader_logger.debug("a detail")
    assert capsys.readouterr().err == "a detail\n", "setting up twice leaves one handler"


def test_a_command_says_its_error_on_stderr_and_nothing_on_stdout(tmp_path):
    missing = tmp_path / "autograded"
    run = subprocess.run([sys.executable, "-m", "grader.feedback", "--results", str(missing)], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == f"error: no graded results in {missing}/: run `make autograde` first\n"
