"""The single-submission grader's trusted side, without running a kernel: what it reads from the
instructor notebook, which notebook it picks, how it rebuilds a submission, what it calls tampering.
"""
from __future__ import annotations

import copy
import json

import pytest

from conftest import ROOT
from course_harness import cells_by_grade_id, fill_in, graded_test_cells, nbgrader_meta, read, released_path, \
    solution_path
from grader import tamper
from grader.grade_one import SubmissionResult, find_notebook, graded_cells, load_spec, rebuild

ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_graded_cells_match_the_instructor_notebook(assignment):
    expected = {k: float(nbgrader_meta(c)["points"]) for k, c in graded_test_cells(read(solution_path(assignment))).items()}
    assert graded_cells(ROOT, assignment) == expected
    assert list(graded_cells(ROOT, assignment)) == list(expected)


def test_any_single_notebook_name_is_found(tmp_path):
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "01_UNets-checkpoint.ipynb").write_text("{}")
    (tmp_path / "01_UNets (1).ipynb").write_text("{}")
    (tmp_path / "weights.pt").write_bytes(b"\0")
    path, notes = find_notebook(tmp_path, "01_UNets")
    assert path.name == "01_UNets (1).ipynb" and "renamed" in notes[0]
    assert find_notebook(tmp_path / "nowhere", "01_UNets")[0] is None


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_honest_notebooks_raise_no_flag(assignment):
    """Right, blank and (for every mutant) partly wrong answers: no flag, nothing zeroed, nothing restored."""
    from grader.answer_sets.mutants import apply as apply_mutant
    from grader.answer_sets.mutants import load as load_mutants

    spec = load_spec(ROOT, assignment)
    released = read(released_path(assignment))
    right = fill_in(released, read(solution_path(assignment)))
    honest = {"right": right, "blank": released}
    for mutant in load_mutants(assignment):
        nb = copy.deepcopy(right)
        cell = cells_by_grade_id(nb)[mutant.cell]
        cell["source"] = apply_mutant(mutant, "".join(cell["source"]).replace("### BEGIN SOLUTION\n", "")
                                      .replace("### END SOLUTION\n", ""))
        honest[mutant.name] = nb
    for name, nb in honest.items():
        plan = rebuild(nb, spec, ROOT / "utils")
        assert plan.flags == [] and plan.zeroed == {} and plan.taint_from == {}, (name, plan.flags)
        assert [g for g in plan.grade_ids if g] == spec.order, name


def test_rebuild_restores_tests_and_ignores_claimed_points():
    spec = load_spec(ROOT, "01_UNets")
    nb = fill_in(read(released_path("01_UNets")), read(solution_path("01_UNets")))
    cells = nb["cells"]
    test = cells_by_grade_id(nb)["test_down_block"]
    test["source"] = "print('all good')"
    test["metadata"]["nbgrader"]["points"] = 100
    cells.remove(cells_by_grade_id(nb)["test_up_block"])
    plan = rebuild(nb, spec, ROOT / "utils")
    sources = {g: "".join(c.source) for g, c in zip(plan.grade_ids, plan.nb.cells) if g}
    assert "BEGIN HIDDEN TESTS" in sources["test_down_block"] and "BEGIN HIDDEN TESTS" in sources["test_up_block"]
    assert "test_down_block" in plan.zeroed
    assert any("metadata of cell test_down_block" in f for f in plan.flags)
    assert not any("test_up_block" in f for f in plan.flags), "a deleted test is repaired, not flagged"


def test_duplicated_answer_cell_is_repaired():
    spec = load_spec(ROOT, "01_UNets")
    released = read(released_path("01_UNets"))
    nb = fill_in(released, read(solution_path("01_UNets")))
    answer = cells_by_grade_id(nb)["down_block"]
    stub = copy.deepcopy(cells_by_grade_id(released)["down_block"])
    nb["cells"].insert(nb["cells"].index(answer), stub)  # the blank copy above the answer
    plan = rebuild(nb, spec, ROOT / "utils")
    assert plan.flags == []
    chosen = next(c for g, c in zip(plan.grade_ids, plan.nb.cells) if g == "down_block")
    assert "nn.Conv2d(in_ch, out_ch" in "".join(chosen.source)
    assert plan.grade_ids.count("down_block") == 1


