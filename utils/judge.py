"""The judge of notebook 06, in one place: what notebooks, tests and ``make judge`` import as ``utils.judge``.

The judge's code lives in modules with one job each, bottom to top:

- ``utils.copies``: distances between images that a small move, the mirror image or brightness cannot hide;
- ``utils.stats``: the Wilson interval, pass probabilities, the judge-feature FID and the pixel FD;
- ``utils.judge_net``: the judge (a small CNN), its training, its ``Calibration`` on real images, its file;
- ``utils.assessment``: the assessment's U-Net, loading a submission, the course's answers with the
  notebook's signatures, the verdict's seed and the generation of the images;
- ``utils.verdict``: the verdict on the generated images (``assess``).

Every public name of those is available here (``judge.fid``, ``judge.load_judge``, ``judge.assess``, ...);
the names of ``utils.assessment`` and ``utils.verdict`` are looked up when used, since they import the
layers below. Here too: ``fid_table`` and ``judge_ready`` for notebooks 02-04, ``isolated()`` (fresh copies
of all of it for the graded cell of notebook 06) and the command that makes the judge:

    python -m utils.judge            (what ``make judge`` runs: trains on the train split, calibrates
                                      on the test split, prints the figures and the file's SHA-256)
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from .copies import COPY_SEARCH, SPREAD_SEARCH, CopyMetric, class_spread, nearest_distance  # noqa: F401
from .data import CLASS_NAMES, COURSE_ROOT
from .judge_net import (COPY_PROBES, COPY_QUANTILE, IMG_SIZE, JUDGE_FILE, PIXEL_DRAWS,  # noqa: F401
                        PIXEL_REALISM_FRACTION, REALISM_FACTOR, SPREAD_PROBES, STAND_IN_FILE, Calibration, Judge,
                        JudgeNotFoundError, calibrate, initial_environ, judge_folder, load_judge, predict,
                        save_judge, sha256, train_judge)
from .stats import (PIXEL_COMPONENTS, PIXEL_TOLERANCE, Z_95, JudgeFeatures, check_pixel_range, fid,  # noqa: F401
                    pass_probability, pixel_basis, pixel_fd, wilson_interval)

# The modules of the judge and the verdict, bottom to top: each imports only those before it.
ISOLATED = ("copies", "stats", "judge_net", "judge", "assessment", "verdict")
LATER = ("assessment", "verdict")  # imported on first use of one of their names (they import the layers below)


def isolated():
    """Private, freshly loaded copies of the modules of ``ISOLATED``, for the graded verdict: this module's
    copy, with the names of the later modules in it as ``utils.judge`` re-exports them.

    A submission can patch ``utils.judge`` or ``utils.verdict`` themselves (say, ``assess``); copies
    loaded from the files after that are untouched by it, and each uses the others' copies.
    """
    import importlib.util

    saved = {stem: sys.modules.get(f"{__package__}.{stem}") for stem in ISOLATED}
    fresh = {}
    try:
        for stem in ISOLATED:
            spec = importlib.util.spec_from_file_location(f"{__package__}._{stem}_isolated",
                                                          Path(__file__).with_name(f"{stem}.py"))
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up there
            sys.modules[f"{__package__}.{stem}"] = module  # what the next one imports
            spec.loader.exec_module(module)
            fresh[stem] = module
    finally:
        for stem, module in saved.items():
            if module is None:
                sys.modules.pop(f"{__package__}.{stem}", None)
            else:
                sys.modules[f"{__package__}.{stem}"] = module
    for stem in LATER:
        for name in fresh[stem].__all__:
            setattr(fresh["judge"], name, getattr(fresh[stem], name))
    return fresh["judge"]


def _later():
    from . import assessment, verdict

    return assessment, verdict


def __getattr__(name: str):
    """The names of ``utils.assessment`` and ``utils.verdict``, looked up there when used (they import this)."""
    for module in _later():
        if name in module.__all__:
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *(name for module in _later() for name in module.__all__)})


# -- the judge-feature FID in notebooks 02-04 ------------------------------------------------
REFERENCE_ROW = "real images (not the held-out ones)"


def judge_ready(folder: Path | str | None = None) -> bool:
    """True when a judge has been made (``judge.pt`` in ``folder``, default ``judge_folder()``); else
    print how to make one and return False. Notebooks ask before they spend time sampling for an FID."""
    path = Path(folder or judge_folder()) / JUDGE_FILE
    if not path.exists():
        print(f"judge-feature FID skipped: no judge at {path}. An instructor makes it once with `make judge` "
              f"(or set COURSE_JUDGE to the folder that holds {JUDGE_FILE}).")
    return path.exists()


def fid_table(samples: dict[str, torch.Tensor], heldout: torch.Tensor, reference: torch.Tensor,
              folder: Path | str | None = None, seed: int = 0) -> dict[str, float] | None:
    """Print the judge-feature FID of each set of samples against real held-out images, and return it.

    The first row scores ``reference``, real images that are not among ``heldout`` (the training
    split, say), against the same held-out images: what a perfect model would get with this many
    images, since FID is biased upwards for small sets. From every set the same number of images is
    drawn at random (``seed``), as many as the smallest set holds, so the rows of one table compare;
    numbers from tables of other sizes do not. Samples are clamped to [-1, 1] first, the range of
    real images and of the pictures the notebooks show.

    Args:
        samples: row name -> generated images [N, 1, H, W] (N >= 2) in [-1, 1], any float dtype and
            device (values beyond [-1, 1], a sampler's overshoot, are clamped).
        heldout, reference: real images [M, 1, H, W] in [-1, 1] at the samples' size (load them with
            ``fashion_mnist_tensors(img_size=H, split="test")`` and ``split="train"``).
        folder: where the judge is (default: ``judge_folder()``).

    Returns:
        {row name: FID}, the reference row first; or None, after printing how to make a judge, when
        there is none (``make judge``).

    Raises:
        ValueError, before anything is printed: a set that is not [N, 1, H, W] at the held-out images'
        size, holds fewer than two images or non-finite pixels, integer pixels or none below 0 (images in
        [0, 1] or 0-255: scale them to [-1, 1]), or a row named like the reference row.
    """
    if REFERENCE_ROW in samples:
        raise ValueError(f"{REFERENCE_ROW!r} names the reference row; give your samples another name")
    rows = {REFERENCE_ROW: reference, **samples}
    for name, images in {"held-out images": heldout, **rows}.items():
        if images.dim() != 4 or images.shape[1:] != heldout.shape[1:] or heldout.shape[1] != 1:
            raise ValueError(f"{name}: expected [N, 1, H, W] images of the held-out size "
                             f"{list(heldout.shape[1:])}, got {list(images.shape)}")
        if len(images) < 2:
            raise ValueError(f"{name}: FID needs at least two images, got {len(images)}")
        if not torch.isfinite(images).all():
            raise ValueError(f"{name}: NaN or infinite pixels (a sampler that diverged: check the reverse step)")
        check_pixel_range(name, images, clamped=True)
    if not judge_ready(folder):
        return None
    net, _ = load_judge(folder, device=heldout.device)
    n = min(len(images) for images in {"held-out": heldout, **rows}.values())
    pick = torch.Generator().manual_seed(seed)

    def subset(images: torch.Tensor) -> torch.Tensor:  # data files are often sorted by class: draw, don't slice
        drawn = images[torch.randperm(len(images), generator=pick)[:n].to(images.device)]
        return drawn.to(heldout.device, torch.float32).clamp(-1, 1)

    real = subset(heldout)
    print(f"judge-feature FID against {n} real held-out images at {heldout.shape[-2]}x{heldout.shape[-1]} "
          f"(lower is closer; compare rows of this table only)")
    table = {}
    for name, images in rows.items():
        table[name] = fid(net, subset(images), real)
        print(f"  {name:<40} {table[name]:8.1f}")
    return table


# -- make judge -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Train the judge on the train split, calibrate it on the test split, save it, print the checksum."""
    import argparse

    from .data import fashion_mnist_tensors
    from .runtime import default_device
    from .assessment import SETUP

    parser = argparse.ArgumentParser(prog="python -m utils.judge", description=main.__doc__)
    parser.add_argument("--out", default=str(COURSE_ROOT / "judge"), help="folder to write judge.pt to")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = default_device()
    train = fashion_mnist_tensors(img_size=IMG_SIZE, split="train").to(device)
    heldout = fashion_mnist_tensors(img_size=IMG_SIZE, split="test").to(device)
    print(f"training the judge on {len(train):,} images ({args.epochs} epochs, seed {args.seed}) on {device}")
    judge = train_judge(train, epochs=args.epochs, seed=args.seed)
    n_generated = SETUP.n_per_class * len(CLASS_NAMES)
    calibration = calibrate(judge, train, heldout, n_generated=n_generated, seed=args.seed, epochs=args.epochs)
    path, checksum = save_judge(judge, calibration, args.out)
    lo, hi = wilson_interval(round(calibration.accuracy * len(heldout)), len(heldout))
    print(f"accuracy on {len(heldout):,} real held-out images: {calibration.accuracy:.2%} (95% interval "
          f"{lo:.2%} to {hi:.2%}); per class: "
          + ", ".join(f"{name} {a:.0%}" for name, a in zip(CLASS_NAMES, calibration.per_class_accuracy)))
    print(f"copy threshold {calibration.copy_threshold:.4f} (moves of up to {calibration.copy_search} pixels, "
          f"mirror image and brightness; {COPY_QUANTILE:.0%} of {min(COPY_PROBES, len(heldout)):,} held-out images "
          f"come nearer a training image); FID real against real ({n_generated} images): "
          f"{calibration.fid_real:.2f}, realism bound {calibration.realism_bound:.1f}; pixel FD real against real: "
          f"{calibration.pixel_fd_real:.2f}, of the mean image repeated: {calibration.pixel_fd_flat:.1f}, bound "
          f"{calibration.pixel_fd_bound:.1f}")
    print(f"wrote {path}\nSHA-256 {checksum}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
