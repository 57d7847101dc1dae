"""Benchmark: how fast notebook 03's U-Net trains and samples on this machine, path by path.

Run it with ``make bench`` (``BENCH_ARGS="--quick"`` for a short run) or
``python benchmarks/bench.py [--quick] [--json results.json] [--device cpu|cuda] [--profile]``.

Model: ``utils.unet_utils.UNet()`` (defaults: 16x16, down_chs (64, 64, 128)), DDPM with T = 150,
the loss ``ddpm.training_loss`` the notebooks use, Adam, batch 128. Every time is the median of
several repeats; the paths are measured in turns (round robin), so a change in the machine's
load hits all of them alike and the ratios to the eager float32 baseline stay fair.

Sections:
1. Training step per path: eager float32, channels_last, torch.compile, bfloat16 autocast (alone
   and with channels_last), CUDA graphs, the automatic fast path; step time, images/s, ratio to eager, and whether the
   automatic row is within the noise of the best row; the peak memory of the section.
2. One epoch of the full profile (70,000 images) end to end, data included: a DataLoader with
   per-image transforms against images resized once and kept as a tensor on the device. Only a
   sample of FashionMNIST may be present, so a measured number of batches is timed and the
   epoch extrapolated (the table says which rows are extrapolated, from how many batches).
3. Sampling: the model call per path, and 150 reverse steps for 100 images, eager against the
   automatic path; then classifier-free guided sampling (notebooks 04-06), eager against automatic.

The header gives the CPU's native bfloat16 support (PyTorch's query and the /proc/cpuinfo flags):
on such CPUs the automatic path times four candidates on the model's first call (``utils.fast``),
and the row names what it chose.

The one-off CPU investigations behind the CPU rules (thread counts, OpenMP wait policy, memory in
a fresh process, batch sizes, bfloat16 on AVX2) gave their answers; they are in the README.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import resource
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils import fast  # noqa: E402
from utils.ddpm_utils import DDPM  # noqa: E402
from dataclasses import replace  # noqa: E402

from utils.fast import FastPath  # noqa: E402
from utils.unet_utils import UNet  # noqa: E402

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


# -- training steps -------------------------------------------------------------------------------
class Stepper:
    """One training configuration: a model prepared for a path (``fast.training``), Adam, a step."""

    def __init__(self, path: FastPath, device: torch.device, batch: int, seed: int = 0):
        torch.manual_seed(seed)
        self.path, self.device, self.batch = path, device, batch
        self.model = UNet(T=T).to(device)
        self.ddpm = DDPM(T=T).to(device)
        # The thread count is set per timed block (below), so steppers measured in turns do not
        # inherit each other's.
        # Keep the stack: a context left to the garbage collector is closed with it, which would undo
        # the path's setup (layout, hooks) before the timed steps.
        self._stack = contextlib.ExitStack()
        self.run = self._stack.enter_context(fast.training(self.model, replace(path, threads=None)))
        self.optimizer = self.run.adam(1e-3)
        g = torch.Generator().manual_seed(seed)
        self.x = (torch.rand(batch, 1, 16, 16, generator=g) * 2 - 1).to(device)
        self.model.train()

    def loss(self, model, x):
        return self.ddpm.training_loss(model, x, self.ddpm.random_timesteps(self.batch, self.device))

    def timed(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps (one device sync at the end)."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.path.threads or before)
        try:
            sync(self.device)
            start = time.perf_counter()
            for _ in range(steps):
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.run.loss(self.loss, self.x)
                loss.backward()
                self.optimizer.step()
            loss.item()
            sync(self.device)
            return (time.perf_counter() - start) / steps
        finally:
            torch.set_num_threads(before)


def round_robin(steppers: dict[str, Stepper], repeats: int, block: int) -> dict[str, list[float]]:
    times = {name: [] for name in steppers}
    for _ in range(repeats):
        for name, stepper in steppers.items():
            times[name].append(stepper.timed(block))
    return times


def automatic(device: torch.device, purpose: str, args, steps: int | None = None) -> FastPath:
    auto = fast.choose_path(device, purpose, steps=steps)
    return replace(auto, compile=False, cudagraphs=False) if args.no_compile else auto


def training_paths(device: torch.device, args) -> dict[str, FastPath | str]:
    """The configurations of section 1, by name; a string says why a row is skipped."""
    cuda, dt_ = device.type == "cuda", device.type
    compile_ok = not args.no_compile and fast.can_compile(dt_)
    why_not = "skipped: --no-compile" if args.no_compile else "skipped: torch.compile unavailable"
    return {
        "eager float32 (baseline)": FastPath(dt_),
        "channels_last": FastPath(dt_, channels_last=True),
        "torch.compile": FastPath(dt_, compile=True) if compile_ok else why_not,
        "bf16 autocast": FastPath(dt_, autocast_dtype=torch.bfloat16),
        "bf16 autocast + channels_last": FastPath(dt_, autocast_dtype=torch.bfloat16, channels_last=True),
        "CUDA graphs (compile reduce-overhead)": (
            FastPath(dt_, compile=True, cudagraphs=True) if cuda and compile_ok else
            why_not if cuda else SKIP_GPU),
        "automatic fast path": automatic(device, "train", args),
    }


def noise_check(rows: dict[str, Row], auto: str) -> Row:
    """Is the automatic row within the noise of the fastest row? Noise: the relative spread
    (max / min - 1) of the repeats of the two rows, whichever is larger."""
    timed = {name: row for name, row in rows.items() if row.samples}
    best_name = min(timed, key=lambda name: timed[name].seconds)
    best, mine = timed[best_name], timed[auto]

    def spread(row):
        return max(row.samples) / min(row.samples) - 1

    gap, noise = mine.seconds / best.seconds - 1, max(spread(best), spread(mine))
    verdict = "within the noise" if gap <= noise else "SLOWER than the best row beyond the noise"
    return Row("train", "automatic against the best row", note=(
        f"best: {best_name} ({best.ratio:.2f}x); automatic {mine.ratio:.2f}x, {gap:+.1%} per step; "
        f"noise {noise:.1%}: {verdict}"))


def section_training(device: torch.device, args) -> list[Row]:
    block = 20 if device.type == "cuda" else 1
    steppers, compile_notes = {}, {}
    paths = training_paths(device, args)
    rows: dict[str, Row] = {}
    for name, path in paths.items():
        if isinstance(path, str):
            rows[name] = Row("train", name, note=path)
            continue
        stepper = Stepper(path, device, args.batch)
        warmup = args.warmup + (2 if path.compile else 0)  # compiling, CUDA-graph recording
        first = stepper.timed(warmup) * warmup
        if name == "automatic fast path":  # a measured path is settled by its first step
            name = f"automatic fast path = {stepper.run.path.description}"
        if path.compile:
            compile_notes[name] = f"compile + first steps {first:.1f} s, paid once per process"
        steppers[name] = stepper
        rows[name] = Row("train", name)
    for name, samples in round_robin(steppers, args.repeats, block).items():
        sec = median(samples)
        rows[name] = Row("train", name, sec, args.batch / sec, note=compile_notes.get(name, ""), samples=samples)
    add_ratios(list(rows.values()), rows["eager float32 (baseline)"])
    auto = next(name for name in rows if name.startswith("automatic"))
    out = list(rows.values()) + [noise_check(rows, auto)]
    if device.type == "cuda":
        peak = f"GPU allocated peak {torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB"
    else:
        peak = f"process resident peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
    out.append(Row("train", f"peak memory after every training row, batch {args.batch}", note=peak))
    return out


# -- epoch end to end -----------------------------------------------------------------------------
def section_epoch(device: torch.device, args) -> list[Row]:
    from torch.utils.data import DataLoader, Subset

    from utils.data import DataNotFoundError, TensorBatches, fashion_mnist, fashion_mnist_tensors
    from utils.training import train

    rows = []
    batch = args.batch
    steps_per_epoch = FULL_EPOCH_IMAGES // batch
    try:
        tensors = fashion_mnist_tensors(img_size=16)
    except DataNotFoundError as error:
        print(f"  epoch section skipped: {str(error).splitlines()[0]}", flush=True)
        return [Row("epoch", "both routes", note="skipped: FashionMNIST not found (set COURSE_DATA_DIR)")]
    have = len(tensors)
    sample_note = "" if have >= FULL_EPOCH_IMAGES else f"{have} real images repeated to {FULL_EPOCH_IMAGES:,}"

    # Route A: per-image PIL transforms in a DataLoader (main process), batches copied to the device.
    dataset = fashion_mnist(img_size=16)
    index = [i % len(dataset) for i in range(FULL_EPOCH_IMAGES)]
    loader = DataLoader(Subset(dataset, index), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=args.workers)
    ddpm = DDPM(T=T).to(device)

    def loss_fn(model, batch_):
        x = batch_[0].to(device, non_blocking=True)
        return ddpm.training_loss(model, x, ddpm.random_timesteps(x.shape[0], device))

    def timed_train(batches, path, n_steps):
        torch.manual_seed(0)
        model = UNet(T=T).to(device)
        train(model, loss_fn, batches, epochs=1, lr=1e-3, max_steps=args.warmup + (2 if path.compile else 0),
              progress=False, fast=path)  # warm up (compile, CUDA graphs) outside the timing
        sync(device)
        start = time.perf_counter()
        history = train(model, loss_fn, batches, epochs=1, lr=1e-3, max_steps=n_steps, progress=False,
                        fast=path)
        sync(device)
        return (time.perf_counter() - start) / history.steps, history

    n_measured = args.epoch_batches
    eager = FastPath(device.type)
    # Data alone: how long the loader takes to produce a batch (no training).
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in range(n_measured):
        next(it)
    loader_only = (time.perf_counter() - start) / n_measured

    per_step, _ = timed_train(loader, eager, n_measured)
    epoch = per_step * steps_per_epoch
    base = Row("epoch", "DataLoader + transforms, eager float32 (baseline)", epoch, FULL_EPOCH_IMAGES / epoch,
               note=f"extrapolated from {n_measured} batches; data alone {loader_only * 1e3:.1f} ms/batch "
                    f"(num_workers={args.workers})")
    rows.append(base)

    start = time.perf_counter()
    full = fashion_mnist_tensors(img_size=16)
    resize_s = (time.perf_counter() - start) * FULL_EPOCH_IMAGES / have
    reps = -(-FULL_EPOCH_IMAGES // have)
    full.images = full.images.repeat(reps, 1, 1, 1)[:FULL_EPOCH_IMAGES]
    full.labels = full.labels.repeat(reps)[:FULL_EPOCH_IMAGES]
    on_device = full.to(device)
    batches = TensorBatches(on_device, batch, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in batches:
        pass
    sync(device)
    tensor_only = (time.perf_counter() - start) / len(batches)

    whole = device.type == "cuda" and not args.quick
    n_steps = steps_per_epoch if whole else n_measured
    how = "a whole epoch, measured" if whole else f"extrapolated from {n_measured} batches"
    per_step, _ = timed_train(batches, eager, n_steps)
    epoch = per_step * steps_per_epoch
    rows.append(Row("epoch", "tensors on the device + flip per batch, eager float32", epoch,
                    FULL_EPOCH_IMAGES / epoch,
                    note=f"{how}; data alone {tensor_only * 1e3:.2f} ms/batch; one-off resize "
                         f"~{resize_s:.1f} s for 70,000 images (scaled from {have})"))
    # Notebook 03's full profile trains 5 epochs; the automatic choice sees the whole run.
    from utils.profiles import PROFILES, train_plan
    run_steps = train_plan("03_Optimizations", PROFILES["full"]).epochs * steps_per_epoch
    auto = automatic(device, "train", args, steps=run_steps)
    per_step, history = timed_train(batches, auto, n_steps)
    epoch = per_step * steps_per_epoch
    rows.append(Row("epoch", f"tensors on the device, {history.path if auto.measure else auto.description}", epoch,
                    FULL_EPOCH_IMAGES / epoch, note=how))
    add_ratios(rows, base)
    for row in rows:
        if sample_note and row.seconds:
            row.note += f"; {sample_note}"
    return rows


# -- sampling -------------------------------------------------------------------------------------
def section_sampling(device: torch.device, args) -> list[Row]:
    n = 100
    torch.manual_seed(0)
    model = UNet(T=T).to(device).eval()
    shape = (n, 1, 16, 16)
    x = torch.randn(shape, device=device)
    t = torch.full((n,), T // 2, device=device)

    # The model call alone, per path, in turns: the reason behind the sampling rules.
    calls = {"no_grad (eager)": FastPath(device.type),
             "inference_mode": FastPath(device.type, inference_mode=True),
             "inference_mode + channels_last": FastPath(device.type, inference_mode=True, channels_last=True)}
    calls["inference_mode + bf16 autocast"] = FastPath(device.type, inference_mode=True,
                                                       autocast_dtype=torch.bfloat16)
    calls["inference_mode + bf16 autocast + channels_last"] = FastPath(
        device.type, inference_mode=True, channels_last=True, autocast_dtype=torch.bfloat16)
    auto = automatic(device, "sample", args, steps=T)
    calls["automatic"] = auto
    block = 10 if device.type == "cuda" else 1

    def forward(path):
        with fast.sampling(model, device, path) as predict:
            sync(device)
            start = time.perf_counter()
            for _ in range(block):
                predict(x, t)
            sync(device)
            return (time.perf_counter() - start) / block

    per = {name: [] for name in calls}
    for path in calls.values():
        forward(path)
    for _ in range(args.repeats):
        for name, path in calls.items():
            per[name].append(forward(path))
    settled = _settled_sampling_path(model, device, auto, x, t)
    call_rows = [Row("sample", f"model call, batch {n}: {name if name != 'automatic' else 'automatic: ' + settled}",
                     median(v), n / median(v), samples=v) for name, v in per.items()]
    add_ratios(call_rows, call_rows[0])

    # Whole sampler runs: T reverse steps (fewer with --quick, scaled back to T; a DDPM of fewer
    # steps costs what the first steps of the long one cost).
    steps = T if not args.quick else 15
    sampler = DDPM(T=steps).to(device)
    runs = {"sampler, eager float32 (fast=False)": False, f"sampler, automatic fast path = {settled}": auto}
    if device.type == "cuda" and not args.no_compile and fast.can_compile("cuda"):
        compiled = replace(auto, compile=True, cudagraphs=True)
        runs[f"sampler, {compiled.description}"] = compiled

    def sample(path) -> None:
        sampler.sample(model, shape, generator=torch.Generator(device=device).manual_seed(0), fast=path)

    rows = sampler_rows(runs, sample, device, n, steps, args.sample_repeats)
    return call_rows + rows + guided_rows(device, args, steps)


def sampler_rows(runs: dict[str, FastPath | bool], sample: Callable[[FastPath | bool], None],
                 device: torch.device, n: int, steps: int, repeats: int, what: str = "") -> list[Row]:
    """Whole sampler runs of ``steps`` reverse steps (scaled to T: a DDPM of fewer steps costs what the
    first steps of the long one cost), each path in turn, ``repeats`` times; the first run is the
    baseline of the ratios. A compiled path gets one warm-up run first, reported in its note."""
    def timed(path) -> float:
        sync(device)
        start = time.perf_counter()
        sample(path)
        sync(device)
        return (time.perf_counter() - start) * T / steps

    first = {name: timed(path) * steps / T for name, path in runs.items()
             if isinstance(path, FastPath) and path.compile}  # warm-up runs: compiling
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, path in runs.items():
            times[name].append(timed(path))
    how = f"{T} steps" if steps == T else f"{steps} steps measured, scaled to {T}"
    rows = []
    for name, v in times.items():
        note = f"{n} images{what}, {how}, median of {len(v)}"
        if name in first:
            note += f"; first run incl. compile {first[name]:.1f} s"
        rows.append(Row("sample", name, median(v), n / median(v), note=note, samples=v))
    add_ratios(rows, rows[0])
    return rows


def _settled_sampling_path(model, device, path: FastPath, x, t, *model_args) -> str:
    """The description of the path ``fast.sampling`` runs for ``path`` (a measured path is timed
    on the first call; the choice is kept for the process)."""
    with fast.sampling(model, device, path) as predict:
        predict(x, t, *model_args)
        return predict.path.description


def guided_rows(device: torch.device, args, steps: int) -> list[Row]:
    """Classifier-free guided sampling of 100 images (notebooks 04-06 and the verdict): the class-
    conditional U-Net is called on the batch stacked twice each step; eager against automatic."""
    from utils.guidance import guided_sample

    n = 100
    torch.manual_seed(0)
    model = UNet(T=T, c_embed_dim=10).to(device).eval()
    c = torch.nn.functional.one_hot(torch.arange(n, device=device) % 10, 10).float()
    sampler = DDPM(T=steps).to(device)
    x, t = torch.randn(2 * n, 1, 16, 16, device=device), torch.full((2 * n,), T // 2, device=device)
    mask = torch.cat([torch.ones(n, 1, device=device), torch.zeros(n, 1, device=device)])
    auto = automatic(device, "sample", args, steps=2 * T)
    settled = _settled_sampling_path(model, device, auto, x, t, torch.cat([c, c]), mask)
    runs = {"guided sampler, eager float32 (fast=False)": False,
            f"guided sampler, automatic fast path = {settled}": auto}

    def sample(path) -> None:
        guided_sample(sampler, model, c, 2.0, (1, 16, 16), generator=torch.Generator(device=device).manual_seed(0),
                      n_frames=2, fast=path)

    return sampler_rows(runs, sample, device, n, steps, args.sample_repeats, what=", w = 2")


# -- profile --------------------------------------------------------------------------------------
def profile_summary(device: torch.device, args) -> str:
    """torch.profiler over one training step and one sampling call, summarised by kind of op."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    stepper = Stepper(FastPath(device.type), device, args.batch)
    stepper.timed(1)
    out = []
    for what, fn in (("training step, eager float32", lambda: stepper.timed(1)),
                     ("sampling model call (batch 100), no_grad", lambda: _one_call(stepper.model, device))):
        with profile(activities=activities) as prof:
            fn()
        out.append(f"### {what}\n" + _by_kind(prof, device))
    return "\n".join(out)