@pytest.mark.parametrize("code, expected", [
    ("get_ipython().input_transformers_cleanup.append(lambda lines: [])", "input transformer"),
    ("import builtins\nbuiltins.abs = lambda x: 0", "builtins"),
    ("import utils.grading\nutils.grading.check_close = lambda *a, **k: None", "module's attribute"),
    ("torch.allclose = lambda *a, **k: True", "module's attribute"),
    ("check_close = lambda *a, **k: None", "helper check_close"),
    ("open('../../utils/grading.py', 'a').write('x = 1')", "course's files"),
    ("import sys\nsys.modules['utils.grading'] = None", "sys.modules"),
    ("exec(bytes.fromhex('7072696e74').decode())", "dynamically"),
    ("get_ipython().events.register('pre_run_cell', print)", "event hook"),
])
def test_reaching_for_the_grader_is_seen(code, expected):
    found = tamper.scan_source(code)
    assert any(expected in f.what for f in found), found


@pytest.mark.parametrize("code, expected", [
    # magics and shell commands, but those an honest notebook uses
    ("%env SECRET=1\n!ls ..", ["IPython magic or shell command '%env' (line 1)",
                               "IPython magic or shell command '!ls' (line 2)"]),
    ("%matplotlib inline\n%timeit f()", []),
    # visit_Constant: strings that name the grader's files
    ("where = 'course/gradebook.db'", ["names the grader's files (gradebook) (line 1)"]),
    ("text = 'BEGIN HIDDEN TESTS'", ["names the grader's files (BEGIN HIDDEN) (line 1)"]),
    # visit_Attribute: where a module's files are; hooks; IPython's events; sys.modules
    ("import torch\nwhere = torch.__file__", ["locates the course's or the environment's files (torch.__file__) (line 2)"]),
    ("import sys\nprefix = sys.prefix", ["locates the course's or the environment's files (sys.prefix) (line 2)"]),
    ("model.__file__", []),
    ("get_ipython().set_custom_exc((Exception,), handler)",
     ["reaches for a custom exception handler (get_ipython().set_custom_exc) (line 1)"]),
    ("import sys\nsys.settrace(tracer)", ["reaches for tracing (sys.settrace) (line 2)"]),
    ("f.__globals__['x'] = 1", ["reaches for a function's globals (f.__globals__) (line 1)"]),
    ("import os\nos._exit(0)", []),
    ("get_ipython().events.register('pre_run_cell', print)",
     ["registers an IPython event hook (get_ipython().events.register) (line 1)"]),
    ("model.register(x)", []),
    ("import sys\nm = sys.modules", ["reaches into sys.modules (line 2)"]),
    # visit_Name: builtins
    ("__builtins__['abs'] = print", ["reaches for builtins (__builtins__) (line 1)"]),
    # visit_alias and visit_ImportFrom: modules answers never import
    ("import ctypes, socket as s", ["imports ctypes (line 1)", "imports socket (line 1)"]),
    ("import urllib.request", ["imports urllib.request (line 1)"]),
    ("from IPython import get_ipython", ["imports from IPython (line 1)"]),
    ("from . import builtins", ["imports builtins (line 1)"]),
    ("from socket import create_connection", []),  # the network is banned as `import socket` only
    # visit_Call: dynamic code, signals, the course's files written or the grader's read
    ("getattr(torch, 'allclose')\nsetattr(torch, 'allclose', f)", ["runs or changes code dynamically (setattr) (line 2)"]),
    ("import os\nos.kill(1, 9)", ["signals another process (os.kill) (line 2)"]),
    ("kill(1, 9)", []),
    ("open('../utils/grading.py', 'a').write('x = 1')", ["writes to the course's files (open) (line 1)",
                                                         "names the grader's files (grading.py) (line 1)"]),
    ("open('../utils/notes.txt', mode='r')", ["writes to the course's files (open) (line 1)"]),  # any mode=
    ("from pathlib import Path\nPath('../../utils').joinpath('x.py').write_text('')",
     ["writes to the course's files (Path().joinpath().write_text) (line 2)"]),
    ("import shutil\nshutil.rmtree('data')", []),
    ("open('../solutions/01.ipynb').read()", ["reads the grader's files (open) (line 1)",
                                              "names the grader's files (solutions/) (line 1)"]),
    ("open('data/train.npz', 'rb')", []),
    # visit_Assign: a module's attribute, the checks' helpers
    ("import torch.nn as tnn\ntnn.Linear.forward = f", ["changes a module's attribute (tnn.Linear.forward) (line 2)",
                                                         "changes a module's attribute (tnn.Linear) (line 2)"]),
    ("np.random.seed = None", ["changes a module's attribute (np.random.seed) (line 1)",
                               "changes a module's attribute (np.random) (line 1)"]),
    ("blocks.weight = 1", []),
    ("check_close += 1", ["rebinds the checks' helper check_close (line 1)"]),
    ("del check", ["rebinds the checks' helper check (line 1)"]),
    ("x: int = 0\nG: int = 0", ["rebinds the checks' helper G (line 2)"]),
    # visit_FunctionDef: a helper redefined
    ("def check_close(*a):\n    pass", ["redefines the checks' helper check_close (line 1)"]),
    ("class CheckFailed(Exception):\n    pass", ["redefines the checks' helper CheckFailed (line 1)"]),
    # visit_Global: a helper rebound from inside a function
    ("def f():\n    global check\n    check = None", ["rebinds the checks' helper check (line 2)",
                                                      "rebinds the checks' helper check (line 3)"]),
    ("def f():\n    nonlocal G", ["rebinds the checks' helper G (line 2)"]),
    # once a line; in the order of ast.walk (by depth); code that does not parse: its magics only
    ("exec('1'); exec('1')", ["runs or changes code dynamically (exec) (line 1)"]),
    ("def f():\n    import builtins\n    builtins.abs = abs\nimport sys\nsys.modules['utils.grading'] = None",
     ["changes a module's attribute (sys.modules) (line 5)", "changes a module's attribute (builtins.abs) (line 3)",
      "imports builtins (line 2)", "reaches into sys.modules (line 5)", "reaches for builtins (builtins) (line 3)"]),
    ("def broken(:\n    pass\n%env X=1", ["IPython magic or shell command '%env' (line 3)"]),
    ("def honest(x):\n    return x.mean() + torch.randn(3).sum()", []),
])
def test_each_rule_of_the_scanner_says_what_it_saw(code, expected):
    assert [str(f) for f in tamper.scan_source(code)] == expected


