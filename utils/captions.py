"""Captions for FashionMNIST images and a word-level tokenizer (notebook 05).

FashionMNIST has labels, not captions. A caption is built from two sources:

- the class name, or one of its synonyms (``SYNONYMS``: "trousers" or "pants", "sneaker" or
  "trainer", ...);
- attributes measured from the image's own pixels (``measure_attributes``): its *brightness*
  (mean intensity of the garment's pixels) and its *size* (the share of the frame the garment
  fills). ``fit_thresholds`` takes the thresholds from the data: per class, the lowest third of
  brightness is "dark" and the highest "light", the lowest third of size "small" and the highest
  "large". Thresholds are per class, so "a small coat" is small *for a coat* and the attribute words
  carry information that the class name does not.

``make_captions`` puts them through a few templates ("a photo of a dark ankle boot", "a large
pullover, light"); ``describes`` says which captions are true of which images (a batch's positives
for the contrastive loss). The vocabulary is data: ``caption_vocabulary()`` lists every word the templates
can produce, and ``Tokenizer`` maps words to integers. A word outside the vocabulary raises
``UnknownWordError``, which names it: nothing is dropped silently.

Images are [N, 1, H, W] in [-1, 1], as everywhere in the course.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

# One tuple per FashionMNIST class, in label order; the first name is the one used in prompts.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("t-shirt", "top", "tee"),
    ("trousers", "pants"),
    ("pullover", "sweater", "jumper"),
    ("dress", "frock"),
    ("coat", "jacket"),
    ("sandal", "slipper"),
    ("shirt", "blouse"),
    ("sneaker", "trainer"),
    ("bag", "handbag"),
    ("ankle boot", "boot"),
)
BRIGHTNESS_WORDS = ("dark", "light")
SIZE_WORDS = ("small", "large")
# {a} is the article ("a" or "an", chosen from the next word), {pre} the words before the noun,
# {post} the words after it (", light" or ", dark and large").
TEMPLATES = (
    "{a} {pre}{noun}{post}",
    "a photo of {a} {pre}{noun}{post}",
    "a picture of {a} {pre}{noun}{post}",
    "{pre}{noun}{post}",
)
# A pixel belongs to the garment when its intensity (in [0, 1]) exceeds this.
FOREGROUND = 0.1


# Nouns that take no article ("a photo of trousers").
PLURALS = frozenset({"trousers", "pants"})


def class_prompts(template: str = "a photo of {a} {noun}") -> list[str]:
    """One prompt per class, with each class's first name: ["a photo of a t-shirt", ...]."""
    return [_fill(template, names[0], (), ()) for names in SYNONYMS]


def article(word: str, noun: str | None = None) -> str:
    """The article before ``word``: "an" before a vowel, else "a"; none for a plural ``noun``."""
    if (noun or word) in PLURALS:
        return ""
    return "an" if word[:1] in "aeiou" else "a"


def _fill(template: str, noun: str, before: Sequence[str], after: Sequence[str]) -> str:
    """A template filled in, with single spaces ("a photo of an ankle boot", "dark trousers, small")."""
    pre = "".join(f"{w} " for w in before)
    post = (", " + " and ".join(after)) if after else ""
    text = template.format(a=article(before[0] if before else noun, noun), pre=pre, noun=noun, post=post)
    return " ".join(text.split()).replace(" ,", ",")


