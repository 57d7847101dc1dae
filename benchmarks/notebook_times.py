"""Wall time of each instructor notebook under a profile, run top to bottom with nbclient.

    python benchmarks/notebook_times.py --profile fast [--ids 01_UNets 03_Optimizations] [--json out.json]

Notebooks run one at a time, in a fresh kernel each, with an empty checkpoint folder (so every
training run really trains). ``--profile grade`` also sets NBGRADER_EXECUTION, as nbgrader does.

With only a sample of FashionMNIST on disk a profile trains on fewer images than it asks for
(``Profile.train_images``), so training cells run fewer steps. The table then also gives an
estimate for the full data: the time of the cells that train for the plan's epochs
(``epochs=...plan.epochs``; a run of a fixed number of steps does not grow) scaled by
``train_images / images available``; everything else as measured.
"""
from __future__ import annotations

import argparse
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
SCALES = re.compile(r"epochs=\w*plan\.epochs")


def run(notebook: Path, profile: str, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    cells = []
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t0 = time.perf_counter()
            client.execute_cell(cell, index)
            cells.append({"index": index, "seconds": time.perf_counter() - t0,
                          "trains": bool(TRAINS.search(cell.source)),
                          "scales": bool(TRAINS.search(cell.source) and SCALES.search(cell.source))})
    total = time.perf_counter() - start
    return {"notebook": notebook.stem, "profile": profile, "seconds": total,
            "train_seconds": sum(c["seconds"] for c in cells if c["trains"]),
            "scaled_seconds": sum(c["seconds"] for c in cells if c["scales"]), "cells": cells}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="fast", choices=("fast", "grade", "full"))
    parser.add_argument("--ids", nargs="*", default=None, help="notebook ids (default: all present)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from utils.data import DataNotFoundError, fashion_mnist_tensors
    from utils.profiles import get_profile

    ids = args.ids or sorted(p.name for p in (ROOT / "solutions").iterdir()
                             if (p / f"{p.name}.ipynb").exists())
    try:
        available = len(fashion_mnist_tensors())
    except DataNotFoundError:
        available = None
    wanted = get_profile(args.profile).train_images
    scale = (wanted / available) if (available and wanted and available < wanted) else 1.0
    os.environ["COURSE_PROFILE"] = args.profile
    if args.profile == "grade":
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    results = []
    with tempfile.TemporaryDirectory() as checkpoints:
        os.environ["COURSE_CHECKPOINT_DIR"] = checkpoints
        for nb_id in ids:
            load = " ".join(f"{v:.1f}" for v in os.getloadavg())
            print(f"running {nb_id} ({args.profile}), load {load}", flush=True)
            result = run(ROOT / "solutions" / nb_id / f"{nb_id}.ipynb", args.profile, args.timeout)
            result["load_average_start"] = load
            result["estimate_full_data"] = result["seconds"] + result["scaled_seconds"] * (scale - 1)
            results.append(result)
            print(f"  {result['seconds']:.0f} s (training cells {result['train_seconds']:.0f} s)", flush=True)
    print(f"\n| notebook | profile | measured (s) | training cells (s) | estimate with "
          f"{wanted or 'all'} training images (s) | load at start |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for r in results:
        print(f"| {r['notebook']} | {r['profile']} | {r['seconds']:.0f} | {r['train_seconds']:.0f} | "
              f"{r['estimate_full_data']:.0f} | {r['load_average_start']} |")
    if scale != 1.0:
        print(f"\n{available} images available; training cells scaled by {scale:.2f} for the estimate.")
    if args.json:
        args.json.write_text(json.dumps({"images_available": available, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
