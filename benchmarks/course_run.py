"""What a student gets: the instructor notebooks run top to bottom in a profile, on the real data.

    make course-run                                   (the fast profile, all six notebooks)
    python benchmarks/course_run.py --profile fast --ids 02_Diffusion_Models 03_Optimizations
    python benchmarks/course_run.py --profile grade    (times only, as nbgrader runs them)
    python benchmarks/course_run.py --ids 06_Assessment --seed 1   (another training seed)

Each notebook runs in a fresh kernel (nbclient), in course order, with one scratch checkpoint
folder shared by the series (as for a student who works through it: 03 reuses 02's model) and no
environment overrides beyond ``COURSE_PROFILE``. After its last cell a few lines run in the same
kernel and print the notebook's payoff figure (``PAYOFFS``): what the notebook promises, measured
as the issue tracker's targets define it. The table gives, per notebook, the wall time, the time
of the cells that train, the payoff figure, its target, and PASS or FAIL. The executed notebooks
(as HTML pages) and every picture they drew are saved to ``benchmarks/results/course-run-<profile>/``
(the folder the README names).

The fast and full profiles need the full FashionMNIST (the course's data folder, or the
Debian/Ubuntu package ``dataset-fashion-mnist``) and a judge (``make judge``); it says so and stops
when either is missing. ``--profile grade`` also sets NBGRADER_EXECUTION, as nbgrader does, and
reports times only (a graded run trains two steps: it promises nothing to measure). It is a benchmark, not a test: a FAIL is a finding, and the exit code is 0 either way.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TRAINS = re.compile(r"(?<![\w.])train\(")
MARK = "COURSE_RUN_PAYOFF "

# Shared by the payoff snippets of 04 and 05: how often the judge reads 16x16 images as ``labels``
# (upsampled to its 28x28, as its FID features are), and the same for real held-out 16x16 images.
_JUDGE_16 = '''
import torch as _t, torch.nn.functional as _F
from utils import judge as _J
from utils.data import fashion_mnist_tensors as _fm
_net, _ = _J.load_judge()
def _read(images, labels):
    up = _F.interpolate(images.float().cpu().clamp(-1, 1), size=28, mode="bilinear", align_corners=False)
    return (_J.predict(_net, up) == labels.cpu()).float().mean().item()
_real = _fm(16, split="test")
_real_rate = _read(_real.images, _real.labels)
'''

# notebook -> (code printing MARK + JSON {"value", "target", "passed", "detail"}, description)
PAYOFFS = {
    "02_Diffusion_Models": ('''
_v = fid_02["02 basic U-Net"]
print(MARK + json.dumps({"value": round(_v, 1), "target": "FID <= 130", "passed": _v <= 130,
      "detail": f"real/real {list(fid_02.values())[0]:.1f}"}))''', "judge-feature FID of 100 samples"),
    "03_Optimizations": ('''
_v, _b = fid_03["03 UNet"], fid_03["02 basic U-Net"]
print(MARK + json.dumps({"value": round(_v, 1), "target": "FID <= 70 and below 02's", "passed": _v <= 70 and _v < _b,
      "detail": f"02 basic {_b:.1f}; last weights: 03 {fid_03.get('03 UNet, last weights', float('nan')):.1f}, "
                f"02 basic {fid_03.get('02 basic U-Net, last weights', float('nan')):.1f}; real/real {list(fid_03.values())[0]:.1f}"}))''',
                         "judge-feature FID, 03 UNet (averaged weights)"),
    "04_Classifier_Free_Diffusion": (_JUDGE_16 + '''
_rates = {w: _read(grid[:, j].reshape(-1, *IMAGE_SHAPE),
                   _t.tensor(grid_classes).repeat_interleave(per_cell)) for j, w in enumerate(grid_weights)}
_best = max((w for w in grid_weights if w >= 0), key=_rates.get)
_v = _rates[_best]
print(MARK + json.dumps({"value": round(_v, 3), "target": f">= 0.8 x real {_real_rate:.3f} = {0.8 * _real_rate:.3f}",
      "passed": _v >= 0.8 * _real_rate, "detail": f"best w = {_best:g}; " + ", ".join(
      f"w={w:g}: {r:.0%}" for w, r in _rates.items())}))''', "judge reads the asked class (16x16)"),
    "05_CLIP": (_JUDGE_16 + '''
_v = _read(generated, asked)
print(MARK + json.dumps({"value": round(_v, 3), "target": f">= 0.8 x real {_real_rate:.3f} = {0.8 * _real_rate:.3f}",
      "passed": _v >= 0.8 * _real_rate, "detail": f"{len(asked)} images, w = {MEASURE['w']:g}"}))''',
                "judge reads the prompt's class (16x16)"),
    "06_Assessment": ('''
print(MARK + json.dumps({"value": round(verdict.rate, 3), "target": f">= pass mark {verdict.pass_mark:.3f} + 0.05",
      "passed": verdict.rate >= verdict.pass_mark + 0.05,
      "detail": f"{verdict.successes}/{verdict.n}, w = {GUIDANCE_WEIGHT:g}, FID {verdict.fid if verdict.fid is None else round(verdict.fid, 1)}"}))''',
                      "verdict success rate"),
}


def _payoff(client, nb, code: str) -> dict | None:
    """Run the payoff snippet in the notebook's kernel; the JSON it printed, or None."""
    import nbformat

    cell = nbformat.v4.new_code_cell("import json\nMARK = " + repr(MARK) + "\n" + code)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    except Exception as error:  # a missing variable (a skipped cell): report it, keep going
        return {"value": None, "target": "", "passed": False, "detail": f"{type(error).__name__}: {str(error)[-200:]}"}
    finally:
        nb.cells.pop()
    for output in cell.outputs:
        for line in output.get("text", "").splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
    return None


