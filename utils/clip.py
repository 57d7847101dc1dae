"""A small CLIP (Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
Supervision") for 16x16 FashionMNIST, trained by the course itself (notebook 05), and text-to-image
sampling on top of classifier-free guidance.

Two encoders map an image and a caption to vectors of the same size ``embed_dim``, each normalised
to unit length, so the dot product of an image vector and a text vector is their cosine similarity.
Training pulls each image towards the captions of the batch that describe it and away from the
others with a symmetric cross-entropy over the cosine similarities, scaled by a learned inverse
temperature (CLIP's ``logit_scale``, stored as a logarithm and capped at log 100, as in the paper).

Public API (notebook 06 reuses it):

- ``CLIPConfig``, ``CLIP`` (``encode_image``, ``encode_text``, ``logit_scale``), ``ImageEncoder``,
  ``TextEncoder``;
- ``similarity``, ``contrastive_loss``, ``clip_loss``, ``zero_shot_classify``, ``text_to_image``;
- ``CLIP_CHECKPOINT``/``UNET_CHECKPOINT`` (run names for ``utils.training.checkpoint_path``) and
  ``load_clip``;
- the optional pretrained model: ``load_open_clip`` and ``open_clip_similarity`` (needs the
  ``clip`` extra, ``pip install -e ".[clip]"``, and a network connection for the weights).

Captions and the tokenizer are in ``utils.captions``. Shapes: images [N, 1, H, W] in [-1, 1],
tokens [N, L] long (0 = padding), embeddings [N, D].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .captions import Tokenizer, caption_vocabulary
from .ddpm_utils import DDPM, SampleTrace
from .guidance import guided_sample

# Run names for utils.training.checkpoint_path(name, profile): checkpoints/<name>-<profile>.pt
CLIP_CHECKPOINT = "05_CLIP-clip"
UNET_CHECKPOINT = "05_CLIP-text_unet"
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP caps the inverse temperature at 100


@dataclass(frozen=True)
class CLIPConfig:
    """Sizes of the small CLIP.

    Attributes:
        vocab_size: number of token ids, padding included (``len(tokenizer)``).
        context_length: tokens per text (``tokenizer.context_length``).
        embed_dim: size D of the shared embedding space.
        width: size of the text encoder's token vectors; heads: its attention heads.
        channels: channels of the image encoder's three convolution stages.
        img_ch, img_size: image channels and side (divisible by 4).
        temperature: initial temperature (CLIP: 0.07, i.e. logit_scale = log(1 / 0.07)), at least
            0.01: training caps the inverse temperature at 100 (``MAX_LOGIT_SCALE``).
    """

    vocab_size: int
    context_length: int = 12
    embed_dim: int = 32
    width: int = 64
    heads: int = 4
    channels: tuple[int, int, int] = (16, 32, 64)
    img_ch: int = 1
    img_size: int = 16
    temperature: float = 0.07

    def __post_init__(self):
        if not self.temperature >= 1 / 100:  # also refuses NaN
            raise ValueError(f"temperature must be at least 0.01, got {self.temperature}: training caps the "
                             f"inverse temperature at 100 (logit_scale at log 100), and a logit_scale that starts "
                             f"above the cap gets no gradient; start at CLIP's 0.07 and let training lower it")


class ImageEncoder(nn.Module):
    """Three conv stages (the last two halve the size), then an MLP: [N, C, S, S] -> [N, embed_dim]."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        c1, c2, c3 = config.channels
        if config.img_size % 4:
            raise ValueError(f"img_size must be divisible by 4, got {config.img_size}")
        side = config.img_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(config.img_ch, c1, 3, padding=1), nn.GroupNorm(8, c1), nn.GELU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.GroupNorm(8, c2), nn.GELU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.GroupNorm(8, c3), nn.GELU(),
            nn.Flatten(),
            nn.Linear(c3 * side * side, 2 * config.width), nn.GELU(),
            nn.Linear(2 * config.width, config.embed_dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class TextEncoder(nn.Module):
    """Token and position embeddings, one Transformer layer, mean over the words, a projection.

    tokens [N, L] (0 = padding, at least one word per row) -> [N, embed_dim]. Padding is masked out
    of the attention and of the mean, so a caption's vector does not depend on how much padding
    follows it.
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Parameter(torch.zeros(config.context_length, config.width))
        nn.init.normal_(self.position_embedding, std=0.02)
        self.layer = nn.TransformerEncoderLayer(config.width, config.heads, dim_feedforward=2 * config.width,
                                                dropout=0.0, activation="gelu", batch_first=True,
                                                norm_first=True)
        self.norm = nn.LayerNorm(config.width)
        self.proj = nn.Linear(config.width, config.embed_dim, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.position_embedding.shape[0]:
            raise ValueError(f"tokens must be [N, L] with L <= {self.position_embedding.shape[0]}, "
                             f"got {list(tokens.shape)}; encode texts with the course's Tokenizer")
        words = tokens != 0                                            # [N, L]
        if not bool(words.any(dim=1).all()):
            raise ValueError("every text needs at least one word (a row of tokens is all padding)")
        x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]
        x = self.layer(x, src_key_padding_mask=~words)
        x = self.norm(x)
        weights = words.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1)                 # mean over the real words
        return self.proj(pooled)


class CLIP(nn.Module):
    """Image and text encoders into one space of unit vectors, and a learned temperature.

    ``encode_image(images [N, C, S, S]) -> [N, D]`` and ``encode_text(tokens [N, L]) -> [N, D]`` return
    unit vectors. ``logit_scale`` is log(1 / temperature), a learned scalar: similarities are
    multiplied by ``logit_scale.exp()`` before the softmax. ``forward(images, tokens)`` returns both
    embeddings.
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.image_encoder = ImageEncoder(config)
        self.text_encoder = TextEncoder(config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / config.temperature)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_encoder(tokens), dim=-1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_text(tokens)


def similarity(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every image with every text: [N, D], [M, D] -> [N, M] in [-1, 1].

    Row i, column j is cos(image_i, text_j); the inputs need not be unit vectors.
    """
    if image_emb.dim() != 2 or text_emb.dim() != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D] with the same D, got {list(image_emb.shape)} "
                         f"and {list(text_emb.shape)}")
    return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                     positives: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over a batch of N matching (image, text) pairs.

    logits = exp(logit_scale) * cos(image_i, text_j), [N, N]. The image loss is the cross-entropy of
    each row (which text belongs to image i?), the text loss that of each column (which image belongs
    to text j?); the result is their mean (Radford et al. 2021, fig. 3). CLIP's targets are the
    diagonal. Here every caption of the batch that is true of an image counts as a right answer for it
    (``positives``), with equal shares of the row's target, and likewise every image a caption is true
    of for the column, so that "a coat" is not pushed away from the other coats of the batch.

    Args:
        image_emb, text_emb: [N, D]; row i of each is one pair (normalised here).
        logit_scale: log of the inverse temperature, a scalar tensor.
        positives: bool [N, N], ``positives[i, j]`` when caption j describes image i (the diagonal
            must be True; ``utils.captions.describes`` computes it); None: the diagonal only.

    Returns:
        The scalar loss in nats (log N for an untrained model whose similarities are all equal).

    Raises:
        ValueError: ``logit_scale`` is above log 100 (CLIP's cap) or not finite: most likely the scale
            ``exp(logit_scale)`` passed in place of its log (exp of it overflows to NaN losses).
    """
    value = float(logit_scale.detach())
    if not value <= MAX_LOGIT_SCALE + 1e-4:
        raise ValueError(f"logit_scale must be the log of the inverse temperature, at most log 100 = "
                         f"{MAX_LOGIT_SCALE:.4f} (CLIP's cap), got {value:.4g}: pass model.logit_scale clamped at "
                         f"MAX_LOGIT_SCALE (as clip_loss does), not the scale logit_scale.exp()")
    logits = logit_scale.exp() * similarity(image_emb, text_emb)
    n = logits.shape[0]
    if logits.shape != (n, n):
        raise ValueError(f"need as many texts as images, got {list(logits.shape)}")
    if positives is None:
        positives = torch.eye(n, dtype=torch.bool, device=logits.device)
    if positives.shape != (n, n) or not bool(positives.diagonal().all()):
        raise ValueError(f"positives must be [{n}, {n}] with a True diagonal (each caption describes its "
                         f"own image), got shape {list(positives.shape)}")
    positives = positives.to(logits.dtype)
    image_targets = positives / positives.sum(dim=1, keepdim=True)      # row i: the captions of image i
    text_targets = positives.T / positives.T.sum(dim=1, keepdim=True)   # row j: the images of caption j
    loss_images = F.cross_entropy(logits, image_targets)   # softmax over the texts, for each image
    loss_texts = F.cross_entropy(logits.T, text_targets)   # softmax over the images, for each text
    return (loss_images + loss_texts) / 2


def clip_loss(model: CLIP, images: torch.Tensor, tokens: torch.Tensor,
              positives: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss of ``model`` on a batch of pairs: images [N, C, S, S], tokens [N, L]."""
    image_emb, text_emb = model(images, tokens)
    return contrastive_loss(image_emb, text_emb, model.logit_scale.clamp(max=MAX_LOGIT_SCALE), positives)


def zero_shot_classify(model: CLIP, images: torch.Tensor,
                       class_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classify images by the most similar of K class prompts, with no classifier trained.

    Args:
        model: has ``encode_image``, ``encode_text`` and ``logit_scale``.
        images: [N, C, S, S]. class_tokens: [K, L], one prompt per class ("a photo of a coat").

    Returns:
        (probabilities [N, K], each row a softmax over the classes of the similarities scaled as in
         training, by exp(logit_scale) capped at 100; predicted class [N]).
    """
    scale = model.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()  # the scale clip_loss trains with
    logits = scale * similarity(model.encode_image(images), model.encode_text(class_tokens))
    probs = logits.softmax(dim=1)
    return probs, probs.argmax(dim=1)


def text_to_image(ddpm: DDPM, unet: nn.Module, model: CLIP, tokenizer: Tokenizer, prompts: list[str],
                  w: float | torch.Tensor, image_shape: tuple[int, int, int] = (1, 16, 16), *,
                  generator: torch.Generator | None = None, n_frames: int = 10,
                  progress: bool = False) -> SampleTrace:
    """One image per prompt from a U-Net conditioned on CLIP text embeddings, with guidance w.

    The prompts are tokenized (``UnknownWordError`` names any word the tokenizer does not know),
    embedded by the frozen CLIP text encoder into unit vectors [N, D], and passed as the context of
    ``utils.guidance.guided_sample``: the unconditional branch sees the whole vector masked to zero.

    Args:
        ddpm: the schedule; its device is the samples' device. unet: ``unet(x_t, t, c, c_mask)``.
        model: the CLIP whose text embeddings the U-Net was trained on. prompts: N texts.
        w: guidance weight, one number or one per prompt ([N]).
        generator, n_frames, progress: as in ``DDPM.sample``.

    Returns:
        A SampleTrace: images [N, *image_shape], frames [K, N, *image_shape].
    """
    device = ddpm.betas.device
    tokens = tokenizer(prompts).to(device)
    with torch.no_grad():
        c = model.encode_text(tokens)
    return guided_sample(ddpm, unet, c, w, image_shape, generator=generator, n_frames=n_frames,
                         progress=progress)


def default_config(tokenizer: Tokenizer | None = None) -> CLIPConfig:
    """The notebook's CLIP sizes for ``tokenizer`` (default: the course's caption vocabulary)."""
    tokenizer = tokenizer or Tokenizer(caption_vocabulary())
    return CLIPConfig(vocab_size=len(tokenizer), context_length=tokenizer.context_length)


def load_clip(path: Path | str, config: CLIPConfig | None = None,
              device: torch.device | str = "cpu") -> CLIP:
    """A CLIP with the weights of a checkpoint written by ``train`` (notebook 05), in eval mode.

    Args:
        path: e.g. ``checkpoint_path(CLIP_CHECKPOINT, profile)``.
        config: the sizes it was trained with (default: ``default_config()``, the notebook's).

    Raises:
        FileNotFoundError: no checkpoint there; run notebook 05's training cell first.
    """
    from .training import load_checkpoint

    model = CLIP(config or default_config())
    if load_checkpoint(model, path) is None:
        raise FileNotFoundError(f"no CLIP checkpoint at {path}; run the CLIP training cell of notebook "
                                f"05_CLIP in the same profile first")
    return model.to(device).eval()


# -- the pretrained CLIP, through the optional open_clip package ---------------------------------
def load_open_clip(name: str = "ViT-B-32", pretrained: str | None = "openai", timeout: float = 3.0,
                   **options):
    """A pretrained CLIP from the ``open_clip`` package, or the reason it cannot be had.

    Args:
        name: an open_clip model name. pretrained: a weight tag, or None for random weights (tests).
        timeout: seconds to wait for the weights' server before giving up.
        options: passed on to ``open_clip.create_model_and_transforms`` (``force_image_size=64``...).

    Returns:
        (model, preprocess, tokenizer) in eval mode, or a one-line string saying why not (the
        package is not installed, or the machine is offline and the weights are not cached).
    """
    try:
        import open_clip
    except ImportError:
        return "open_clip is not installed (pip install -e \".[clip]\" adds it)"
    if pretrained is not None and not _weights_reachable(open_clip, name, pretrained, timeout):
        return f"the pretrained weights of {name} ({pretrained}) are not cached and their server is unreachable"
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, **options)
    except Exception as error:  # a download that breaks off, a cache that is corrupt
        return f"could not load {name} ({pretrained}): {type(error).__name__}: {error}"
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def _weights_reachable(open_clip, name: str, pretrained: str, timeout: float) -> bool:
    """True if the weights are in the local cache or their server answers within ``timeout``."""
    import socket
    from urllib.parse import urlparse

    try:
        cfg = open_clip.get_pretrained_cfg(name, pretrained)
    except Exception:
        cfg = {}
    hub = cfg.get("hf_hub", "") if cfg else ""
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache

            repo = hub.rstrip("/")
            for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
                if isinstance(try_to_load_from_cache(repo, filename), str):
                    return True
        except Exception:
            pass
        host = "huggingface.co"
    else:
        host = urlparse(cfg.get("url", "")).hostname if cfg else None
        if not host:
            return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def open_clip_similarity(model, preprocess, tokenizer, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """Cosine similarities of a pretrained open_clip model: images [N, 1, S, S] in [-1, 1] -> [N, P].

    Each course image is turned into the RGB picture the model expects (grey copied to three
    channels) and passed through the model's own ``preprocess`` (resize to 224, normalise); the
    prompts go through its own tokenizer. Row i, column j is cos(image_i, prompt_j), as ``similarity``.
    """
    from torchvision.transforms.functional import to_pil_image

    device = next(model.parameters()).device
    pictures = [to_pil_image(((img.detach().cpu().float().clamp(-1, 1) + 1) / 2).expand(3, -1, -1))
                for img in images]
    batch = torch.stack([preprocess(p) for p in pictures]).to(device)
    with torch.no_grad():
        image_emb = model.encode_image(batch)
        text_emb = model.encode_text(tokenizer(prompts).to(device))
    return similarity(image_emb.float(), text_emb.float()).cpu()
