"""What a feedback page must never show, shared by the feedback tests, the browser tests and the class
server's test: the hidden tests' lines, and a tampering cell's payload."""
from __future__ import annotations

import json

TAMPER = "\nimport builtins\nbuiltins.abs = lambda x: 0.0\n"  # check_close uses abs: a classic reach for the grader


def hidden_lines(spec, student_nb: dict) -> list[str]:
    """The lines of the hidden tests that a student never sees (none of them is in the student's notebook)."""
    seen = json.dumps(student_nb)
    return [line.strip() for hidden in spec.hidden.values() for line in hidden.splitlines()
            if len(line.strip()) >= 12 and line.strip() not in seen and json.dumps(line.strip())[1:-1] not in seen]


def assert_no_hidden_test(page: str, spec, student_nb: dict) -> None:
    import html as html_module

    lines = hidden_lines(spec, student_nb)
    assert len(lines) >= 10, "too few hidden lines to check against"
    for line in lines:
        assert line not in page and html_module.escape(line) not in page, f"the page shows a hidden test line: {line}"