def measure_attributes(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Brightness and size of each garment.

    Args:
        images: [N, 1, H, W] in [-1, 1].

    Returns:
        (brightness [N], size [N]): brightness is the mean intensity in [0, 1] of the pixels brighter
        than ``FOREGROUND`` (0 for an empty image); size is the share of such pixels, in [0, 1].
    """
    if images.dim() != 4:
        raise ValueError(f"expected images of shape [N, C, H, W], got {list(images.shape)}")
    x = (images.detach().float() + 1) / 2
    garment = (x > FOREGROUND).float()
    pixels = garment.sum(dim=(1, 2, 3))
    brightness = (x * garment).sum(dim=(1, 2, 3)) / pixels.clamp_min(1)
    size = pixels / garment[0].numel()
    return brightness, size


@dataclass(frozen=True)
class AttributeThresholds:
    """Per-class cut points, each [n_classes]: below ``dark`` is dark, above ``light`` is light, etc."""

    dark: torch.Tensor
    light: torch.Tensor
    small: torch.Tensor
    large: torch.Tensor


def fit_thresholds(images: torch.Tensor, labels: torch.Tensor, n_classes: int = len(SYNONYMS),
                   share: float = 1 / 3) -> AttributeThresholds:
    """Thresholds from the data: per class, the ``share`` and ``1 - share`` quantiles.

    Args:
        images: [N, 1, H, W] in [-1, 1]. labels: [N] class indices.
        share: the share of each class that gets each word (a third is dark, a third light, ...).

    A class with fewer than 3 images falls back to the quantiles of all images.
    """
    if not 0 < share < 0.5:
        raise ValueError(f"share must lie in (0, 0.5), got {share}")
    brightness, size = measure_attributes(images)
    labels = labels.to(brightness.device)
    q = torch.tensor([share, 1 - share])
    cuts = {"brightness": [], "size": []}
    for k in range(n_classes):
        own = labels == k
        for name, values in (("brightness", brightness), ("size", size)):
            pool = values[own] if int(own.sum()) >= 3 else values
            cuts[name].append(torch.quantile(pool.cpu(), q))
    b, s = torch.stack(cuts["brightness"]), torch.stack(cuts["size"])
    return AttributeThresholds(dark=b[:, 0], light=b[:, 1], small=s[:, 0], large=s[:, 1])


def attribute_words(images: torch.Tensor, labels: torch.Tensor,
                    thresholds: AttributeThresholds) -> list[tuple[str, ...]]:
    """The attribute words that hold for each image: () or ("dark",) or ("light", "small"), ...

    Args:
        images: [N, 1, H, W] in [-1, 1]. labels: [N] class indices.
    """
    brightness, size = measure_attributes(images)
    labels = labels.cpu()
    brightness, size = brightness.cpu(), size.cpu()
    words = []
    for i in range(len(labels)):
        k = int(labels[i])
        w = []
        if brightness[i] < thresholds.dark[k]:
            w.append("dark")
        elif brightness[i] > thresholds.light[k]:
            w.append("light")
        if size[i] < thresholds.small[k]:
            w.append("small")
        elif size[i] > thresholds.large[k]:
            w.append("large")
        words.append(tuple(w))
    return words


@dataclass(frozen=True)
class Caption:
    """A caption and what it says: its text, the class it names and the attribute words it uses."""

    text: str
    label: int
    words: tuple[str, ...]


def caption(label: int, words: Sequence[str] = (), *, generator: torch.Generator | None = None,
            keep_prob: float = 0.8) -> Caption:
    """One caption for a garment of class ``label`` with the attribute ``words`` that hold for it.

    The synonym, the template, which attribute words are kept (each with probability ``keep_prob``)
    and whether each goes before or after the noun are drawn with ``generator``.
    """
    def draw(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    names = SYNONYMS[label]
    noun = names[draw(len(names))]
    kept = [w for w in words if float(torch.rand(1, generator=generator)) < keep_prob]
    before, after = [], []
    for w in kept:
        (before if float(torch.rand(1, generator=generator)) < 0.7 else after).append(w)
    template = TEMPLATES[draw(len(TEMPLATES))]
    return Caption(_fill(template, noun, before, after), int(label), tuple(kept))


def make_captions(labels: torch.Tensor, words: Sequence[Sequence[str]], *,
                  generator: torch.Generator | None = None, keep_prob: float = 0.8) -> list[Caption]:
    """One caption per image (see ``caption``): labels [N], words as from ``attribute_words``."""
    if len(labels) != len(words):
        raise ValueError(f"got {len(labels)} labels but {len(words)} lists of attribute words")
    return [caption(int(k), w, generator=generator, keep_prob=keep_prob) for k, w in zip(labels.tolist(), words)]


ATTRIBUTE_WORDS = (*BRIGHTNESS_WORDS, *SIZE_WORDS)


def word_bits(words: Sequence[Sequence[str]]) -> torch.Tensor:
    """Each list of attribute words as one integer, a bit per word of ``ATTRIBUTE_WORDS``: [N] long."""
    bit = {w: 1 << i for i, w in enumerate(ATTRIBUTE_WORDS)}
    return torch.tensor([sum(bit[w] for w in set(ws)) for ws in words], dtype=torch.long)


def describes(image_labels: torch.Tensor, image_bits: torch.Tensor, caption_labels: torch.Tensor,
              caption_bits: torch.Tensor) -> torch.Tensor:
    """Which captions are true of which images: bool [N_images, N_captions].

    Caption j describes image i when it names image i's class and every attribute word it uses holds
    for image i ("a coat" describes every coat, "a dark coat" only the dark ones). Each image's own
    caption describes it, so with one caption per image the diagonal is True.

    Args:
        image_labels: [N] classes. image_bits: [N] the attribute words that hold (``word_bits``).
        caption_labels: [M] classes named. caption_bits: [M] the words used (``word_bits``).
    """
    same_class = image_labels[:, None] == caption_labels[None, :]
    words_hold = (caption_bits[None, :] & ~image_bits[:, None]) == 0
    return same_class & words_hold


def caption_vocabulary() -> list[str]:
    """Every word the captions and class prompts can contain, sorted (the tokenizer's vocabulary)."""
    words = {"a", "an", ",", "and", *BRIGHTNESS_WORDS, *SIZE_WORDS}
    for template in TEMPLATES:
        words.update(split_words(template.format(a="", pre="", noun="", post="")))
    for names in SYNONYMS:
        for name in names:
            words.update(split_words(name))
    return sorted(words)


_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")


def split_words(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words and punctuation marks: "A coat, dark" -> a coat , dark."""
    return _WORD.findall(text.lower())


class UnknownWordError(ValueError):
    """A prompt contains words outside the tokenizer's vocabulary; ``words`` lists them."""

    def __init__(self, words: Sequence[str], vocabulary: Sequence[str]):
        self.words = list(words)
        known = " ".join(repr(w) for w in vocabulary if w != Tokenizer.PAD)
        quoted = ", ".join(repr(w) for w in self.words)
        super().__init__(
            f"unknown word{'s' if len(self.words) > 1 else ''} {quoted}: this model only knows the "
            f"{len(vocabulary) - 1} words it was trained on. Rephrase with these: {known}"
        )


class Tokenizer:
    """Word-level tokenizer: text -> [N, context_length] integer ids, 0 for padding.

    Args:
        vocabulary: the known words (``caption_vocabulary()`` for the course's captions); id 0 is
            the padding token, the words get ids 1.. in the order given.
        context_length: length of every encoded text; longer texts raise ValueError.
    """

    PAD = "<pad>"

    def __init__(self, vocabulary: Sequence[str], context_length: int = 12):
        words = list(dict.fromkeys(vocabulary))
        if self.PAD in words:
            words.remove(self.PAD)
        if not words:
            raise ValueError("the vocabulary is empty")
        if context_length < 1:
            raise ValueError(f"context_length must be at least 1, got {context_length}")
        self.vocabulary = [self.PAD, *words]
        self.ids = {w: i for i, w in enumerate(self.vocabulary)}
        self.context_length = context_length

    def __len__(self) -> int:
        return len(self.vocabulary)

    def unknown_words(self, texts: str | Sequence[str]) -> list[str]:
        """The words of ``texts`` outside the vocabulary, each once, in order of appearance."""
        texts = [texts] if isinstance(texts, str) else texts
        return list(dict.fromkeys(w for t in texts for w in split_words(t) if w not in self.ids))

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids [N, context_length] (long) for one text or a list of N texts.

        Raises:
            UnknownWordError: a text has a word outside the vocabulary (all such words are named).
            ValueError: a text is empty or longer than ``context_length`` words.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        unknown = self.unknown_words(texts)
        if unknown:
            raise UnknownWordError(unknown, self.vocabulary)
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            words = split_words(text)
            if not words:
                raise ValueError(f"text {i} is empty; write a few words, for example {class_prompts()[4]!r}")
            if len(words) > self.context_length:
                raise ValueError(f"text {i} has {len(words)} words, more than the {self.context_length} "
                                 f"this tokenizer takes: {text!r}; shorten it")
            out[i, :len(words)] = torch.tensor([self.ids[w] for w in words])
        return out

    __call__ = encode

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Texts back from ids [N, L] (padding dropped; punctuation re-attached)."""
        texts = []
        for row in ids.tolist():
            words = [self.vocabulary[i] for i in row if i != 0]
            texts.append(" ".join(words).replace(" ,", ","))
        return texts
