"""The class server's settings, without starting it (no root needed): the roster is read strictly, each
role gets its own Jupyter settings, and hub/jupyterhub_config.py gives JupyterHub the roster's people,
the instructor's course and the students' homes. `make test-hub` runs the class itself (tests/hub/)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config.loader import PyFileConfigLoader

from conftest import ROOT

sys.path.insert(0, str(ROOT / "hub"))
import hubctl  # noqa: E402


def roster_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(text)
    return path


def test_the_course_roster_has_one_instructor_and_demo_students():
    roster = hubctl.read_roster(ROOT / "hub" / "roster.csv")
    assert [m.role for m in roster].count("instructor") == 1
    assert all(m.name.startswith("dc-") for m in roster)
    assert sum(m.role == "student" for m in roster) >= 2


@pytest.mark.parametrize("text, complaint", [
    ("username,role\nteach,instructor\nAlice,student\n", "line 3"),
    ("teach,instructor\nbob,pupil\n", "line 2"),
    ("teach,instructor\nbob,student\nbob,student\n", "listed twice"),
    ("bob,student\n", "exactly one instructor"),
    ("a,instructor\nb,instructor\n", "exactly one instructor"),
    ("teach,instructor,extra\n", "line 1"),
])
def test_a_bad_roster_is_refused_with_its_line(tmp_path, text, complaint):
    with pytest.raises(ValueError, match=complaint):
        hubctl.read_roster(roster_file(tmp_path, text))


def test_comments_blank_lines_and_the_header_are_skipped(tmp_path):
    roster = hubctl.read_roster(roster_file(tmp_path, "# class of 2026\n\nusername,role\nteach,instructor\n bob , student\n"))
    assert roster == [hubctl.Member("teach", "instructor"), hubctl.Member("bob", "student")]


def test_students_get_no_formgrader_and_the_instructor_a_framable_one(tmp_path):
    layout = hubctl.Layout(tmp_path)
    layout.course.mkdir()
    hubctl.write_role_configs(layout)
    for role, off in (("student", True), ("instructor", False)):
        folder = layout.role_config(role)
        server = json.loads((folder / "jupyter_server_config.json").read_text())["ServerApp"]
        assert server["jpserver_extensions"]["nbgrader.server_extensions.formgrader"] is not off
        lab = json.loads((folder / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
        assert lab.get("@jupyter/nbgrader:formgrader", False) is off
        assert ("tornado_settings" in server) is not off  # the Formgrader's frame: the instructor's only
    # The instructor's nbgrader settings are the course's own, wherever their server starts.
    shutil.copy2(ROOT / "nbgrader_config.py", layout.course / "nbgrader_config.py")
    for role, course_root in (("student", None), ("instructor", str(layout.course))):
        nbgrader = PyFileConfigLoader("nbgrader_config.py", path=str(layout.role_config(role))).load_config()
        assert nbgrader.CourseDirectory.course_id == "diffusion-course"
        assert nbgrader.CourseDirectory.get("root") == course_root
        if role == "student":
            assert nbgrader.Exchange.root == str(layout.exchange)


def hub_config(tmp_path: Path, monkeypatch, roster: str):
    """hub/jupyterhub_config.py as JupyterHub reads it, for a prefix and roster under tmp_path."""
    layout = hubctl.Layout(tmp_path / "prefix")
    layout.state.mkdir(parents=True)
    layout.password_file.write_text("demo-secret\n")
    layout.token_file.write_text("measure-token\n")
    monkeypatch.setenv("COURSE_HUB_PREFIX", str(layout.prefix))
    monkeypatch.setenv("COURSE_HUB_ROSTER", str(roster_file(tmp_path, roster)))
    monkeypatch.setenv("COURSE_HUB_URL", "http://127.0.0.1:18000")
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    return layout, PyFileConfigLoader("jupyterhub_config.py", path=str(ROOT / "hub")).load_config()


def test_the_hub_lets_in_the_roster_and_opens_each_role_its_folder(tmp_path, monkeypatch):
    layout, c = hub_config(tmp_path, monkeypatch, "teach,instructor\nann,student\nben,student\n")
    assert c.JupyterHub.bind_url == "http://127.0.0.1:18000"
    assert c.JupyterHub.authenticator_class == "dummy" and c.DummyAuthenticator.password == "demo-secret"
    assert c.Authenticator.allowed_users == {"teach", "ann", "ben"}
    assert c.Authenticator.admin_users == {"teach"}
    assert c.JupyterHub.spawner_class == "localprocess"  # each server runs as its own login
    assert c.Spawner.disable_user_config is True
    for name, folder, role in (("teach", str(layout.course), "instructor"), ("ann", "~ann", "student")):
        spawner = SimpleNamespace(user=SimpleNamespace(name=name), notebook_dir="", environment={})
        c.Spawner.pre_spawn_hook(spawner)
        assert spawner.notebook_dir.endswith(folder.lstrip("~")), spawner.notebook_dir
        assert spawner.environment["JUPYTER_CONFIG_PATH"] == str(layout.role_config(role))
        assert spawner.environment["COURSE_HUB_PREFIX"] == str(layout.prefix)
        assert spawner.environment["COURSE_CHECKPOINT_DIR"].endswith(f"{name}/checkpoints")
        assert spawner.environment.get("VENV") == (str(layout.env) if role == "instructor" else None)


def test_hub_stop_finds_the_class_servers_processes_by_their_prefix(tmp_path):
    """What `make hub-stop` stops: every process whose environment names this prefix, and no other."""
    layout, other = hubctl.Layout(tmp_path / "class"), hubctl.Layout(tmp_path / "class-2")
    ours, theirs = (subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                     env={**os.environ, "COURSE_HUB_PREFIX": str(prefix)})
                    for prefix in (layout.prefix, other.prefix))
    try:
        assert ours.pid in hubctl.processes_of(layout) and theirs.pid not in hubctl.processes_of(layout)
        assert hubctl.processes_of(other) == [theirs.pid]
    finally:
        for process in (ours, theirs):
            process.kill()
            process.wait()


def test_the_code_every_user_reads_leaves_out_the_answer_sets():
    """code/ (readable by every student) has the grader but not the answers that quote the model answers."""
    import hub_env

    names = hub_env.code_files(ROOT)
    assert "grader/rubric.py" in names and "utils/grading.py" in names
    assert not [n for n in names if n.startswith("grader/answer_sets/")]
    assert [n for n in hub_env.files_of_course(ROOT) if n.startswith("grader/answer_sets/mutants/")]
