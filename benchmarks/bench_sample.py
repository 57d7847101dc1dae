"""Section 3 of ``bench.py``: sampling. The model call per path, whole sampler runs eager against
automatic, and classifier-free guided sampling (notebooks 04-06).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import torch

from bench_measure import T, Row, add_ratios, automatic, median, sync
from utils import fast
from utils.ddpm_utils import DDPM
from utils.fast import FastPath
from utils.unet_utils import UNet


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
