"""Shared test setup: the data folder, the course root and small helpers.

Tests read FashionMNIST from $COURSE_DATA_DIR if set, else from ``../shared/data`` beside the
course when it is there, else from a tiny synthetic set in the official IDX format that the
tests write themselves. The real loading code runs in every case.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def write_idx_fashion_mnist(root: Path, n_train: int = 64, n_test: int = 16, seed: int = 0) -> Path:
    """Write a small random FashionMNIST in the official (gzipped IDX) format under root."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        with gzip.open(raw / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.numpy().tobytes())
        with gzip.open(raw / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.numpy().tobytes())
    return root


def _data_dir(tmp_root: Path) -> Path:
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"])
    if (SHARED_DATA / "FashionMNIST" / "raw").is_dir():
        return SHARED_DATA
    return write_idx_fashion_mnist(tmp_root / "synthetic-fashion-mnist")


@pytest.fixture(scope="session", autouse=True)
def course_environment(tmp_path_factory):
    """Point the course at test data and a scratch checkpoint folder for the whole session."""
    tmp = tmp_path_factory.mktemp("course")
    data = _data_dir(tmp)
    os.environ["COURSE_DATA_DIR"] = str(data)
    os.environ["COURSE_CHECKPOINT_DIR"] = str(tmp / "checkpoints")
    os.environ["COURSE_JUDGE"] = str(tmp / "judge")  # notebook 06's judge; tests/assessment_support.py fills it
    os.environ.pop("COURSE_PROFILE", None)
    os.environ.setdefault("MPLBACKEND", "Agg")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return data


MEASURED: list[str] = []


def report(line: str) -> None:
    """Keep a measured figure for the summary at the end of the run (shown even when tests pass)."""
    MEASURED.append(line)


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("measured")
        for line in MEASURED:
            terminalreporter.write_line(line)
