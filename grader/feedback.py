"""Feedback pages that teach without giving the tests away.

    python -m grader.feedback [--results autograded] [--out feedback]      (what ``make feedback`` runs)

For every submission graded by ``grader.grade_one`` under the results folder (its executed notebook,
which keeps the result in its metadata: ``grader.result.read_result`` reads it, as for nbgrader's
Generate Feedback), writes
``<out>/<student>/<assignment>/<assignment>.html``: the student's own cells with their outputs,
and for each graded check only its score and its message. Never the code of a check, its inputs
or its reference values (hidden tests live only in the instructor's ``executed.ipynb``), and never
raw HTML or script from an output: text is escaped, only PNG/JPEG images are shown, and the page
forbids scripts (Content-Security-Policy).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import html
import logging
import re
import shutil
import sys
from pathlib import Path

import nbformat

from grader.cells import meta
from grader.log import setup
from grader.result import Status, SubmissionResult, read_result

logger = logging.getLogger("grader.feedback")
MAX_OUTPUT_CHARS = 20_000
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.4; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
pre.out { background: #fff; border-left: 3px solid #ccc; }
.check { padding: .5em .8em; margin: .6em 0; border-radius: 4px; }
.pass { background: #e6f4e6; } .fail { background: #fbe9e9; }
.md { color: #333; } .note { background: #fff4d6; padding: .5em; }
"""


def _text(value) -> str:
    text = "".join(value) if isinstance(value, list) else str(value)
    text = ANSI.sub("", text)
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[:MAX_OUTPUT_CHARS] + f"\n[... {len(text) - MAX_OUTPUT_CHARS} more characters not shown]"
    return html.escape(text)


def _image(data: str, mime: str) -> str:
    raw = "".join(data) if isinstance(data, list) else str(data)
    raw = re.sub(r"\s", "", raw)
    try:
        base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return f'<img alt="figure" src="data:{mime};base64,{raw}">'


def _outputs(cell) -> list[str]:
    parts = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(f'<pre class="out">{_text(output.get("text", ""))}</pre>')
        elif kind == "error":
            parts.append(f'<pre class="out">{_text(output.get("ename", ""))}: {_text(output.get("evalue", ""))}</pre>')
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            for mime in ("image/png", "image/jpeg"):
                if mime in data:
                    parts.append(_image(data[mime], mime))
                    break
            else:
                if "text/plain" in data:
                    parts.append(f'<pre class="out">{_text(data["text/plain"])}</pre>')
    return parts


def render(result: SubmissionResult, executed: Path | nbformat.NotebookNode | None) -> str:
    """The student's feedback page for ``result``.

    ``executed``: the executed notebook the result came from (a path, or the notebook itself) whose
    student cells and outputs the page shows, or None (only the checks are listed). A missing or
    unreadable file lists only the checks too.
    """
    title = html.escape(f"{result.assignment}: feedback for {result.student}")
    body = [f"<h1>{title}</h1>",
            f"<p><b>Score: {result.score:g} / {result.max_score:g}</b></p>"]
    if result.status != Status.GRADED:
        body.append(f'<p class="note">Grading stopped early ({html.escape(result.status)}): cells after that point '
                    f'were not graded.</p>')
    shown: set[str] = set()
    nb = None
    if isinstance(executed, nbformat.NotebookNode):
        nb = executed
    elif executed is not None and Path(executed).exists():
        try:
            nb = nbformat.read(str(executed), as_version=4)
        except Exception:  # a broken file must not stop the other pages
            nb = None
    for cell in (nb.cells if nb is not None else []):
        kind = cell.get("metadata", {}).get("course_grader", {}).get("kind")
        gid = meta(cell).get("grade_id")
        if kind == "test" and gid in result.cells:
            body.append(_check(gid, result))
            shown.add(gid)
        elif cell.cell_type == "markdown":
            body.append(f'<pre class="md">{_text(cell.source)}</pre>')
        elif cell.cell_type == "code" and kind in ("student", "answer", "fixed"):
            body.append(f'<pre class="code">{_text(cell.source)}</pre>')
            body.extend(_outputs(cell))
    for gid in result.cells:
        if gid not in shown:
            body.append(_check(gid, result))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>{title}</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _check(gid: str, result: SubmissionResult) -> str:
    score, max_score = result.cells[gid]
    ok = score == max_score
    text = "passed" if ok else html.escape(result.messages.get(gid, "failed"))
    return (f'<div class="check {"pass" if ok else "fail"}"><b>Check {html.escape(gid)}: {score:g} / {max_score:g}</b>'
            f'<pre>{text}</pre></div>')


def _graded(results: Path):
    """(result, executed notebook) for every notebook under ``results`` that the course's grader graded
    (``read_result``); a notebook it did not grade is passed over, a damaged one is skipped with a note."""
    for path in sorted(Path(results).rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        try:
            result = read_result(path)
        except (ValueError, KeyError, TypeError, OSError) as error:
            logger.warning("skipped %s: %s", path, error)
            continue
        if result is not None:
            yield result, path


# What nbgrader's Release Feedback needs beside each page (the exchange's hand-in time and secret).
EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")


def copy_exchange_files(source: Path, target: Path) -> None:
    """Copy the ``EXCHANGE_FILES`` that ``source`` holds into ``target``, replacing older copies
    (nbgrader leaves its own files read-only)."""
    for name in EXCHANGE_FILES:
        if (Path(source) / name).is_file():
            (Path(target) / name).unlink(missing_ok=True)
            shutil.copyfile(Path(source) / name, Path(target) / name)


def write_all(results: Path, out: Path, assignments: list[str] | None = None) -> list[Path]:
    """Write ``<out>/<student>/<assignment>/<assignment>.html`` for every graded submission under
    ``results`` (of ``assignments`` only, when given); return the pages written.

    The exchange's ``timestamp.txt`` and ``submission_secret.txt`` of the graded folder go beside each
    page, so that the Formgrader's Release Feedback button can hand the page to the student.
    """
    written = []
    for result, executed in _graded(results):
        if assignments and result.assignment not in assignments:
            continue
        target = Path(out) / result.student / result.assignment / f"{result.assignment}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()  # nbgrader may have left it read-only
        target.write_text(render(result, executed), encoding="utf-8")
        copy_exchange_files(Path(results) / result.student / result.assignment, target.parent)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write students' feedback pages from graded results.")
    parser.add_argument("assignments", nargs="*", help="only these assignments (default: all)")
    parser.add_argument("--results", type=Path, default=Path("autograded"))
    parser.add_argument("--out", type=Path, default=Path("feedback"))
    parser.add_argument("--verbose", "-v", action="store_true", help="say more of what is done")
    args = parser.parse_args(argv)
    setup(args.verbose)
    if not args.results.exists():
        logger.error("no graded results in %s/: run `make autograde` first", args.results)
        return 1
    written = write_all(args.results, args.out, args.assignments or None)
    print(f"wrote {len(written)} feedback page(s) to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