def test_names_imported_by_earlier_cells_stand_for_modules():
    assert tamper.scan_source("blocks.weight = 1") == []
    assert [str(f) for f in tamper.scan_source("blocks.weight = 1", {"blocks"})] == \
        ["changes a module's attribute (blocks.weight) (line 1)"]


def test_the_scanner_and_the_probe_share_one_watch_list():
    from grader import watchlist

    code = tamper.probe_install_code("_course_probe_test")
    assert repr(list(watchlist.WATCHED_MODULES)) in code and repr(list(watchlist.PROBE_SENSITIVE_PATHS)) in code
    assert {m.split(".")[0] for m in watchlist.WATCHED_MODULES} <= watchlist.MODULE_NAMES
    for module in watchlist.WATCHED_MODULES:  # every watched module's attribute is a finding
        alias = module.split(".")[0]
        assert tamper.scan_source(f"{module}.anything = None"), module
        assert tamper.scan_source(f"{alias}.anything = None"), alias


def test_utils_code_with_names_changed_is_recognised():
    source = (ROOT / "utils" / "basic_unet.py").read_text()
    start = source.index("class BasicUNet")
    end = source.index("\nclass ", start + 10) if "\nclass " in source[start + 10:] else len(source)
    pasted = source[start:end].replace("BasicUNet", "MyUNet").replace("down_chs", "channels") \
        .replace("latent_size", "side").replace('"""', "'''")
    spec = load_spec(ROOT, "01_UNets")
    assert tamper.copied_utils(pasted, ROOT / "utils", spec.allowed_defs)
    right = "".join(cells_by_grade_id(read(solution_path("01_UNets")))["basic_unet"]["source"])
    assert not tamper.copied_utils(right, ROOT / "utils", spec.allowed_defs)


