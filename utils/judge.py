"""The judge of notebook 06: a classifier of real FashionMNIST images, calibrated on real images.

Everything the verdict of notebook 06 (``utils.verdict``) measures against real data is measured
once, when the judge is trained, and kept with its weights as a ``Calibration``: the judge's
accuracy on real held-out images (the pass mark is a share of it), the distance below which an image
counts as a near copy and the spread of each class (``utils.copies``), and the judge-feature FID of
real images against real images, from which the verdict's realism bound is set:

    python -m utils.judge            (what ``make judge`` runs: trains on the train split, calibrates
                                      on the test split, prints the figures and the file's SHA-256)

The judge lives in ``judge/judge.pt`` at the top of the course, or in the folder named by the
``COURSE_JUDGE`` environment variable (read from the environment the process started with, so a
notebook cannot point the grading at another judge). Images are [N, 1, H, W] in [-1, 1]; the judge
sees them at 28x28 (smaller ones are resized up).

``fid`` gives a classifier-feature FID (Heusel et al. 2017) with the judge's penultimate layer as
the feature extractor of torchmetrics' ``FrechetInceptionDistance``, as fast.ai's course measures
its FashionMNIST models with its own classifier; it needs no download.

The verdict's names (``assess``, ``generate``, ``SETUP``, ``load_submission``, ...) live in
``utils.verdict`` and are re-exported here, so notebooks write ``judge.assess``; ``isolated()`` gives
fresh copies of both for the graded cell.
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .copies import COPY_SEARCH, SPREAD_SEARCH, CopyMetric, class_spread, nearest_distance
from .data import CLASS_NAMES, COURSE_ROOT, ImageTensors, TensorBatches
from .runtime import eval_mode

IMG_SIZE = 28
JUDGE_FILE = "judge.pt"
STAND_IN_FILE = "stand_in.pt"
COPY_QUANTILE = 0.01     # share of real held-out images that the copy threshold flags
COPY_PROBES = 2000       # held-out images the copy threshold is measured on (each against every training image)
SPREAD_PROBES = 200      # held-out images per class the real spread is measured on
# The realism bounds (README, "Preparing the judge", gives the figures they were set from). On the judge's
# features: REALISM_FACTOR times the FID of real against real images at the verdict's size (full data:
# 10 x 41.0 = 410; honest models 85-188, speckled blobs tuned to the judge 480-537). On the pixels' main
# directions: PIXEL_REALISM_FRACTION of the pixel FD of the training images' mean image repeated, a set
# with the right mean and no variety at all (full data: 0.5 x 208 = 104; honest models 39-49, blobs the
# judge reads right 161-300).
REALISM_FACTOR = 10.0
PIXEL_REALISM_FRACTION = 0.5
PIXEL_COMPONENTS = 16    # principal directions of the training images the pixel FD looks along
PIXEL_DRAWS = 10         # draws of real images the real-against-real pixel FD is averaged over (it varies 2-5)


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
        copy_threshold: distance (``copy_metric``, moves of up to ``copy_search`` pixels) to the
            nearest training image below which an image counts as a near copy: the COPY_QUANTILE
            quantile of the same distance for real held-out images.
        class_spread: per class, the mean distance between two real held-out images (``copy_metric``,
            moves of up to ``spread_search`` pixels).
        fid_real: the judge-feature FID between real training and real held-out images, as many
            of each as the verdict generates: what a perfect model would score.
        n_train: images the judge was trained on. seed, epochs: how it was trained.
        copy_metric, copy_search, spread_search: how distances were measured (``utils.copies``);
            files written before moved copies were looked for lack them and read as plain pixel
            distances (``CopyMetric.PIXELS``).
        fid_bound: the verdict's realism bound on the judge-feature FID (REALISM_FACTOR x fid_real
            when the judge was made); files without it get the same from their fid_real.
        pixel_fd_real: the pixel FD (``pixel_fd``, on the training images' ``pixel_components`` main
            directions) of as many real training images as the verdict generates against all the
            held-out images, the mean over PIXEL_DRAWS draws. pixel_fd_flat: the same for the
            training images' mean image repeated. pixel_fd_bound: the verdict's bound on the pixel FD,
            PIXEL_REALISM_FRACTION x pixel_fd_flat. Files without them: not checked.
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
    copy_metric: CopyMetric = CopyMetric.PIXELS
    copy_search: int = 0
    spread_search: int = 0
    fid_bound: float | None = None
    pixel_fd_real: float | None = None
    pixel_fd_flat: float | None = None
    pixel_fd_bound: float | None = None
    pixel_components: int = PIXEL_COMPONENTS

    def __post_init__(self):
        self.copy_metric = CopyMetric(self.copy_metric)  # stored by value in judge.pt

    @property
    def realism_bound(self) -> float:
        """The largest judge-feature FID a verdict accepts."""
        return self.fid_bound if self.fid_bound is not None else REALISM_FACTOR * self.fid_real


ISOLATED = ("copies", "judge", "verdict")  # the modules of the verdict, each importing only those before it


def isolated():
    """Private, freshly loaded copies of this module, ``utils.copies`` and ``utils.verdict``, for the graded
    verdict: the judge module's copy, with the verdict's names in it as ``utils.judge`` re-exports them.

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
    for name in fresh["verdict"].__all__:
        setattr(fresh["judge"], name, getattr(fresh["verdict"], name))
    return fresh["judge"]


