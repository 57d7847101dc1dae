"""Sections 1 and 2 of ``bench.py``: a training step per path, and one epoch of the full profile end to
end, data included.
"""
from __future__ import annotations

import contextlib
import resource
import time
from dataclasses import replace

import torch

from bench_measure import FULL_EPOCH_IMAGES, SKIP_GPU, T, Row, add_ratios, automatic, median, sync
from utils import fast
from utils.ddpm_utils import DDPM
from utils.fast import FastPath
from utils.unet_utils import UNet


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
    """One epoch of 70,000 images by two routes: a DataLoader with per-image transforms (the
    baseline), and images resized once and kept as a tensor on the device, eager and automatic. A
    measured number of batches is timed and the epoch extrapolated (a whole epoch on a GPU)."""
    from utils.data import DataNotFoundError, fashion_mnist_tensors

    try:
        have = len(fashion_mnist_tensors(img_size=16))
    except DataNotFoundError as error:
        print(f"  epoch section skipped: {str(error).splitlines()[0]}", flush=True)
        return [Row("epoch", "both routes", note="skipped: FashionMNIST not found (set COURSE_DATA_DIR)")]
    ddpm = DDPM(T=T).to(device)
    rows = [_loader_row(ddpm, device, args)]
    batches, data_note = _tensor_batches(device, args.batch, have)
    rows += _tensor_rows(ddpm, device, args, batches, data_note)
    add_ratios(rows, rows[0])
    if have < FULL_EPOCH_IMAGES:
        for row in rows:
            if row.seconds:
                row.note += f"; {have} real images repeated to {FULL_EPOCH_IMAGES:,}"
    return rows


def _loader_row(ddpm: DDPM, device: torch.device, args) -> Row:
    """Route A, the baseline: per-image PIL transforms in a DataLoader (main process), batches
    copied to the device, eager float32."""
    from torch.utils.data import DataLoader, Subset

    from utils.data import fashion_mnist

    dataset = fashion_mnist(img_size=16)
    index = [i % len(dataset) for i in range(FULL_EPOCH_IMAGES)]
    loader = DataLoader(Subset(dataset, index), batch_size=args.batch, shuffle=True, drop_last=True,
                        num_workers=args.workers)
    n_measured = args.epoch_batches
    # Data alone: how long the loader takes to produce a batch (no training).
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in range(n_measured):
        next(it)
    loader_only = (time.perf_counter() - start) / n_measured
    per_step, _ = _timed_train(ddpm, device, args, loader, FastPath(device.type), n_measured)
    return _epoch_row("DataLoader + transforms, eager float32 (baseline)", per_step, args.batch,
                      note=f"extrapolated from {n_measured} batches; data alone {loader_only * 1e3:.1f} ms/batch "
                           f"(num_workers={args.workers})")


def _tensor_batches(device: torch.device, batch: int, have: int):
    """Route B's data: the ``have`` images resized once (timed, scaled to 70,000) and repeated to a
    full epoch, one tensor on the device; a pass over its batches is timed. Returns the batches and
    a note on the data."""
    from utils.data import TensorBatches, fashion_mnist_tensors

    start = time.perf_counter()
    full = fashion_mnist_tensors(img_size=16)
    resize_s = (time.perf_counter() - start) * FULL_EPOCH_IMAGES / have
    reps = -(-FULL_EPOCH_IMAGES // have)
    full.images = full.images.repeat(reps, 1, 1, 1)[:FULL_EPOCH_IMAGES]
    full.labels = full.labels.repeat(reps)[:FULL_EPOCH_IMAGES]
    batches = TensorBatches(full.to(device), batch, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in batches:
        pass
    sync(device)
    tensor_only = (time.perf_counter() - start) / len(batches)
    return batches, (f"data alone {tensor_only * 1e3:.2f} ms/batch; one-off resize ~{resize_s:.1f} s "
                     f"for 70,000 images (scaled from {have})")


def _tensor_rows(ddpm: DDPM, device: torch.device, args, batches, data_note: str) -> list[Row]:
    """Route B, training on the tensor batches: eager float32, then the automatic path."""
    from utils.profiles import PROFILES, train_plan

    steps_per_epoch = FULL_EPOCH_IMAGES // args.batch
    whole = device.type == "cuda" and not args.quick
    n_steps = steps_per_epoch if whole else args.epoch_batches
    how = "a whole epoch, measured" if whole else f"extrapolated from {args.epoch_batches} batches"
    per_step, _ = _timed_train(ddpm, device, args, batches, FastPath(device.type), n_steps)
    eager = _epoch_row("tensors on the device + flip per batch, eager float32", per_step, args.batch,
                       note=f"{how}; {data_note}")
    # Notebook 03's full profile trains 5 epochs; the automatic choice sees the whole run.
    run_steps = train_plan("03_Optimizations", PROFILES["full"]).epochs * steps_per_epoch
    auto = automatic(device, "train", args, steps=run_steps)
    per_step, history = _timed_train(ddpm, device, args, batches, auto, n_steps)
    name = f"tensors on the device, {history.path if auto.measure else auto.description}"
    return [eager, _epoch_row(name, per_step, args.batch, note=how)]


def _timed_train(ddpm: DDPM, device: torch.device, args, batches, path: FastPath, n_steps: int):
    """Seconds per step of ``n_steps`` steps of ``utils.training.train`` on ``path`` (a fresh U-Net,
    warmed up outside the timing: compiling, CUDA graphs), and the run's History."""
    from utils.training import train

    def loss_fn(model, batch_):
        x = batch_[0].to(device, non_blocking=True)
        return ddpm.training_loss(model, x, ddpm.random_timesteps(x.shape[0], device))

    torch.manual_seed(0)
    model = UNet(T=T).to(device)
    train(model, loss_fn, batches, epochs=1, lr=1e-3, max_steps=args.warmup + (2 if path.compile else 0),
          progress=False, fast=path)
    sync(device)
    start = time.perf_counter()
    history = train(model, loss_fn, batches, epochs=1, lr=1e-3, max_steps=n_steps, progress=False, fast=path)
    sync(device)
    return (time.perf_counter() - start) / history.steps, history


def _epoch_row(name: str, per_step: float, batch: int, note: str) -> Row:
    """A row of section 2: ``per_step`` seconds a step of ``batch`` images, scaled to a full epoch."""
    epoch = per_step * (FULL_EPOCH_IMAGES // batch)
    return Row("epoch", name, epoch, FULL_EPOCH_IMAGES / epoch, note=note)
