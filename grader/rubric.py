"""The instructor's rubric for each notebook: ``instructor/<id>.md``.

    python -m grader.rubric [ids]            write instructor/<id>.md from what is stored (seconds)
    python -m grader.rubric --capture [ids]  first run the wrong answers of
                                             grader/answer_sets/mutants/<id>.py whose message is missing
                                             or out of date through the visible checks (minutes; --all
                                             for every one), then write
    make rubric                              the same as --capture for every notebook

Each rubric lists every graded cell with its points and what its checks verify (the names the
checks print, read from the test cell's source: the visible ones a student runs and the hidden
ones that run only at grading), the model answers of the manually graded cells, the table of
common wrong answers from ``grader/answer_sets/mutants/<id>.py`` with the first message a student
sees for each, and the hand-written notes of ``instructor/notes/<id>.md`` (expected results of a healthy run).

The messages are captured by executing the instructor notebook with the hidden tests removed and
the wrong answer put in, and are kept in ``instructor/captured/<id>.json`` together with a digest
of everything that produced them (the wrong answer, the answer cell, the visible checks). The test
suite regenerates the rubrics from these files without executing anything and fails when a rubric
or a captured message is out of date, naming the command to run.

Everything under ``instructor/`` is for instructors only: nbgrader copies whatever lies in
``solutions/<id>/`` to students, so none of this may live there.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grader.answer_sets import mutants
from grader.cells import BEGIN_HIDDEN, END_HIDDEN
from grader.cells import meta as _meta
from grader.cells import source as _source
from grader.log import setup
from utils.data import COURSE_ROOT

INSTRUCTOR = "instructor"
logger = logging.getLogger("grader.rubric")
CHECKS = {"check", "check_close", "check_shape", "check_parameters", "check_fingerprint", "check_defined_here",
          "check_type"}


# -- reading the notebook ----------------------------------------------------------------------
def assignments(root: Path = COURSE_ROOT) -> list[str]:
    """The ids of the notebooks with an instructor version in solutions/."""
    return sorted(p.name for p in (root / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())


def read_notebook(assignment: str, root: Path = COURSE_ROOT) -> dict:
    return json.loads((root / "solutions" / assignment / f"{assignment}.ipynb").read_text())


def visible_part(source: str) -> str:
    """A test cell as the student sees it: the hidden-test region (markers included) removed."""
    return re.sub(rf"[ \t]*{BEGIN_HIDDEN}.*?{END_HIDDEN}[^\n]*\n?", "", source, flags=re.S)


def _render(node: ast.AST) -> str:
    """A string literal or f-string as text, with ``{expression}`` for each formatted part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
                       for v in node.values)
    return ast.unparse(node)


def _describe(call: ast.Call) -> str | None:
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name not in CHECKS or not call.args:
        return None
    if name == "check_defined_here":
        return f"`{ast.unparse(call.args[0])}` is written in the notebook, not imported from utils"
    if name == "check":
        if len(call.args) < 2:
            return None
        text = _render(call.args[1]).split("\n")[0]
        text = text.split("{")[0].split(": expected")[0]
        return re.sub(r"[\s,:;.]*(\bgot|\bexpected)?[\s,:;.]*$", "", text)
    what = _render(call.args[0])
    return {"check_shape": f"shape of {what}", "check_parameters": f"parameter count of {what}",
            "check_fingerprint": f"{what}: shape, sums and values at fixed positions against literal reference "
                                 f"values",
            "check_type": f"type of {what}"}.get(name, what)


def describe_checks(source: str) -> tuple[list[str], list[str]]:
    """(visible, hidden): what each check call of a test cell verifies, in source order."""
    lines = source.splitlines()
    hidden_from = next((i + 1 for i, line in enumerate(lines) if BEGIN_HIDDEN in line), len(lines) + 1)
    visible, hidden = [], []
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
    for call in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
        text = _describe(call)
        if text:
            (hidden if call.lineno > hidden_from else visible).append(text)
    return visible, hidden