def _one_call(model, device):
    with torch.no_grad():
        model.eval()
        model(torch.randn(100, 1, 16, 16, device=device), torch.full((100,), 7, device=device))
        sync(device)
        model.train()


KINDS = (("convolution", ("conv",)), ("group norm", ("group_norm",)), ("GELU / ReLU", ("gelu", "relu")),
         ("matmul / linear", ("mm", "addmm", "linear")), ("optimizer (Adam)", ("_foreach", "adam", "lerp",
         "addcdiv", "addcmul", "sqrt")), ("copies / cat / layout", ("copy", "cat", "clone", "contiguous")))


def _by_kind(prof, device) -> str:
    use_cuda = device.type == "cuda"
    totals, count, all_us = {}, {}, 0.0
    for evt in prof.key_averages():
        us = (evt.self_device_time_total if use_cuda else evt.self_cpu_time_total)
        if not us:
            continue
        all_us += us
        kind = next((k for k, keys in KINDS if any(s in evt.key.lower() for s in keys)), "other")
        totals[kind] = totals.get(kind, 0.0) + us
        count[kind] = count.get(kind, 0) + evt.count
    clock = "GPU" if use_cuda else "CPU"
    lines = [f"| kind of op | self {clock} time (ms) | share | calls |", "| --- | ---: | ---: | ---: |"]
    for kind, us in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {kind} | {us / 1e3:.1f} | {us / all_us:.0%} | {count[kind]} |")
    return "\n".join(lines) + "\n"


