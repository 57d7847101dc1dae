"""The judge of notebook 06: a classifier of real FashionMNIST images and the verdict it gives.

A generated image counts as a success when the judge reads it as the class that was asked for,
it is not a near copy of a training image, and its class's samples are not all alike. The verdict
compares the share of successes with a pass mark calibrated on the judge's own accuracy on real
held-out images, and states the statistical error (a Wilson interval, Wilson 1927).

Everything that is measured on real data (the judge's held-out accuracy, the distance below which
an image counts as a copy, the spread of each class) is measured once, when the judge is trained,
and kept with its weights as a ``Calibration``:

    python -m utils.judge            (what ``make judge`` runs: trains on the train split, prints
                                      the held-out accuracy and the weights' SHA-256)

The judge lives in ``judge/judge.pt`` at the top of the course, or in the folder named by the
``COURSE_JUDGE`` environment variable (read from the environment the process started with, so a
notebook cannot point the grading at another judge). Images are [N, 1, H, W] in [-1, 1]; the judge
sees them at 28x28 (smaller ones are resized up).

``fid`` gives a classifier-feature FID (Heusel et al. 2017) with the judge's penultimate layer as
the feature extractor of torchmetrics' ``FrechetInceptionDistance``, as fast.ai's course measures
its FashionMNIST models with its own classifier; it needs no download.

Test-only hook: if the judge folder holds ``stand_in.pt`` (images and labels of real held-out
images), ``generate`` returns those instead of sampling the model. ``make judge`` never writes
that file and graders give the notebook read-only access to the judge folder; the test suite uses
it to show that a model whose samples are real held-out images gets full marks.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import CLASS_NAMES, COURSE_ROOT, ImageTensors, TensorBatches
from .runtime import eval_mode

IMG_SIZE = 28
JUDGE_FILE = "judge.pt"
STAND_IN_FILE = "stand_in.pt"
PASS_FRACTION = 0.8      # pass mark = this share of the judge's accuracy on real held-out images
COLLAPSE_FRACTION = 0.5  # a class whose spread is below this share of the real spread has collapsed
COPY_QUANTILE = 0.01     # share of real held-out images that the copy threshold flags
Z_95 = 1.959964          # the two-sided 95% quantile of the standard normal


class Judge(nn.Module):
    """A small CNN classifier of 28x28 images: [N, 1, H, W] in [-1, 1] -> logits [N, 10].

    Two conv stages (3x3 conv, BatchNorm, ReLU, 2x2 max pool: 28 -> 14 -> 7; 16 then 32
    channels), then a 128-unit layer whose activations are the features (``features``, used for
    FID), then the class layer. Small on purpose: it trains in minutes on a CPU.
    """

    num_features = 128

    def __init__(self, n_classes: int = 10, width: int = 16):
        super().__init__()

        def stage(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(*stage(1, width), *stage(width, 2 * width), nn.Flatten(),
                                  nn.Linear(2 * width * (IMG_SIZE // 4) ** 2, self.num_features),
                                  nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.num_features, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations, [N, 128]; images of another size are resized to 28x28."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"the judge expects images of shape [N, 1, H, W], got {list(x.shape)}")
        if x.shape[-2:] != (IMG_SIZE, IMG_SIZE):
            x = F.interpolate(x, size=(IMG_SIZE, IMG_SIZE), mode="bilinear", align_corners=False)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class JudgeFeatures(nn.Module):
    """The judge as a torchmetrics feature extractor: images [N, 1, H, W] in [-1, 1] -> [N, 128]."""

    def __init__(self, judge: Judge):
        super().__init__()
        self.judge = judge
        self.num_features = judge.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(self.judge):
            return self.judge.features(x.float())


@dataclass
class Calibration:
    """What the judge measured on real images when it was trained (kept with its weights).

    Attributes:
        accuracy: share of real held-out images the judge classifies correctly, in [0, 1].
        n_heldout: how many held-out images that share was measured on.
        copy_threshold: RMS pixel distance (images in [-1, 1]) to the nearest training image
            (or its mirror image) below which an image counts as a near copy: the COPY_QUANTILE
            quantile of the same distance for real held-out images.
        class_spread: per class, the mean RMS pixel distance between two real held-out images.
        fid_real: the judge-feature FID between real training and real held-out images, as many
            of each as the verdict generates: what a perfect model would score.
        n_train: images the judge was trained on. seed, epochs: how it was trained.
    """

    accuracy: float
    n_heldout: int
    copy_threshold: float
    class_spread: list[float]
    fid_real: float
    n_train: int
    seed: int
    epochs: int
    per_class_accuracy: list[float] = field(default_factory=list)


def isolated():
    """A private, freshly loaded copy of this module, for the graded verdict.

    A submission can patch ``utils.judge`` itself (say, ``assess``); a copy loaded from the file
    after that is untouched by it.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("utils._judge_isolated", __file__)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- training and storage ---------------------------------------------------------------------
