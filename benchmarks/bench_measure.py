"""What every section of ``bench.py`` shares: the machine, the rows of a table, the timing helpers and
the automatic path. Imported by ``bench.py``, which puts the course on ``sys.path``.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from utils import fast
from utils.fast import FastPath

FULL_EPOCH_IMAGES = 70_000
T = 150
SKIP_GPU = "skipped: no GPU"


# -- machine --------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_bf16_flags() -> str:
    """The CPU flags that mean native bfloat16 (AMX tiles, AVX-512 BF16), as /proc/cpuinfo lists them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "n/a"
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                      if line.startswith("flags")), []))
    found = sorted(flags & {"amx_bf16", "amx_tile", "amx_int8", "avx512_bf16"})
    return " ".join(found) or "none"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine(device: torch.device) -> dict:
    info = {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": fast.cpu_has_native_bf16(),
        "cpu_bf16_flags": cpu_bf16_flags(),
        "load_average_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# -- timing ---------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One line of a table: a name, a time per unit, and what else was measured."""

    section: str
    name: str
    seconds: float | None = None  # per step (training, sampling call) or per epoch
    images_per_s: float | None = None
    ratio: float | None = None  # speed relative to the section's baseline (higher is faster)
    note: str = ""
    samples: list[float] = field(default_factory=list)

    def cells(self) -> list[str]:
        def num(v, fmt):
            return "" if v is None else format(v, fmt)
        return [self.name, num(self.seconds, ".4f"), num(self.images_per_s, ",.0f"),
                "" if self.ratio is None else f"{self.ratio:.2f}x", self.note]


def add_ratios(rows: list[Row], baseline: Row) -> None:
    for row in rows:
        if row.seconds and baseline.seconds:
            row.ratio = baseline.seconds / row.seconds


def automatic(device: torch.device, purpose: str, args, steps: int | None = None) -> FastPath:
    """The path ``utils.fast`` chooses for ``purpose`` (without compiling under ``--no-compile``)."""
    auto = fast.choose_path(device, purpose, steps=steps)
    return replace(auto, compile=False, cudagraphs=False) if args.no_compile else auto