def __getattr__(name: str):
    """The verdict's names, re-exported from ``utils.verdict`` (imported on first use: it imports this)."""
    from . import verdict

    if name in verdict.__all__:
        return getattr(verdict, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    from . import verdict

    return sorted({*globals(), *verdict.__all__})


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


def calibrate(judge: Judge, train: ImageTensors, heldout: ImageTensors, *, n_generated: int,
              seed: int = 0, epochs: int = 0, copy_probes: int = COPY_PROBES,
              spread_probes: int = SPREAD_PROBES) -> Calibration:
    """Measure the judge on real images: accuracy, copy threshold, class spreads, FIDs and realism bounds.

    Args:
        train: the training split (what a diffusion model may copy), [M, 1, 28, 28].
        heldout: real images neither the judge nor the diffusion model trains on.
        n_generated: how many images a verdict generates (the real-against-real FID uses as many).
        seed: draws the images each figure is measured on; recorded, with epochs, as how the judge
            was trained. copy_probes: held-out images, drawn at random, whose distance to the nearest
            training image sets the copy threshold. spread_probes: held-out images per class, at most,
            the real spread is measured on.
    """
    labels = heldout.labels
    right = predict(judge, heldout.images) == labels
    classes = range(len(CLASS_NAMES))
    per_class = [float(right[labels == k].float().mean()) for k in classes]
    g = torch.Generator().manual_seed(seed)

    def drawn(images: torch.Tensor, n: int) -> torch.Tensor:  # data files are often sorted by class
        return images[torch.randperm(len(images), generator=g)[:n].to(images.device)]

    n = min(n_generated, len(heldout), len(train))
    fid_real = fid(judge, drawn(train.images, n), drawn(heldout.images, n))
    near = nearest_distance(drawn(heldout.images, copy_probes), train.images, search=COPY_SEARCH)
    spread = [class_spread(drawn(heldout.images[labels == k], spread_probes), search=SPREAD_SEARCH) for k in classes]
    basis = pixel_basis(train.images)
    pixel_fd_real = sum(pixel_fd(drawn(train.images, n), heldout.images, basis)
                        for _ in range(PIXEL_DRAWS)) / PIXEL_DRAWS
    pixel_fd_flat = pixel_fd(train.images.mean(0, keepdim=True).expand(n, -1, -1, -1), heldout.images, basis)
    return Calibration(
        accuracy=float(right.float().mean()), n_heldout=len(heldout),
        copy_threshold=float(torch.quantile(near, COPY_QUANTILE)), class_spread=spread,
        fid_real=fid_real, n_train=len(train), seed=seed, epochs=epochs, per_class_accuracy=per_class,
        copy_metric=CopyMetric.ALIGNED, copy_search=COPY_SEARCH, spread_search=SPREAD_SEARCH,
        fid_bound=REALISM_FACTOR * fid_real, pixel_fd_real=pixel_fd_real, pixel_fd_flat=pixel_fd_flat,
        pixel_fd_bound=PIXEL_REALISM_FRACTION * pixel_fd_flat, pixel_components=PIXEL_COMPONENTS,
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
    values = {**asdict(calibration), "copy_metric": calibration.copy_metric.value}  # plain types for weights_only
    torch.save({"model": state, "calibration": values}, path)
    return path, sha256(path)


def sha256(path: Path | str) -> str:
    """The SHA-256 checksum of a file, as hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class JudgeNotFoundError(FileNotFoundError):
    """No judge where it was looked for; the message says how to make one."""


def load_judge(folder: Path | str | None = None,
               device: torch.device | str = "cpu") -> tuple[Judge, Calibration]:
    """Load ``judge.pt`` from ``folder`` (default: ``judge_folder()``) with ``weights_only=True``.

    A file written before a field of ``Calibration`` existed loads with that field's default (see
    ``Calibration``); fields it does not know are left out.

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
    known = {f.name for f in fields(Calibration)}
    return judge.to(device).eval(), Calibration(**{k: v for k, v in saved["calibration"].items() if k in known})


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


def pixel_basis(train_images: torch.Tensor, k: int = PIXEL_COMPONENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels' mean [D] and their top-k principal directions [D, k] (float64, CPU) in images [N, 1, H, W]."""
    flat = train_images.detach().reshape(len(train_images), -1)
    n, total, outer = len(flat), 0, 0
    for part in flat.split(8192):  # float64 a part at a time: 60,000 images at once would take 0.4 GB
        part = part.double().cpu()
        total, outer = total + part.sum(0), outer + part.T @ part
    mean = total / n
    _, vectors = torch.linalg.eigh((outer - n * torch.outer(mean, mean)) / (n - 1))  # the covariance; ascending
    return mean, vectors[:, -k:].flip(1)


def pixel_fd(images: torch.Tensor, real_images: torch.Tensor, basis: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Frechet distance between Gaussians fitted to two sets' coordinates on ``basis`` (``pixel_basis``).

    The realism measure the judge has no part in: ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
    (the FID's formula, Heusel et al. 2017) on the pixels' main directions of variation in the training
    images instead of a network's features. Images a judge reads right but that look like no clothes
    (blobs filling the frame) are far from real ones here whatever the judge thinks of them.

    Args:
        images, real_images: [N, 1, H, W] and [M, 1, H, W] in [-1, 1], N, M >= 2, the size of the basis.
    """
    mean, directions = basis

    def fitted(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (x.detach().reshape(len(x), -1).double().cpu() - mean) @ directions
        return z.mean(0), torch.cov(z.T).reshape(directions.shape[1], -1)

    if len(images) < 2 or len(real_images) < 2:
        raise ValueError(f"a Frechet distance needs at least two images on each side, got {len(images)} and "
                         f"{len(real_images)}")
    (m1, s1), (m2, s2) = fitted(images), fitted(real_images)
    values, vectors = torch.linalg.eigh(s1)
    root = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T  # S_1^(1/2)
    cross = torch.linalg.eigvalsh(root @ s2 @ root).clamp_min(0).sqrt().sum()  # Tr (S_1^(1/2) S_2 S_1^(1/2))^(1/2)
    return float((m1 - m2).pow(2).sum() + s1.trace() + s2.trace() - 2 * cross)


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


# -- make judge -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Train the judge on the train split, calibrate it on the test split, save it, print the checksum."""
    import argparse

    from .data import fashion_mnist_tensors
    from .runtime import default_device
    from .verdict import SETUP, wilson_interval

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