def train_judge(train: ImageTensors, *, epochs: int = 4, batch_size: int = 128, lr: float = 1e-3,
                seed: int = 0, progress: bool = True) -> Judge:
    """Train a Judge with Adam on real images (randomly mirrored), from a fixed seed.

    Args:
        train: images [N, 1, 28, 28] in [-1, 1] and labels [N], on the device to train on.
        epochs, batch_size, lr: the run. seed: weights, batch order, mirroring and dropout.

    Returns:
        The trained Judge in eval mode, on the images' device.
    """
    if train.images.shape[1:] != (1, IMG_SIZE, IMG_SIZE):
        raise ValueError(f"the judge trains on images [N, 1, 28, 28], got {list(train.images.shape)}; "
                         f"load them with fashion_mnist_tensors(img_size=28, split='train')")
    from tqdm.auto import tqdm

    device = train.images.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        judge = Judge().to(device)
        optimizer = torch.optim.Adam(judge.parameters(), lr=lr)
        batches = TensorBatches(train, batch_size, generator=torch.Generator().manual_seed(seed),
                                drop_last=False)
        judge.train()
        for epoch in range(epochs):
            for images, labels in tqdm(batches, desc=f"judge {epoch + 1}/{epochs}", leave=False,
                                       disable=not progress):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(judge(images), labels).backward()
                optimizer.step()
    return judge.eval()


