"""The two descriptions of the environment (pyproject.toml for pip, environment.yml for conda) agree."""
import re
import tomllib

from conftest import ROOT


def _pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]).union(*project["optional-dependencies"].values())


def _conda_pins():
    lines = (ROOT / "environment.yml").read_text().splitlines()
    return {m.group(1) for line in lines if (m := re.match(r"\s+- ([A-Za-z0-9_.-]+==\S+)\s*$", line))}


def test_every_dependency_is_pinned():
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", pin) for pin in _pyproject_pins())


def test_pyproject_and_environment_yml_agree():
    assert _pyproject_pins() == _conda_pins()


def test_required_packages_are_listed():
    names = {pin.split("==")[0].lower() for pin in _pyproject_pins()}
    assert {"torch", "torchvision", "einops", "matplotlib", "jupyterlab", "nbgrader", "ipywidgets", "tqdm"} <= names