def test_result_round_trips_through_json(tmp_path):
    result = SubmissionResult("ann", "01_UNets", "graded", {"test_down_block": (2.0, 2.0)}, {}, [], 1.5, "ok",
                              tmp_path / "executed.ipynb")
    again = SubmissionResult.from_json(result.to_json())
    assert again == result and again.score == 2.0 and json.loads(result.to_json())["status"] == "graded"


def test_without_bubblewrap_the_grader_says_why(monkeypatch, tmp_path):
    from grader import sandbox
    from grader.grade_one import grade_submission

    sandbox.sandbox_available.cache_clear()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    try:
        ok, why = sandbox.sandbox_available()
        assert not ok and "apt-get install bubblewrap" in why
        with pytest.raises(RuntimeError, match="sandbox was required"):
            grade_submission(ROOT, "01_UNets", "ann", submission_dir=tmp_path, workdir=tmp_path / "w", sandbox=True)
        (tmp_path / "sub").mkdir()
        result = grade_submission(ROOT, "01_UNets", "ann", submission_dir=tmp_path / "sub", workdir=tmp_path / "w")
        assert result.status == "missing" and "WARNING: GRADED WITHOUT A SANDBOX" in result.log
    finally:
        sandbox.sandbox_available.cache_clear()


def test_missing_and_unreadable_score_zero_without_a_kernel(tmp_path):
    from grader.grade_one import grade_submission

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "01_UNets.ipynb").write_bytes(b"\x89PNG not a notebook")
    (tmp_path / "empty").mkdir()
    for name, status in (("broken", "unreadable"), ("empty", "missing")):
        result = grade_submission(ROOT, "01_UNets", name, submission_dir=tmp_path / name, workdir=tmp_path / f"w-{name}")
        assert result.status == status and result.score == 0 and result.flags
        assert set(result.cells) == set(graded_cells(ROOT, "01_UNets"))
        # nothing ran, so nothing is stored: the returned result is the only one (the gradebook keeps it)
        assert result.executed_notebook is None and not any((tmp_path / f"w-{name}").iterdir())


def test_the_notebook_handed_back_is_the_file_nbformat_writes(tmp_path):
    """grade_in_memory's bytes are what grade_submission's executed.ipynb held when nbformat wrote it."""
    import nbformat

    from grader.grade_one import notebook_bytes
    from grader.result import attach_result, result_in

    nb = nbformat.read(str(solution_path("01_UNets")), as_version=4)
    result = SubmissionResult("ann", "01_UNets", "graded", {"test_down_block": (2.0, 2.0)}, {}, [], 1.5, "ok", None)
    attach_result(nb, result)
    nbformat.write(nb, str(tmp_path / "executed.ipynb"))
    assert notebook_bytes(nb) == (tmp_path / "executed.ipynb").read_bytes()
    assert result_in(json.loads(notebook_bytes(nb))) == result


def test_a_worker_sends_back_the_notebook_its_grader_handed_it(tmp_path):
    """The worker passes the grader's notebook bytes on as they came; it reads no file for them."""
    from grader.batch import pack
    from grader.workers import Task, run_task

    nb = read(released_path("01_UNets"))
    nb["metadata"]["fake"] = {"cells": {"test_basic_unet": [3, 3]}, "status": "graded"}
    (tmp_path / "01_UNets.ipynb").write_text(json.dumps(nb))
    task = Task("ann", "01_UNets", pack(tmp_path), "hash", str(ROOT), grader="batch_helpers:fake_grade")
    outcome = run_task(task)
    assert outcome.grader_error is None and outcome.result.executed_notebook is None
    sent = json.loads(outcome.executed)
    assert sent["metadata"]["fake"] == nb["metadata"]["fake"]
    assert sent["metadata"]["course_grader"]["result"]["cells"] == {"test_basic_unet": [3.0, 3.0]}