@torch.no_grad()
def predict(judge: Judge, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The judge's class for each image: [N, 1, H, W] -> labels [N] (long, on the images' device)."""
    device = next(judge.parameters()).device
    with eval_mode(judge):
        out = [judge(images[i:i + batch_size].to(device)).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).to(images.device) if out else torch.zeros(0, dtype=torch.long)


def _flat(images: torch.Tensor) -> torch.Tensor:
    return images.detach().reshape(images.shape[0], -1).double()


@torch.no_grad()
def nearest_train_distance(images: torch.Tensor, train_images: torch.Tensor,
                           batch_size: int = 256) -> torch.Tensor:
    """RMS pixel distance from each image to its nearest training image or that image's mirror.

    Training mirrors images at random, so a replayed mirror image is a copy too.

    Args:
        images: [N, 1, H, W]; train_images: [M, 1, H, W], same H and W, both in [-1, 1].

    Returns:
        [N] float64 distances (0 for an exact copy); sqrt(mean squared pixel difference).
    """
    if images.shape[1:] != train_images.shape[1:]:
        raise ValueError(f"images {list(images.shape[1:])} and training images {list(train_images.shape[1:])} "
                         f"must have the same [C, H, W]")
    bank = torch.cat([_flat(train_images), _flat(train_images.flip(-1))]).to(images.device)
    d = images[0].numel()
    out = []
    for i in range(0, len(images), batch_size):
        out.append(torch.cdist(_flat(images[i:i + batch_size]), bank).min(1).values / math.sqrt(d))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def class_spread(images: torch.Tensor) -> float:
    """Mean RMS pixel distance between two different images of a set: [N, 1, H, W], N >= 2.

    0 when every image is the same; an unbiased estimate of the spread whatever N is.
    """
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"need at least two images [N, C, H, W], got {list(images.shape)}")
    flat = _flat(images)
    n = flat.shape[0]
    dist = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    return float(dist.sum() / (n * (n - 1)))


def calibrate(judge: Judge, train: ImageTensors, heldout: ImageTensors, *, n_generated: int,
              seed: int = 0, epochs: int = 0) -> Calibration:
    """Measure the judge on real images: accuracy, copy threshold, class spreads, FID floor.

    Args:
        train: the training split (what a diffusion model may copy), [M, 1, 28, 28].
        heldout: real images neither the judge nor the diffusion model trains on.
        n_generated: how many images a verdict generates (the FID floor uses as many).
        seed, epochs: recorded as how the judge was trained.
    """
    labels = heldout.labels
    right = predict(judge, heldout.images) == labels
    classes = range(len(CLASS_NAMES))
    per_class = [float(right[labels == k].float().mean()) for k in classes]
    near = nearest_train_distance(heldout.images, train.images)
    spread = [class_spread(heldout.images[labels == k]) for k in classes]
    g = torch.Generator().manual_seed(seed)
    n = min(n_generated, len(heldout), len(train))
    real_a = train.images[torch.randperm(len(train), generator=g)[:n].to(train.images.device)]
    real_b = heldout.images[torch.randperm(len(heldout), generator=g)[:n].to(heldout.images.device)]
    return Calibration(
        accuracy=float(right.float().mean()), n_heldout=len(heldout),
        copy_threshold=float(torch.quantile(near, COPY_QUANTILE)), class_spread=spread,
        fid_real=fid(judge, real_a, real_b), n_train=len(train), seed=seed, epochs=epochs,
        per_class_accuracy=per_class,
    )


def judge_folder() -> Path:
    """Where the judge lives: $COURSE_JUDGE as the process started with it, else ``judge/``."""
    value = _initial_environ("COURSE_JUDGE")
    return Path(value).expanduser().resolve() if value else COURSE_ROOT / "judge"


def _initial_environ(name: str) -> str | None:
    """An environment variable as the process started with it (Linux), else as it is now.

    ``os.environ`` can be changed by code in the process; /proc/self/environ cannot.
    """
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return os.environ.get(name)
    for entry in raw.split(b"\0"):
        key, _, value = entry.partition(b"=")
        if key.decode(errors="replace") == name:
            return value.decode(errors="replace")
    return None


def save_judge(judge: Judge, calibration: Calibration, folder: Path | str) -> tuple[Path, str]:
    """Write the weights and the calibration to ``folder/judge.pt``; return (path, SHA-256)."""
    path = Path(folder) / JUDGE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in judge.state_dict().items()}
    torch.save({"model": state, "calibration": asdict(calibration)}, path)
    return path, sha256(path)


def sha256(path: Path | str) -> str:
    """The SHA-256 checksum of a file, as hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class JudgeNotFoundError(FileNotFoundError):
    """No judge where it was looked for; the message says how to make one."""


def load_judge(folder: Path | str | None = None,
               device: torch.device | str = "cpu") -> tuple[Judge, Calibration]:
    """Load ``judge.pt`` from ``folder`` (default: ``judge_folder()``) with ``weights_only=True``.

    Raises:
        JudgeNotFoundError: no judge there; run ``make judge`` (or set COURSE_JUDGE).
    """
    path = Path(folder or judge_folder()) / JUDGE_FILE
    if not path.exists():
        raise JudgeNotFoundError(
            f"no judge at {path}. An instructor makes it once with `make judge` (it needs the full "
            f"FashionMNIST in the data folder); or point the COURSE_JUDGE environment variable at "
            f"the folder that holds {JUDGE_FILE} before starting Jupyter.")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    judge = Judge()
    judge.load_state_dict(saved["model"])
    return judge.to(device).eval(), Calibration(**saved["calibration"])


