"""The judge of notebook 06: a classifier of real FashionMNIST images, its training, its calibration on
real images, and its file.

Everything the verdict (``utils.verdict``) measures against real data is measured once, when the judge
is trained (``calibrate``), and kept with its weights as a ``Calibration``: the judge's accuracy on real
held-out images (the pass mark is a share of it), the distance below which an image counts as a near copy
and the spread of each class (``utils.copies``), and the judge-feature FID and pixel FD of real images
against real images (``utils.stats``), from which the verdict's realism bounds are set.

The judge lives in ``judge/judge.pt`` at the top of the course, or in the folder named by the
``COURSE_JUDGE`` environment variable (read from the environment the process started with, so a
notebook cannot point the grading at another judge). Images are [N, 1, H, W] in [-1, 1]; the judge
sees them at 28x28 (smaller ones are resized up). ``python -m utils.judge`` (``make judge``) makes it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .copies import COPY_SEARCH, SPREAD_SEARCH, CopyMetric, class_spread, nearest_distance
from .data import CLASS_NAMES, COURSE_ROOT, ImageTensors, TensorBatches
from .runtime import eval_mode
from .stats import PIXEL_COMPONENTS, fid, pixel_basis, pixel_fd

IMG_SIZE = 28
JUDGE_FILE = "judge.pt"
STAND_IN_FILE = "stand_in.pt"
COPY_QUANTILE = 0.01     # share of real held-out images that the copy threshold flags
COPY_PROBES = 2000       # held-out images the copy threshold is measured on (each against every training image)
SPREAD_PROBES = 200      # held-out images per class the real spread is measured on
# The realism bounds (README, "Preparing the judge", gives the figures they were set from). They are
# worked out from the calibration's measurements each time a verdict is given, so a judge file made
# before a change of rule follows the rule of the code that reads it.
# On the judge's features: REALISM_FACTOR times the FID of real against real images at the verdict's size
# (full data: 5 x 41.0 = 205; honest models 69-164, smooth blobs fitted to the judge 258-261, speckled
# blobs 480-537). On the pixels' main directions: PIXEL_REALISM_FRACTION of the pixel FD of the training
# images' mean image repeated, a set with the right mean and no variety at all (full data: 1.0 x 208 =
# 208; honest models 32-185, speckled blobs 300, noise 279). The pixel FD alone cannot tell an honest
# model of the fast profile from smooth blobs (161 against 162-171), so it only rules out images further
# from real ones than a grey average; the judge's features do the finer work.
REALISM_FACTOR = 5.0
PIXEL_REALISM_FRACTION = 1.0
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
        pixel_fd_real: the pixel FD (``pixel_fd``, on the training images' ``pixel_components`` main
            directions) of as many real training images as the verdict generates against all the
            held-out images, the mean over PIXEL_DRAWS draws. pixel_fd_flat: the same for the
            training images' mean image repeated. Files without them: the pixel FD is not checked.
        The bounds the verdict applies, ``realism_bound`` and ``pixel_fd_bound``, are worked out from
        these when read (older files stored them; what they stored is ignored).
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
    pixel_fd_real: float | None = None
    pixel_fd_flat: float | None = None
    pixel_components: int = PIXEL_COMPONENTS

    def __post_init__(self):
        self.copy_metric = CopyMetric(self.copy_metric)  # stored by value in judge.pt

    @property
    def realism_bound(self) -> float:
        """The largest judge-feature FID a verdict accepts: REALISM_FACTOR x fid_real."""
        return REALISM_FACTOR * self.fid_real

    @property
    def pixel_fd_bound(self) -> float | None:
        """The largest pixel FD a verdict accepts, PIXEL_REALISM_FRACTION x pixel_fd_flat (None: not checked)."""
        return None if self.pixel_fd_flat is None else PIXEL_REALISM_FRACTION * self.pixel_fd_flat


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
        pixel_fd_real=pixel_fd_real, pixel_fd_flat=pixel_fd_flat, pixel_components=PIXEL_COMPONENTS,
    )


def judge_folder() -> Path:
    """Where the judge lives: $COURSE_JUDGE as the process started with it, else ``judge/``."""
    value = initial_environ("COURSE_JUDGE")
    return Path(value).expanduser().resolve() if value else COURSE_ROOT / "judge"


def initial_environ(name: str) -> str | None:
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