# -- output ---------------------------------------------------------------------------------------
TITLES = {
    "train": "Training step (UNet defaults, 16x16)",
    "epoch": "One epoch of the full profile (70,000 images), end to end",
    "sample": "Sampling",
}


def table(info: dict, rows: list[Row], args) -> str:
    head = [f"# Benchmark {info['date']}",
            f"machine: {info['cpu']}, {info['cores']} cores (torch threads {info['torch_threads']}, "
            f"{info['cpu_capability']}; native bfloat16: {'yes' if info['cpu_native_bf16'] else 'no'}, "
            f"flags {info['cpu_bf16_flags']}){', GPU ' + info['gpu'] if 'gpu' in info else ''}",
            f"torch {info['torch']}, python {info['python']}, device {info['device']}, batch {args.batch}, "
            f"median of {args.repeats} repeats" + (" (--quick)" if args.quick else ""),
            f"load average (1, 5, 15 min): {info['load_average_start']} at start, "
            f"{info.get('load_average_end', 'n/a')} at end"]
    out = ["\n".join(head)]
    for section, title in TITLES.items():
        part = [r for r in rows if r.section == section]
        if not part:
            continue
        unit = {"epoch": "s/epoch", "train": "s/step"}.get(section, "s")
        lines = [f"\n## {title}", f"| path | {unit} | images/s | vs baseline | note |",
                 "| --- | ---: | ---: | ---: | --- |"]
        lines += ["| " + " | ".join(r.cells()) + " |" for r in part]
        out.append("\n".join(lines))
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a much shorter run (fewer repeats and steps)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best available)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per row (median)")
    parser.add_argument("--sample-repeats", type=int, default=None, help="whole sampler runs per path")
    parser.add_argument("--epoch-batches", type=int, default=None, help="batches timed per epoch route")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the baseline route")
    parser.add_argument("--no-compile", action="store_true", help="skip every torch.compile row")
    parser.add_argument("--profile", action="store_true", help="append a torch.profiler summary")
    parser.add_argument("--sections", default="train,epoch,sample",
                        help="comma-separated subset of train,epoch,sample")
    args = parser.parse_args(argv)

    from utils.runtime import default_device
    device = torch.device(args.device) if args.device else default_device()
    cuda = device.type == "cuda"
    args.repeats = args.repeats or (3 if args.quick else (10 if cuda else 5))
    args.sample_repeats = args.sample_repeats or (1 if args.quick or not cuda else 3)
    args.epoch_batches = args.epoch_batches or (3 if args.quick else (50 if cuda else 6))
    args.warmup = 3 if cuda else 1
    if args.quick and not cuda:
        args.no_compile = True  # compiling alone takes minutes on a small CPU
    os.environ.pop("COURSE_EAGER", None)

    info = machine(device)
    print(f"benchmarking on {device} ({info['cpu']}, {info['cores']} cores, "
          f"load {info['load_average_start']})", flush=True)
    rows: list[Row] = []
    sections = {"train": section_training, "epoch": section_epoch, "sample": section_sampling}
    started = time.perf_counter()
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        rows += sections[name.strip()](device, args)
        print(f"  {name}: {time.perf_counter() - t0:.0f} s (load {load_average()})", flush=True)
    info["load_average_end"] = load_average()
    info["seconds"] = round(time.perf_counter() - started, 1)
    text = table(info, rows, args)
    if args.profile:
        text += "\n## Profile (torch.profiler, one call each)\n" + profile_summary(device, args)
    print(text)
    if args.json:
        plain_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        payload = {"machine": info, "args": plain_args, "rows": [dict(r.__dict__) for r in rows]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