# -- statistics -------------------------------------------------------------------------------
def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (Wilson 1927) for a share k / n; 95% by default.

    Unlike the normal approximation p +- z sqrt(p(1-p)/n), it stays inside [0, 1] and keeps its
    coverage near 0 and 1, where a good model's error rate lives.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_probability(p: float, n: int, mark: float) -> float:
    """P(at least ceil(mark * n) successes of n) when each image succeeds with probability p.

    The chance that a model whose true success rate is p passes a verdict on n images.
    """
    need = math.ceil(mark * n - 1e-9)
    if p <= 0.0:
        return float(need <= 0)
    if p >= 1.0:
        return 1.0
    log_terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                 + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(max(need, 0), n + 1)]
    return float(sum(math.exp(t) for t in log_terms))


def fid(judge: Judge, images: torch.Tensor, real_images: torch.Tensor) -> float:
    """Classifier-feature FID between two sets of images, with the judge as feature extractor.

    torchmetrics' ``FrechetInceptionDistance`` with ``JudgeFeatures``: the Frechet distance
    ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) between Gaussians fitted to the judge's
    128 penultimate activations (Heusel et al. 2017). 0 for identical sets; lower is closer. It is
    biased upwards for small sets, so compare numbers measured on as many images, and compare with
    ``Calibration.fid_real`` (real against real at the verdict's size).

    Args:
        images, real_images: [N, 1, H, W] and [M, 1, H, W] float in [-1, 1], N, M >= 2. Images smaller
            than 28x28 (the 16x16 of notebooks 02-04) are resized to 28x28; compare them with real
            images at the same size, so both are resized alike.

    Raises:
        ValueError: too few images, another shape or size, NaN pixels, or pixels not in [-1, 1]
            (integer pixels, values beyond [-1, 1], or none below 0: images in [0, 1] or 0-255).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(images) < 2 or len(real_images) < 2:
        raise ValueError(f"FID needs at least two images on each side, got {len(images)} and {len(real_images)}")
    for side, batch in (("generated", images), ("real", real_images)):
        if batch.dim() != 4 or batch.shape[1] != 1:
            raise ValueError(f"the {side} images must be [N, 1, H, W], got {list(batch.shape)}")
        if not torch.isfinite(batch).all():
            raise ValueError(f"the {side} images hold NaN or infinite pixels: a sampler that diverged (check the "
                             f"reverse step); FID needs finite images")
        _check_pixel_range(f"the {side} images", batch, clamped=False)
    if images.shape[1:] != real_images.shape[1:]:
        raise ValueError(f"compare images of one size: {list(images.shape[1:])} and {list(real_images.shape[1:])}; "
                         f"load the real ones with fashion_mnist_tensors(img_size=...) at the model's size")
    device = next(judge.parameters()).device
    metric = FrechetInceptionDistance(feature=JudgeFeatures(judge), reset_real_features=True).to(device)
    for batch in real_images.split(1000):
        metric.update(batch.to(device), real=True)
    for batch in images.split(1000):
        metric.update(batch.to(device), real=False)
    return float(metric.compute())


REFERENCE_ROW = "real images (not the held-out ones)"
PIXEL_TOLERANCE = 1e-3  # float rounding beyond [-1, 1] that FID lets through


def _check_pixel_range(name: str, images: torch.Tensor, *, clamped: bool) -> None:
    """Refuse images that are not float pixels in [-1, 1], the range of the real images and the judge.

    Integer pixels and sets with no pixel below 0 (images in [0, 1] or 0-255: real images, and any
    sampler's output, have a background near -1) are refused; so are values beyond [-1, 1] unless
    ``clamped`` (the caller clamps them, as ``fid_table`` does with a sampler's overshoot).
    """
    if not images.is_floating_point():
        raise ValueError(f"{name}: integer pixels ({images.dtype}, values {int(images.min())} to {int(images.max())}); "
                         f"FID compares float images in [-1, 1]: scale them to [-1, 1] (x / 127.5 - 1 for 0-255)")
    lo, hi = float(images.min()), float(images.max())
    if lo >= -PIXEL_TOLERANCE:
        raise ValueError(f"{name}: pixel values from {lo:.4g} to {hi:.4g}, none below 0, not the [-1, 1] of the "
                         f"real images; scale them to [-1, 1] (2 * x - 1 from [0, 1], x / 127.5 - 1 from 0-255)")
    if not clamped and (lo < -1 - PIXEL_TOLERANCE or hi > 1 + PIXEL_TOLERANCE):
        raise ValueError(f"{name}: pixel values from {lo:.4g} to {hi:.4g}, outside [-1, 1]; scale images to "
                         f"[-1, 1] (a sampler's samples: .clamp(-1, 1), as the notebooks show them)")


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
        _check_pixel_range(name, images, clamped=True)
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


# -- the assessment's model ------------------------------------------------------------------
@dataclass(frozen=True)
class AssessmentSetup:
    """The sizes notebook 06 fixes, so that every submission is graded alike.

    Attributes:
        T, beta_start, beta_end: the linear noise schedule (``DDPM(T, beta_start, beta_end)``).
        down_chs, t_embed_dim: the U-Net (``utils.unet_utils.UNet`` at 28x28, 10 classes).
        n_per_class: images the verdict generates per class. seed: the verdict's sampling seed.
        weights: the file, in the assignment folder, that holds the model's state dict.
    """

    T: int = 50
    beta_start: float = 1e-4
    beta_end: float = 0.2
    down_chs: tuple[int, int, int] = (16, 32, 32)
    t_embed_dim: int = 8
    n_per_class: int = 20
    seed: int = 6
    weights: str = "06_model.pt"


SETUP = AssessmentSetup()


def assessment_unet(setup: AssessmentSetup = SETUP) -> nn.Module:
    """The course's U-Net with the assessment's sizes: 28x28 images, 10 classes."""
    from .unet_utils import UNet

    return UNet(T=setup.T, img_size=IMG_SIZE, down_chs=setup.down_chs, t_embed_dim=setup.t_embed_dim,
                c_embed_dim=len(CLASS_NAMES))


class SubmissionError(RuntimeError):
    """The submitted weights are missing or unusable; the message says why and what to do."""


# Prefixes that a wrapper adds to every key of the state dict of the model it wraps.
WRAPPER_PREFIXES = {"_orig_mod.": "torch.compile", "module.": "DataParallel / DistributedDataParallel"}


def _unwrapped(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict without the prefixes of known wrappers that every key carries, and the wrappers removed."""
    removed = []
    while state:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix):]: v for k, v in state.items()}
        removed.append(f"{prefix!r} ({WRAPPER_PREFIXES[prefix]})")
    return state, removed