# ---------------------------------------------------------------- answers that reach the finished version

def _answer_table(assignment):
    from grader import finished
    from grader.cells import source

    spec = load_spec(ROOT, assignment)
    return finished.answer_table({g: source(spec.cell(g)) for g in spec.answers}, ROOT / "utils")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_finished_version_named_for_an_answer_exists(assignment):
    from grader.reach_kernel import resolve

    for gid, entry in _answer_table(assignment).items():
        assert entry["names"] and entry["targets"], gid
        missing = [t for t in entry["targets"] if resolve(t) is None]
        assert not missing, f"{assignment} {gid}: {missing}"


def test_finished_versions_are_only_those_of_the_answer_itself():
    tables = {a: _answer_table(a) for a in ASSIGNMENTS}
    assert set(tables["01_UNets"]["down_block"]["targets"]) == {"utils.basic_unet:DownBlock",
                                                               "utils.unet_utils:DownBlock"}
    assert "utils.unet_utils:UNet" in tables["06_Assessment"]["unet"]["targets"]
    # what earlier notebooks taught stays free: 04's conditional_loss may call DDPM.training_loss, 05's
    # text_to_image the guided sampler of 04, 06's UNet28 the blocks of 03
    assert not any("training_loss" in t for t in tables["04_Classifier_Free_Diffusion"]["conditional_loss"]["targets"])
    assert not any("guid" in t for t in tables["05_CLIP"]["text_to_image"]["targets"])
    assert tables["06_Assessment"]["unet"]["targets"] == ["utils.unet_utils:UNet"]


STUDENT_CELL = "<ipython-input-student>"
TRUSTED_CELL = "<ipython-input-course>"


def _kernel_like(assignment="01_UNets"):
    """A namespace like the notebook's after its setup cell, and a watch over its answers, in-process."""
    import torch
    from torch import nn

    from grader.reach_kernel import Watch
    from utils.grading import count_parameters, wave_input

    watch = Watch(_answer_table(assignment), [], ["<ipython-input"])
    watch.trusted = {TRUSTED_CELL}
    watch.work = "/no/submission/folder"  # in the kernel, the folder of the files handed in
    namespace = {"__name__": "__main__", "torch": torch, "nn": nn, "count_parameters": count_parameters,
                 "wave_input": wave_input}
    return watch, namespace


def _run(source, namespace, filename=STUDENT_CELL):
    exec(compile(source, filename, "exec"), namespace)


USE_DOWN_BLOCK = "_b = DownBlock(2, 4)\n_b(wave_input((2, 2, 8, 8)))\n"
USE_UP_BLOCK = "_b = UpBlock(2, 4)\n_b(wave_input((2, 2, 4, 4)), wave_input((2, 2, 4, 4), 3))\n"


def _routes():
    import hostile

    return [("alias", hostile.ALIAS_WRAP, "down_block"), ("importlib", hostile.IMPORTLIB, "basic_unet"),
            ("getattr", hostile.GETATTR_MODULE, "up_block"), ("sys.modules", hostile.SYS_MODULES_ROUTE, "up_block"),
            ("instance __dict__", hostile.DICT_COPY, "down_block"),
            ("class __dict__", hostile.CLASS_DICT_COPY, "down_block"), ("methods", hostile.METHOD_COPY, "up_block"),
            ("subclass", hostile.SUBCLASS, "down_block"), ("__new__ lambda", hostile.NEW_WRAPPER, "down_block"),
            ("partialmethod", hostile.PARTIAL, "up_block")]