def _save_pictures(nb, folder: Path, stem: str) -> int:
    """Write every PNG the notebook drew to ``folder/<stem>-cell<NN>-<k>.png``; return how many."""
    count = 0
    for index, cell in enumerate(nb.cells):
        for k, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {}).get("image/png")
            if data:
                (folder / f"{stem}-cell{index:02d}-{k}.png").write_bytes(base64.b64decode(data))
                count += 1
    return count


def reseed(nb, seed: int) -> None:
    """Make the notebook's setup cell (the first that calls ``set_seed(0)``) call ``set_seed(seed)``.

    The setup cell's seed drives the training data order, the initial weights and the samples, so
    another seed is another training run of the same notebook. Raises ValueError when no cell calls
    ``set_seed(0)``.
    """
    for cell in nb.cells:
        if cell.cell_type == "code" and "set_seed(0)" in cell.source:
            cell.source = cell.source.replace("set_seed(0)", f"set_seed({seed})", 1)
            return
    raise ValueError("no code cell calls set_seed(0): --seed has nothing to change in this notebook")


def execute(nb_id: str, timeout: int, payoffs: bool = True, seed: int = 0):
    """Run one instructor notebook top to bottom in a fresh kernel; the executed notebook and its figures.

    A cell that raises stops the run, as "Run All" does (a failing verdict is a finding); the payoff
    is still measured in the same kernel, and ``failed_cell`` names the cell.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError

    from grader.kernel_session import widgetless_client_class

    path = ROOT / "solutions" / nb_id / f"{nb_id}.ipynb"
    nb = nbformat.read(path, as_version=4)
    if seed != 0:
        reseed(nb, seed)
    # no Output-widget stand-in: with one, a run can stall for good at an ``interact`` cell (jupyter/nbclient#312)
    client = widgetless_client_class()(nb, timeout=timeout, kernel_name="python3",
                                       resources={"metadata": {"path": str(path.parent)}})
    cells, start, failed = [], time.perf_counter(), None
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t0 = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                failed = {"index": index, "error": f"{error.ename}: {error.evalue}"[:300]}
            cells.append({"index": index, "seconds": round(time.perf_counter() - t0, 2),
                          "trains": bool(TRAINS.search(cell.source))})
            if failed:
                break
        wall = time.perf_counter() - start
        payoff = _payoff(client, nb, PAYOFFS[nb_id][0]) if payoffs and nb_id in PAYOFFS else None
    train_seconds = sum(c["seconds"] for c in cells if c["trains"])
    return nb, {"notebook": nb_id, "seed": seed, "seconds": round(wall, 1), "train_seconds": round(train_seconds, 1),
                "payoff": payoff, "figure": PAYOFFS.get(nb_id, (None, "-"))[1], "failed_cell": failed,
                "slowest_cells": sorted(cells, key=lambda c: -c["seconds"])[:5], "training_notes": training_notes(nb)}


def training_notes(nb) -> list[str]:
    """What the training cells printed about their runs: each time-budget decision and summary line."""
    notes = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            notes += [line.strip() for line in output.get("text", "").splitlines()
                      if line.startswith("time budget:") or " steps" in line and " epoch(s), " in line]
    return notes


def save(nb, out: Path, stem: str) -> int:
    """Write the executed notebook as ``out/<stem>.html`` and its pictures as PNGs; return how many.

    HTML, not .ipynb: notebooks in the course are kept without outputs, and a page with every
    output and picture is what an instructor reads. Returns the number of PNGs written.
    """
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    (out / f"{stem}.html").write_text(body, encoding="utf-8")
    return _save_pictures(nb, out, stem)


def run(nb_id: str, timeout: int, out: Path, payoffs: bool = True, seed: int = 0) -> dict:
    """``execute`` one notebook and ``save`` it under ``out``; its times, payoff and picture count."""
    nb, result = execute(nb_id, timeout, payoffs, seed)
    return {**result, "pictures": save(nb, out, nb_id)}


def preflight() -> str | None:
    """Why the run cannot measure what a student gets here, or None."""
    from utils.data import DataNotFoundError, fashion_mnist_tensors
    from utils.judge import JUDGE_FILE, judge_folder

    try:
        n = len(fashion_mnist_tensors())
    except DataNotFoundError as error:
        return str(error)
    if n < 70_000:
        return (f"only {n:,} images found ({os.environ.get('COURSE_DATA_DIR') or 'data/'}); the course run "
                f"measures what a student gets on the full 70,000 (unset COURSE_DATA_DIR, or install "
                f"dataset-fashion-mnist)")
    if not (judge_folder() / JUDGE_FILE).exists():
        return f"no judge at {judge_folder() / JUDGE_FILE}: run `make judge` first"
    return None


def table(results: list[dict], profile: str, seed: int = 0) -> str:
    import platform

    lines = [f"course run, profile {profile}, seed {seed}, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
             f"{platform.processor() or platform.machine()}",
             "| notebook | wall (s) | training cells (s) | payoff figure | value | target | result | detail |",
             "| --- | ---: | ---: | --- | ---: | --- | --- | --- |"]
    for r in results:
        p = r["payoff"] or {}
        verdict = "-" if not p else ("PASS" if p.get("passed") else "FAIL")
        detail = p.get("detail", "")
        if r.get("failed_cell"):
            detail += f" (stopped at cell {r['failed_cell']['index']}: {r['failed_cell']['error']})"
        lines.append(f"| {r['notebook']} | {r['seconds']:.0f} | {r['train_seconds']:.0f} | {r['figure']} | "
                     f"{p.get('value', '-')} | {p.get('target', '-')} | {verdict} | {detail} |")
    total = sum(r["seconds"] for r in results)
    lines.append(f"\nseries: {total / 60:.1f} min in all")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="fast", choices=("fast", "full", "grade"))
    parser.add_argument("--ids", nargs="*", default=None, help="notebook ids (default: all six, in order)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--out", type=Path, default=None, help="folder for the executed notebooks and pictures")
    parser.add_argument("--seed", type=int, default=0,
                        help="the seed of each notebook's setup cell (default 0, as released): another training run")
    args = parser.parse_args(argv)
    problem = preflight() if args.profile != "grade" else None
    if problem:
        print(f"course run not started: {problem}")
        return 2
    ids = args.ids or sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"course-run-{args.profile}" + (f"-seed{args.seed}" if args.seed else ""))
    out.mkdir(parents=True, exist_ok=True)
    os.environ["COURSE_PROFILE"] = args.profile
    if args.profile == "grade":
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    results = []
    with tempfile.TemporaryDirectory() as checkpoints:
        os.environ["COURSE_CHECKPOINT_DIR"] = checkpoints
        for nb_id in ids:
            print(f"running {nb_id} ({args.profile}), load {' '.join(f'{v:.1f}' for v in os.getloadavg())}",
                  flush=True)
            result = run(nb_id, args.timeout, out, payoffs=args.profile != "grade", seed=args.seed)
            results.append(result)
            print(f"  {result['seconds']:.0f} s (training {result['train_seconds']:.0f} s); payoff {result['payoff']}"
                  + (f"; stopped at cell {result['failed_cell']['index']}: {result['failed_cell']['error']}"
                     if result["failed_cell"] else ""), *result["training_notes"], sep="\n  ", flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=1))
    report = table(results, args.profile, args.seed)
    (out / "table.md").write_text(report + "\n")
    print("\n" + report + f"\n\nexecuted notebooks and pictures: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