def _misfit(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], n_examples: int = 3) -> str:
    """How ``state`` differs from ``expected``, in one line with a few example keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [f"{k} {list(state[k].shape)} for {list(v.shape)}" for k, v in expected.items()
                if k in state and state[k].shape != v.shape]
    kinds = (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
    return "; ".join(f"{len(keys)} {what} (e.g. {', '.join(keys[:n_examples])})" for what, keys in kinds if keys)


def load_submission(path: Path | str, setup: AssessmentSetup = SETUP,
                    device: torch.device | str = "cpu") -> nn.Module:
    """Load a submitted state dict (``torch.load(..., weights_only=True)``) into ``assessment_unet``.

    Weights saved through a wrapper (``torch.compile``: every key starts with ``_orig_mod.``;
    ``DataParallel`` or DDP: ``module.``) load with the prefix removed, and a printed line says so.

    Raises:
        SubmissionError: the file is missing, is not a state dict, or does not fit the U-Net (the
            message counts the missing, unexpected and reshaped keys, with a few examples).
    """
    path = Path(path)
    if not path.exists():
        raise SubmissionError(
            f"no weights at {path.resolve()}: train the model in the fast or full profile (the training "
            f"cell saves its state dict there), then submit {path.name} with the notebook.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with code in it, a truncated file, not a torch file at all
        raise SubmissionError(f"{path.name} could not be loaded with weights_only=True "
                              f"({type(error).__name__}: {error}); save model.state_dict() with torch.save") from error
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise SubmissionError(f"{path.name} does not hold a state dict; save it with torch.save(model.state_dict(), ...)")
    state, removed = _unwrapped(state)
    if removed:  # stdout, not stderr: nbgrader fails a graded cell that writes to stderr
        print(f"{path.name}: every key carried the prefix {' then '.join(removed)}; loaded without it "
              f"(next time save the plain module: torch.save(model.state_dict(), path))")
    model = assessment_unet(setup)
    misfit = _misfit(state, model.state_dict())
    if misfit:
        raise SubmissionError(f"{path.name} does not fit the assessment's U-Net (down_chs={setup.down_chs}, 28x28, "
                              f"10 classes): {misfit}. Save the plain module (names as in utils.unet_utils.UNet) "
                              f"with torch.save(model.state_dict(), path)")
    model.load_state_dict(state)
    return model.to(device).eval()


# -- the course's versions of the pieces a student writes, for the checks ----------------------
# The graded cells of notebook 06 are checked one at a time: a check of conditional_loss runs it with
# these q_sample and context_mask, a check of sample_images with these p_sample and guided_noise
# (``utils.grading.swapped_in``). Same formulas as utils.ddpm_utils and utils.guidance, with the
# notebook's signatures (the schedule passed as tensors).
def q_sample(x0: torch.Tensor, t: torch.Tensor, alpha_bars: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise (Ho et al. 2020, eq. 4); x0, noise [N, C, H, W]."""
    a = alpha_bars[t].reshape(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def p_sample(x_t: torch.Tensor, t: torch.Tensor, e_t: torch.Tensor, betas: torch.Tensor, alphas: torch.Tensor,
             alpha_bars: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One reverse step with sigma_t^2 = beta_t (Ho et al. 2020, Algorithm 2); z is drawn first, always."""
    z = torch.randn(x_t.shape, generator=generator, device=x_t.device)
    beta, alpha, alpha_bar = (v[t].reshape(-1, 1, 1, 1) for v in (betas, alphas, alpha_bars))
    mean = (x_t - beta / (1 - alpha_bar).sqrt() * e_t) / alpha.sqrt()
    return mean + (t > 0).float().reshape(-1, 1, 1, 1) * beta.sqrt() * z


def context_mask(n: int, drop_prob: float, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """[n, 1] floats: 0 (hide the class) with probability drop_prob, else 1."""
    return (torch.rand((n, 1), generator=generator, device=device) >= drop_prob).float()


def guided_noise(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor, w: float) -> torch.Tensor:
    """(1 + w) e_cond - w e_uncond (Ho & Salimans 2022, eq. 6), from one call on the batch stacked twice."""
    keep = torch.ones(x_t.shape[0], 1, device=x_t.device)
    e_cond, e_uncond = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, c]),
                             torch.cat([keep, torch.zeros_like(keep)])).chunk(2)
    return (1 + w) * e_cond - w * e_uncond


# -- generation and the verdict ---------------------------------------------------------------
def requested_classes(n_per_class: int, n_classes: int = len(CLASS_NAMES)) -> torch.Tensor:
    """The classes a verdict asks for: [n_per_class * n_classes], class 0 first, then 1, ..."""
    return torch.arange(n_classes).repeat_interleave(n_per_class)


def generate(model: nn.Module, ddpm, classes: torch.Tensor, w: float, *, seed: int,
             folder: Path | str | None = None, progress: bool = True) -> torch.Tensor:
    """Sample one image per requested class with classifier-free guidance, from a fixed seed.

    Uses the course's sampler (``utils.guidance.guided_sample``) on the schedule's device.

    Args:
        model: the class-conditional network, ``model(x_t, t, c, c_mask)`` at 28x28.
        ddpm: a ``utils.ddpm_utils.DDPM``. classes: labels [N]. w: guidance weight.
        seed: seeds the sampler's generator. folder: the judge folder (see the test-only hook
            in the module docstring).

    Returns:
        images [N, 1, 28, 28] on the CPU, clamped to [-1, 1].
    """
    folder = Path(folder or judge_folder())
    stand_in = folder / STAND_IN_FILE
    if stand_in.exists():
        return _stand_in_images(stand_in, classes)
    from .guidance import guided_sample

    device = ddpm.betas.device
    c = F.one_hot(classes.to(device), len(CLASS_NAMES)).float()
    g = torch.Generator(device=device).manual_seed(seed)
    trace = guided_sample(ddpm, model, c, float(w), (1, IMG_SIZE, IMG_SIZE), generator=g, n_frames=2,
                          progress=progress)
    return trace.images.cpu().clamp(-1, 1)


def _stand_in_images(path: Path, classes: torch.Tensor) -> torch.Tensor:
    """Real held-out images in place of samples (test-only): per class in order, then mirrored,
    then again from the start if the stand-in holds too few."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    # stdout, not stderr: nbgrader fails a graded cell that writes to stderr.
    print(f"TEST STAND-IN ({path}): the images judged are real held-out images, not the model's samples")
    images, labels = saved["images"], saved["labels"]
    out = torch.empty(len(classes), *images.shape[1:])
    for k in classes.unique().tolist():
        pool = images[labels == k]
        if not len(pool):
            raise ValueError(f"the stand-in holds no image of class {k}")
        pool = torch.cat([pool, pool.flip(-1)])
        where = (classes == k).nonzero().flatten()
        pool = pool.repeat(-(-len(where) // len(pool)), 1, 1, 1)  # repeats only when the pool is too small
        out[where] = pool[:len(where)]
    return out


@dataclass
class Verdict:
    """The judge's verdict on generated images (see ``assess``)."""

    n: int
    successes: int
    pass_mark: float
    interval: tuple[float, float]
    passed: bool
    correct: torch.Tensor          # [N] bool: the judge read the requested class
    copies: torch.Tensor           # [N] bool: nearer a training image than the copy threshold
    collapsed: list[int]           # classes whose samples are all alike
    predicted: torch.Tensor        # [N] the judge's classes
    requested: torch.Tensor        # [N] the requested classes
    nearest: torch.Tensor          # [N] distance to the nearest training image
    spread: list[float]            # per class, the generated images' spread
    fid: float | None
    calibration: Calibration

    @property
    def rate(self) -> float:
        return self.successes / self.n

    @property
    def success(self) -> torch.Tensor:
        """[N] bool: correct, not a copy, and its class not collapsed."""
        collapsed = torch.tensor([int(k) in self.collapsed for k in self.requested.tolist()], dtype=torch.bool)
        return self.correct & ~self.copies & ~collapsed

    def report(self) -> str:
        """The verdict as text: every number it rests on."""
        cal = self.calibration
        lo, hi = self.interval
        real_lo, real_hi = wilson_interval(round(cal.accuracy * cal.n_heldout), cal.n_heldout)
        lines = [
            f"judge: {cal.accuracy:.1%} right on {cal.n_heldout:,} real held-out images "
            f"(95% interval {real_lo:.1%} to {real_hi:.1%}); trained on {cal.n_train:,} images",
            f"pass mark: {PASS_FRACTION:.0%} of that = {self.pass_mark:.1%} of the generated images must succeed",
            f"generated: {self.n} images; judge read the requested class for {int(self.correct.sum())}",
            f"near copies of training images: {int(self.copies.sum())} (distance below {cal.copy_threshold:.3f}; "
            f"nearest distance median {float(self.nearest.median()):.3f})",
            "classes whose samples are all alike (spread below "
            f"{COLLAPSE_FRACTION:.0%} of real): {[CLASS_NAMES[k] for k in self.collapsed] or 'none'}",
            f"successes: {self.successes}/{self.n} = {self.rate:.1%}, 95% interval {lo:.1%} to {hi:.1%}",
        ]
        if self.fid is not None:
            lines.append(f"judge-feature FID against real held-out images: {self.fid:.2f} "
                         f"(real against real at this size: {cal.fid_real:.2f})")
        lines.append(f"verdict: {'PASS' if self.passed else 'FAIL'} "
                     f"({self.rate:.1%} {'>=' if self.passed else '<'} {self.pass_mark:.1%})")
        return "\n".join(lines)


def assess(judge: Judge, calibration: Calibration, images: torch.Tensor, requested: torch.Tensor,
           train_images: torch.Tensor, real_images: torch.Tensor | None = None) -> Verdict:
    """Judge generated images against a calibrated pass mark.

    An image succeeds when the judge reads its requested class, its distance to the nearest
    training image is at least ``calibration.copy_threshold``, and its class's spread is at least
    COLLAPSE_FRACTION of the real spread of that class. It passes when the share of successes
    is at least PASS_FRACTION times the judge's accuracy on real held-out images.

    Args:
        images: generated [N, 1, 28, 28] in [-1, 1]; requested: their classes [N], at least two
            images of each class present.
        train_images: the diffusion model's training images [M, 1, 28, 28] (to find copies).
        real_images: real held-out images for the FID, or None to skip it.
    """
    images, requested = images.detach().cpu().float(), requested.cpu().long()
    if images.dim() != 4 or images.shape[1:] != (1, IMG_SIZE, IMG_SIZE) or len(images) != len(requested):
        raise ValueError(f"expected images [N, 1, 28, 28] and classes [N], got {list(images.shape)} "
                         f"and {list(requested.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("the generated images contain NaN or infinite values; the model diverged")
    predicted = predict(judge, images)
    correct = predicted == requested
    nearest = nearest_train_distance(images, train_images.cpu())
    copies = nearest < calibration.copy_threshold
    spread, collapsed = [], []
    for k in range(len(CLASS_NAMES)):
        mine = images[requested == k]
        s = class_spread(mine) if len(mine) >= 2 else float("nan")
        spread.append(s)
        if len(mine) >= 2 and s < COLLAPSE_FRACTION * calibration.class_spread[k]:
            collapsed.append(k)
    ok = correct & ~copies & ~torch.tensor([int(k) in collapsed for k in requested.tolist()], dtype=torch.bool)
    n, successes = len(images), int(ok.sum())
    mark = PASS_FRACTION * calibration.accuracy
    return Verdict(
        n=n, successes=successes, pass_mark=mark, interval=wilson_interval(successes, n),
        passed=successes >= mark * n - 1e-9, correct=correct, copies=copies, collapsed=collapsed,
        predicted=predicted, requested=requested, nearest=nearest, spread=spread,
        fid=fid(judge, images, real_images) if real_images is not None else None, calibration=calibration,
    )


# -- make judge -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Train the judge on the train split, calibrate it on the test split, save it, print the checksum."""
    import argparse

    from .data import fashion_mnist_tensors
    from .runtime import default_device

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
    print(f"copy threshold {calibration.copy_threshold:.4f}; FID real against real ({n_generated} images): "
          f"{calibration.fid_real:.2f}")
    print(f"wrote {path}\nSHA-256 {checksum}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