@pytest.mark.parametrize("route, source, gid", _routes(), ids=[r[0] for r in _routes()])
def test_every_route_to_the_finished_version_is_seen(route, source, gid):
    """Each hostile route is seen by the look at the objects and, where the finished code runs on the
    student's behalf, by the watch while the course's check uses the answer."""
    watch, namespace = _kernel_like()
    _run(source, namespace)
    assert watch.inspect(gid, namespace), f"{route}: the objects hold the finished version"
    use = {"down_block": USE_DOWN_BLOCK, "up_block": USE_UP_BLOCK,
           "basic_unet": "BasicUNet()(wave_input((1, 1, 16, 16)))\n"}[gid]
    assert watch.start(gid)
    try:
        _run(use, namespace, TRUSTED_CELL)  # the course's check, calling the answer
    finally:
        seen = watch.stop()
    if route != "subclass":  # a subclass runs the finished code as its own: the object look sees it
        assert seen, f"{route}: the finished code ran for the answer"


def test_the_watch_sees_a_route_no_object_holds():
    """A name built at run time and looked up in a module's __dict__: only the run-time watch sees it."""
    watch, namespace = _kernel_like()
    _run("import utils\nimport utils.basic_unet\n"
         "class DownBlock(nn.Module):\n"
         "    def __init__(self, a, b):\n"
         "        super().__init__()\n"
         "        where = vars(utils)['basic' + '_unet'].__dict__\n"
         "        self.model = where['Down' + 'Block'](a, b).model\n"
         "    def forward(self, x):\n"
         "        return self.model(x)\n", namespace)
    assert watch.inspect("down_block", namespace) == []
    watch.start("down_block")
    _run(USE_DOWN_BLOCK, namespace, TRUSTED_CELL)
    assert any("DownBlock.__init__" in line for line in watch.stop())


def test_honest_answers_and_the_course_checks_are_not_seen():
    """The instructor's answers, a helper the notebook imports, and the course's own check calling the
    finished version beside the answer (as the test cells do): nothing is reported."""
    import hostile

    watch, namespace = _kernel_like()
    for gid in ("down_block", "up_block", "basic_unet"):
        _run("".join(cells_by_grade_id(read(solution_path("01_UNets")))[gid]["source"]), namespace)
    _run(hostile.HELPERS_ALLOWED, namespace)
    for gid, use in (("down_block", USE_DOWN_BLOCK), ("up_block", USE_UP_BLOCK)):
        assert watch.inspect(gid, namespace) == []
        watch.start(gid)
        try:
            _run(use + "import utils.basic_unet as _reference\n_reference.DownBlock(2, 4)\n"
                 "_reference.UpBlock(2, 4)\n", namespace, TRUSTED_CELL)
        finally:
            assert watch.stop() == []
    assert watch.inspect("basic_unet", namespace) == []


def test_a_decorator_the_finished_version_shares_is_not_taken_for_it():
    """02's p_sample and the course's DDPM.p_sample are both wrapped by torch.no_grad: the wrapper's code
    is torch's, the same for both, and must not count as the finished code."""
    watch, namespace = _kernel_like("02_Diffusion_Models")
    _run("@torch.no_grad()\ndef p_sample(x_t, t, e_t, schedule, z=None, generator=None):\n"
         "    return x_t - e_t\n", namespace)
    assert watch.inspect("p_sample", namespace) == []
    watch.start("p_sample")
    try:
        _run("p_sample(torch.ones(2), torch.zeros(2), torch.ones(2), None)\n", namespace, TRUSTED_CELL)
    finally:
        assert watch.stop() == []
    watch.start("p_sample")
    try:  # the finished version, called from the student's code, is still seen through the decorator
        _run("from utils.ddpm_utils import DDPM\n_d = DDPM(5)\n"
             "def _mine(x, t, e):\n    return _d.p_sample(x, t, e)\n", namespace)
        _run("_mine(torch.ones(2, 1, 2, 2), torch.tensor([1, 2]), torch.ones(2, 1, 2, 2))\n", namespace, TRUSTED_CELL)
    finally:
        assert any("DDPM.p_sample" in line for line in watch.stop())