def graded_cells(nb: dict) -> list[dict]:
    """Every graded cell in order: id, points, kind, the answer cells it grades, its checks."""
    cells, answers_seen, out = nb["cells"], [], []
    for cell in cells:
        meta = _meta(cell)
        if meta.get("solution") and not meta.get("grade"):
            answers_seen.append(meta["grade_id"])
        if not meta.get("grade"):
            continue
        entry = {"id": meta["grade_id"], "points": meta.get("points", 0)}
        if cell["cell_type"] == "code" and not meta.get("solution"):
            entry["kind"] = "auto"
            entry["answers"] = answers_seen[-1:] if answers_seen else []
            entry["visible"], entry["hidden"] = describe_checks(_source(cell))
        else:
            entry["kind"] = "manual"
            entry["model_answer"] = "\n".join(line for line in _source(cell).splitlines()
                                              if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
            # the question is the markdown cell just above the answer cell
            above = cells[cells.index(cell) - 1]
            entry["question"] = _source(above) if above["cell_type"] == "markdown" else ""
        out.append(entry)
    return out


# -- the wrong answers and what a student sees -------------------------------------------------
def load_mutants(assignment: str) -> list:
    """The plausible wrong answers of ``assignment`` (``grader/answer_sets/mutants/<id>.py``)."""
    return mutants.load(assignment)


def _cells_by_id(nb: dict) -> dict[str, dict]:
    return {_meta(c)["grade_id"]: c for c in nb["cells"] if _meta(c).get("grade_id")}


def digest(mutant, nb: dict) -> str:
    """What the captured message depends on: the wrong answer, its cell, the visible checks it meets."""
    cells = _cells_by_id(nb)
    parts = [mutant.name, mutant.cell, mutant.find, mutant.replace, list(mutant.fails), _source(cells[mutant.cell])]
    parts += [visible_part(_source(cells[g])) for g in mutant.fails]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def student_view(nb: dict) -> dict:
    """The instructor notebook with every hidden test removed (the answers stay)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and _meta(cell).get("grade") and not _meta(cell).get("solution"):
            cell["source"] = visible_part(_source(cell))
    return nb


def capture(assignment: str, root: Path = COURSE_ROOT, progress: bool = True, only: set[str] | None = None,
            hand_in: tuple[Path, ...] = ()) -> dict:
    """Run each wrong answer through the visible checks; return {name: {digest, cell, message}}.

    ``cell`` is the first test cell in ``fails`` that a student sees fail, ``message`` its error;
    both are None when every visible check passes (the hidden tests take the points at grading).
    ``only`` limits the run to the wrong answers of those names. The notebook needs its data, as
    in the classroom (``COURSE_DATA_DIR``); the right answers must pass first, or this stops.
    ``hand_in``: files a student hands in beside the notebook (06: ``06_model.pt``, and a judge in
    ``COURSE_JUDGE``), copied next to it first.
    """
    from grader.execute import KernelPool, run_trimmed

    nb = read_notebook(assignment, root)
    view = student_view(nb)
    order = [_meta(c).get("grade_id") for c in nb["cells"]]
    captured, pool = {}, KernelPool()
    wrong = load_mutants(assignment)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for path in hand_in:
                shutil.copy(path, Path(tmp) / Path(path).name)
            km = pool.get(assignment, Path(tmp))
            tests = [g for g in order if g and _meta(_cells_by_id(nb)[g]).get("grade")
                     and _cells_by_id(nb)[g]["cell_type"] == "code" and not _meta(_cells_by_id(nb)[g]).get("solution")]
            failing = {g: e for g, e in run_trimmed(view, tests[-1], Path(tmp), km=km).items() if e}
            if failing:
                raise RuntimeError(f"{assignment}: the right answers fail their visible checks, so no message "
                                   f"would mean anything: {failing}")
            wrong = [m for m in wrong if only is None or m.name in only]
            for i, mutant in enumerate(wrong, start=1):
                trial = copy.deepcopy(view)
                cell = _cells_by_id(trial)[mutant.cell]
                cell["source"] = mutants.apply(mutant, _source(cell))
                fails = sorted(mutant.fails, key=order.index)
                results = run_trimmed(trial, fails[-1], Path(tmp), km=km)
                seen = next((g for g in fails if results.get(g)), None)
                captured[mutant.name] = {"digest": digest(mutant, nb), "cell": seen,
                                         "message": results.get(seen) if seen else None}
                if progress:
                    logger.info("  %s %d/%d: %s: %s", assignment, i, len(wrong), mutant.name,
                                (captured[mutant.name]["message"] or "passes the visible checks").splitlines()[0][:90])
    finally:
        pool.shutdown()
    return captured


def captured_path(assignment: str, root: Path = COURSE_ROOT) -> Path:
    return root / INSTRUCTOR / "captured" / f"{assignment}.json"


def read_captured(assignment: str, root: Path = COURSE_ROOT) -> dict:
    path = captured_path(assignment, root)
    return json.loads(path.read_text()) if path.exists() else {}


def stale_captures(assignment: str, root: Path = COURSE_ROOT) -> list[str]:
    """Names of the wrong answers whose stored message is missing or no longer matches its inputs."""
    nb, stored = read_notebook(assignment, root), read_captured(assignment, root)
    wrong = load_mutants(assignment)
    names = {m.name for m in wrong}
    stale = [m.name for m in wrong if stored.get(m.name, {}).get("digest") != digest(m, nb)]
    return stale + sorted(set(stored) - names)


# -- writing the rubric ------------------------------------------------------------------------
def _cell_text(text: str, limit: int = 400) -> str:
    text = text if len(text) <= limit else text[:limit].rstrip() + " [...]"
    return text.replace("|", "\\|").replace("\n", "<br>")


def render(assignment: str, root: Path = COURSE_ROOT) -> str:
    """The rubric of ``assignment`` as Markdown, from stored files only (nothing is executed)."""
    nb = read_notebook(assignment, root)
    cells = graded_cells(nb)
    points = {c["id"]: c["points"] for c in cells}
    auto = sum(c["points"] for c in cells if c["kind"] == "auto")
    manual = sum(c["points"] for c in cells if c["kind"] == "manual")
    lines = [
        f"# Rubric: {assignment}",
        "",
        f"Generated by `python -m grader.rubric` from `solutions/{assignment}/{assignment}.ipynb`, "
        f"`grader/answer_sets/mutants/{assignment}.py`, `instructor/captured/{assignment}.json` and "
        f"`instructor/notes/{assignment}.md`; do not edit by hand. For instructors only.",
        "",
        f"**{auto + manual} points**: {auto} graded automatically, {manual} by hand.",
        "",
        "## Graded cells",
        "",
        "Autograded cells are all or nothing: any failing check stops the cell and takes its points. "
        "The visible checks are the ones a student runs; the hidden checks run only at grading, on inputs "
        "the student never sees, against literal reference values.",
    ]
    for cell in cells:
        lines += ["", f"### `{cell['id']}`: {cell['points']} point{'s' if cell['points'] != 1 else ''}, "
                      + ("graded automatically" if cell["kind"] == "auto" else "graded by hand" if cell["points"]
                         else "a model answer for discussion, not graded"), ""]
        if cell["kind"] == "auto":
            if cell["answers"]:
                lines += [f"Grades the answer cell `{cell['answers'][0]}`.", ""]
            lines += ["Visible checks:", ""] + [f"- {v}" for v in cell["visible"]]
            lines += ["", "Hidden checks:", ""] + [f"- {v}" for v in cell["hidden"]]
        else:
            question = "\n".join("> " + line for line in cell["question"].strip().splitlines())
            lines += ["Question:", "", question, "", "Model answer (what earns the points):", "",
                      cell["model_answer"].strip()]
    wrong = load_mutants(assignment)
    stored = read_captured(assignment, root)
    lines += ["", "## Common wrong answers", "",
              f"Each row is a plausible wrong answer from `grader/answer_sets/mutants/{assignment}.py`; the test "
              "suite checks that it loses the points named. The last column is the first message a student sees when "
              "running the visible checks with that answer.", "",
              "| wrong answer | answer cell | loses | what the student sees |", "|---|---|---|---|"]
    for m in wrong:
        seen = stored.get(m.name, {})
        loses = ", ".join(f"`{g}` ({points.get(g, '?')})" for g in m.fails)
        if not seen:
            message = "(not captured yet: run `make rubric`)"
        elif seen["message"] is None:
            message = "every visible check passes; the hidden tests take the points at grading"
        else:
            message = f"in `{seen['cell']}`: " + _cell_text(seen["message"])
        lines.append(f"| {_cell_text(m.name)} | `{m.cell}` | {loses} | {message} |")
    notes = root / INSTRUCTOR / "notes" / f"{assignment}.md"
    lines += ["", notes.read_text().strip() if notes.exists() else
              "## Expected results of a healthy run\n\nNot written yet."]
    return "\n".join(lines) + "\n"


def rubric_path(assignment: str, root: Path = COURSE_ROOT) -> Path:
    return root / INSTRUCTOR / f"{assignment}.md"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.rubric", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="notebook ids (default: every notebook)")
    parser.add_argument("--capture", action="store_true",
                        help="first run the wrong answers whose message is missing or out of date through the "
                             "visible checks (minutes)")
    parser.add_argument("--all", action="store_true", help="with --capture: run every wrong answer again")
    parser.add_argument("--hand-in", action="append", default=[], type=Path, metavar="FILE",
                        help="with --capture: a file to put beside the notebook, as a student hands it in "
                             "(06: --hand-in 06_model.pt, with the judge in judge/ or COURSE_JUDGE); repeatable")
    parser.add_argument("--verbose", "-v", action="store_true", help="say more of what is done")
    args = parser.parse_args(argv)
    setup(args.verbose)
    chosen = args.assignments or assignments()
    for assignment in chosen:
        stale = stale_captures(assignment)
        if args.capture and (stale or args.all):
            names = {m.name for m in load_mutants(assignment)}
            stored = {k: v for k, v in read_captured(assignment).items() if k in names and not args.all}
            stored.update(capture(assignment, only=None if args.all else set(stale) & names,
                                  hand_in=tuple(args.hand_in)))
            path = captured_path(assignment)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(stored, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            stale = stale_captures(assignment)
        path = rubric_path(assignment)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(assignment))
        note = f" ({len(stale)} wrong answers not captured or out of date: run with --capture)" if stale else ""
        print(f"wrote {path.relative_to(COURSE_ROOT)}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
