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

The code: sections 1 and 2 in ``bench_train.py``, section 3 in ``bench_sample.py``, what they share
(the machine, the rows, the timing helpers) in ``bench_measure.py``; the profile and the tables here.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_measure import Row, load_average, machine, sync  # noqa: E402
from bench_sample import section_sampling  # noqa: E402
from bench_train import Stepper, section_epoch, section_training  # noqa: E402

from utils.fast import FastPath  # noqa: E402


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
