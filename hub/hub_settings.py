"""The Jupyter settings of each role of a class server, under ``etc/<role>/`` (JUPYTER_CONFIG_PATH)."""
from __future__ import annotations

import json
import os

from hub_layout import COURSE_ID, ROLES, Layout

def write_role_configs(layout: Layout) -> None:
    """The Jupyter settings of each role, read through JUPYTER_CONFIG_PATH: nbgrader's exchange and
    course id for everyone; for students, nbgrader's Formgrader, course list and assignment-creation
    toolbar switched off, in the server and in JupyterLab."""
    for role in ROLES:
        folder = layout.role_config(role)
        (folder / "labconfig").mkdir(parents=True, exist_ok=True)
        (folder / "nbgrader_config.py").write_text(nbgrader_settings(layout, role))
        (folder / "jupyter_server_config.json").write_text(json.dumps(server_settings(role), indent=1))
        hidden = ["formgrader", "course-list", "create-assignment"] if role == "student" else []
        (folder / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {f"@jupyter/nbgrader:{name}": True for name in hidden}}, indent=1))
    for folder, _, files in os.walk(layout.etc):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def nbgrader_settings(layout: Layout, role: str) -> str:
    """nbgrader_config.py of a role. Students: the class's exchange and course id. The instructor: the
    course's own nbgrader_config.py (its folder, gradebook, grader hooks; its exchange is linked to the
    class's), which nbgrader would otherwise look for only in the server's working folder, their home."""
    head = "# Written by `make hub` (hub/hubctl.py).\nc = get_config()  # noqa: F821\n"
    if role == "instructor":
        return head + f"load_subconfig({str(layout.course / 'nbgrader_config.py')!r})  # noqa: F821\n"
    return head + f"c.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(layout.exchange)!r}\n"


def server_settings(role: str) -> dict:
    """The Jupyter server's settings of a role: the Formgrader and course list off for students; for the
    instructor, JupyterLab may show the Formgrader's own pages in a frame (JupyterHub forbids every frame
    by default); no news or update checks from the internet for anyone."""
    closed = {"formgrader": role == "student", "course_list": role == "student"}
    settings = {"ServerApp": {"jpserver_extensions": {
        f"nbgrader.server_extensions.{name}": not off for name, off in closed.items()}},
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}
    if role == "instructor":
        settings["ServerApp"]["tornado_settings"] = {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}
    return settings
