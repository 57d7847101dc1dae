"""The class view after grading (``make report``) and the grade export with flags (``make grades``).

    python -m grader report [--out report]       checks.csv, students.csv, scores.png, index.html
    python -m grader grades [--to grades.csv]     nbgrader's CSV export plus status and flags columns

Both read the gradebook that ``grader.batch`` (or ``nbgrader autograde``) wrote.
- ``checks.csv``: per assignment and graded check (grade id), the points, how many submissions were
  graded, how many lost points on it, and the commonest message those students saw (and how often).
- ``students.csv``: per student and assignment, the score, the status (graded, timeout, crashed, ...,
  missing) and the flags for review.
- ``scores.png``: a histogram of scores per assignment.
- ``index.html``: the same tables and the picture on one page.
"""
from __future__ import annotations

import csv
import html
import tempfile
from collections import Counter
from pathlib import Path

from grader.gradebook import StoredResult, read_class
from grader.result import Status


def check_rows(results: list[StoredResult], cells_of: dict[str, list[tuple[str, float]]]) -> list[dict]:
    """One dict per assignment and check: points, graded, failed, commonest_message, message_count."""
    rows = []
    for assignment, cells in cells_of.items():
        submitted = [r for r in results if r.assignment == assignment and r.status != Status.MISSING]
        for grade_id, points in cells:
            failed = [r for r in submitted if (r.cells.get(grade_id, (0.0, points))[0] or 0.0) < points]
            messages = Counter(r.messages[grade_id] for r in failed if r.messages.get(grade_id))
            message, count = messages.most_common(1)[0] if messages else ("", 0)
            rows.append({"assignment": assignment, "check": grade_id, "points": f"{points:g}",
                         "graded": len(submitted), "failed": len(failed), "commonest_message": message,
                         "message_count": count})
    return rows


def student_rows(results: list[StoredResult]) -> list[dict]:
    """One dict per student and assignment: score, max_score, status, flags (joined with "; ")."""
    return [{"student": r.student, "assignment": r.assignment, "score": f"{r.score or 0.0:g}",
             "max_score": f"{r.max_score:g}", "status": r.status, "flags": "; ".join(r.flags)}
            for r in sorted(results, key=lambda r: (r.student, r.assignment))]


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def plot_scores(results: list[StoredResult], assignments: list[str], path: Path) -> None:
    """A histogram of submitted scores for each assignment, side by side, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(assignments))
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    for ax, assignment in zip(axes[0], assignments):
        scores = [r.score or 0.0 for r in results if r.assignment == assignment and r.status != Status.MISSING]
        top = max([r.max_score for r in results if r.assignment == assignment] or [1.0]) or 1.0
        ax.hist(scores, bins=min(20, max(5, int(top) + 1)), range=(0, top), color="#4c72b0", edgecolor="white")
        ax.set_title(f"{assignment} ({len(scores)} submitted)", fontsize=10)
        ax.set_xlabel(f"score (out of {top:g})")
        ax.set_ylabel("students")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>nothing graded yet</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(db_url: str, out: Path, course_id: str = "") -> dict[str, Path]:
    """Write checks.csv, students.csv, scores.png and index.html into ``out``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, cells_of = read_class(db_url, course_id)
    checks, students = check_rows(results, cells_of), student_rows(results)
    paths = {name: out / name for name in ("checks.csv", "students.csv", "scores.png", "index.html")}
    _write_csv(paths["checks.csv"], checks, ["assignment", "check", "points", "graded", "failed",
                                             "commonest_message", "message_count"])
    _write_csv(paths["students.csv"], students, ["student", "assignment", "score", "max_score", "status", "flags"])
    plot_scores(results, list(cells_of), paths["scores.png"])
    paths["index.html"].write_text(
        "<!doctype html><meta charset='utf-8'><title>Class report</title>"
        "<style>body{font-family:sans-serif} td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
        "table{border-collapse:collapse;margin-bottom:2em}</style>"
        "<h1>Class report</h1><h2>Scores</h2><img src='scores.png' alt='histogram of scores per assignment'>"
        f"<h2>Checks: how many lost points, and the commonest message</h2>{_html_table(checks)}"
        f"<h2>Students</h2>{_html_table(students)}")
    return paths


def export_grades(db_url: str, to: Path, course_id: str = "") -> Path:
    """nbgrader's own CSV export (the same columns and scores) plus ``status`` and ``flags`` columns."""
    from nbgrader.plugins.export import CsvExportPlugin

    from grader.gradebook import open_gradebook

    results, _ = read_class(db_url, course_id)
    extra = {(r.assignment, r.student): r for r in results}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "grades.csv"
        with open_gradebook(db_url, course_id) as gb:
            CsvExportPlugin(to=str(plain)).export(gb)
        with plain.open(newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = list(reader.fieldnames) + ["status", "flags"], list(reader)
    for row in rows:
        stored = extra.get((row["assignment"], row["student_id"]))
        row["status"] = stored.status if stored else ""
        row["flags"] = "; ".join(stored.flags) if stored else ""
    to = Path(to)
    _write_csv(to, rows, fields)
    return to
