"""Captions, the tokenizer and the small CLIP of notebook 05 (utils.captions, utils.clip)."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from utils.captions import (ATTRIBUTE_WORDS, SYNONYMS, Tokenizer, UnknownWordError, attribute_words, caption,
                            caption_vocabulary, class_prompts, describes, fit_thresholds, make_captions,
                            measure_attributes, split_words, word_bits)
from utils.clip import (CLIP, CLIPConfig, MAX_LOGIT_SCALE, clip_loss, contrastive_loss, default_config, load_clip,
                        load_open_clip, open_clip_similarity, similarity, text_to_image, zero_shot_classify)
from utils.ddpm_utils import DDPM
from utils.grading import wave_input
from utils.guidance import guided_sample
from utils.training import train


def garment(pixels: int, intensity: float, side: int = 16) -> torch.Tensor:
    """A [1, side, side] image in [-1, 1]: the first ``pixels`` pixels at ``intensity`` (0..1), the rest black."""
    x = torch.zeros(side * side)
    x[:pixels] = intensity
    return (x * 2 - 1).reshape(1, side, side)


# -- attributes and captions -------------------------------------------------------------------
def test_measure_attributes_brightness_and_size():
    images = torch.stack([garment(64, 0.5), garment(128, 1.0), garment(0, 0.0), garment(256, 0.05)])
    brightness, size = measure_attributes(images)
    assert brightness.tolist() == pytest.approx([0.5, 1.0, 0.0, 0.0], abs=1e-6)  # 0.05 is below the garment threshold
    assert size.tolist() == pytest.approx([0.25, 0.5, 0.0, 0.0])


def test_thresholds_are_per_class_thirds_and_words_follow_them():
    # class 0: brightness 0.2 .. 0.9 over 8 images; class 1: all large and bright
    images = torch.stack([garment(20 + 10 * i, 0.2 + 0.1 * i) for i in range(8)] + [garment(200, 0.9)] * 4)
    labels = torch.tensor([0] * 8 + [1] * 4)
    th = fit_thresholds(images, labels, n_classes=3)
    brightness, size = measure_attributes(images[:8])
    assert float(th.dark[0]) == pytest.approx(float(torch.quantile(brightness, 1 / 3)))
    assert float(th.large[0]) == pytest.approx(float(torch.quantile(size, 2 / 3)))
    assert float(th.dark[2]) == pytest.approx(float(torch.quantile(measure_attributes(images)[0], 1 / 3)))  # no images
    words = attribute_words(images[:8], labels[:8], th)
    assert words[0] == ("dark", "small") and words[-1] == ("light", "large")
    assert sum(1 for w in words if "dark" in w) == sum(1 for w in words if "light" in w) == 3


def test_captions_name_the_class_use_the_words_and_are_repeatable():
    labels = torch.arange(10).repeat(20)
    words = [("dark", "large")] * len(labels)
    first = make_captions(labels, words, generator=torch.Generator().manual_seed(1), keep_prob=1.0)
    again = make_captions(labels, words, generator=torch.Generator().manual_seed(1), keep_prob=1.0)
    assert first == again
    vocabulary = set(caption_vocabulary())
    for cap, k in zip(first, labels.tolist()):
        assert cap.label == k and set(cap.words) == {"dark", "large"}
        text = cap.text
        assert any(name in text for name in SYNONYMS[k]), text
        assert "dark" in split_words(text) and "large" in split_words(text)
        assert set(split_words(text)) <= vocabulary
        assert " a ankle" not in f" {text}" and not text.startswith("a ankle")
    assert len({c.text for c in first}) > 40  # templates, synonyms and word order vary
    bare = caption(9, ("dark",), generator=torch.Generator().manual_seed(0), keep_prob=0.0)
    assert bare.words == () and "dark" not in bare.text


def test_article_agrees_with_the_next_word():
    texts = {caption(9, (), generator=torch.Generator().manual_seed(s)).text for s in range(40)}
    assert any("an ankle boot" in t for t in texts)
    assert not any(t.startswith("a ankle") or " a ankle" in t for t in texts)
    assert class_prompts()[9] == "a photo of an ankle boot" and class_prompts()[4] == "a photo of a coat"
    assert class_prompts()[1] == "a photo of trousers"  # a plural takes no article
    assert {caption(1, ("dark",), generator=torch.Generator().manual_seed(s), keep_prob=1.0).text
            for s in range(30)} >= {"dark trousers", "a photo of dark pants"}


def test_describes_marks_the_captions_true_of_each_image():
    bits = word_bits([("dark", "small"), ("light",), (), ("dark",)])
    assert bits.tolist() == [1 | 4, 2, 0, 1]
    labels = torch.tensor([4, 4, 4, 7])
    image_bits = word_bits([("dark", "small"), ("light", "large"), (), ("dark",)])
    caption_bits = word_bits([("dark",), (), ("light",), ("dark",)])
    got = describes(labels, image_bits, labels, caption_bits)
    want = [[True, True, False, False],    # a dark small coat: "a dark coat" and "a coat" are true of it
            [False, True, True, False],    # a light large coat: "a coat" and "a light coat"
            [False, True, False, False],   # a plain coat: only "a coat"
            [False, False, False, True]]   # the dark sneaker: only its own
    assert got.tolist() == want
    assert ATTRIBUTE_WORDS == ("dark", "light", "small", "large")


# -- tokenizer ---------------------------------------------------------------------------------
def test_tokenizer_encodes_pads_and_decodes():
    tok = Tokenizer(caption_vocabulary(), context_length=8)
    ids = tok(["a dark coat", "A large pullover, light"])
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    assert (ids[0, 3:] == 0).all() and (ids[0, :3] != 0).all()
    assert tok.decode(ids) == ["a dark coat", "a large pullover, light"]
    assert tok.vocabulary[0] == Tokenizer.PAD and len(tok) == len(caption_vocabulary()) + 1
    assert torch.equal(tok("t-shirt"), tok(["t-shirt"]))


def test_unknown_words_are_named_never_dropped():
    tok = Tokenizer(caption_vocabulary())
    with pytest.raises(UnknownWordError) as error:
        tok(["a purple coat", "a shiny boot!", "a purple bag"])
    assert error.value.words == ["purple", "shiny", "!"]
    assert "'purple'" in str(error.value) and "'shiny'" in str(error.value) and "coat" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_tokenizer_rejects_empty_and_too_long_texts():
    tok = Tokenizer(caption_vocabulary(), context_length=4)
    with pytest.raises(ValueError, match="empty"):
        tok(["   "])
    with pytest.raises(ValueError, match="shorten"):
        tok(["a photo of a dark coat"])
    with pytest.raises(ValueError):
        Tokenizer([])


# -- the model ---------------------------------------------------------------------------------
def small_clip(seed=0):
    torch.manual_seed(seed)
    tok = Tokenizer(caption_vocabulary())
    return CLIP(CLIPConfig(vocab_size=len(tok), context_length=tok.context_length, embed_dim=8, width=16,
                           heads=2, channels=(8, 8, 16))), tok


def test_encoders_give_unit_vectors_of_one_size_and_the_clip_temperature():
    model, tok = small_clip()
    model.eval()
    images, tokens = wave_input((3, 1, 16, 16)), tok(["a dark coat", "a bag", "trainer, small"])
    image_emb, text_emb = model(images, tokens)
    assert image_emb.shape == text_emb.shape == (3, 8)
    assert torch.allclose(image_emb.norm(dim=1), torch.ones(3)) and torch.allclose(text_emb.norm(dim=1), torch.ones(3))
    assert float(model.logit_scale.detach().exp()) == pytest.approx(1 / 0.07)
    # a caption's vector does not depend on the other captions of its batch (padding is masked)
    alone = model.encode_text(tok(["a bag"]))
    assert torch.allclose(alone, text_emb[1:2], atol=1e-5)
    with pytest.raises(ValueError, match="at least one word"):
        model.encode_text(torch.zeros(1, tok.context_length, dtype=torch.long))


def test_default_config_matches_the_tokenizer():
    tok = Tokenizer(caption_vocabulary(), context_length=10)
    config = default_config(tok)
    assert config.vocab_size == len(tok) and config.context_length == 10


# -- similarity, loss, zero-shot ---------------------------------------------------------------
def test_similarity_is_the_cosine_matrix():
    s = similarity(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, -3.0], [2.0, 0.0]]))
    r = 1 / math.sqrt(2)
    assert s.tolist() == [pytest.approx([r, 0.0, 1.0]), pytest.approx([r, -1.0, 0.0])]
    with pytest.raises(ValueError):
        similarity(torch.ones(2, 3), torch.ones(2, 4))


def test_contrastive_loss_hand_worked_values():
    images, texts, scale = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.6, 0.8]]), torch.tensor(10.0).log()
    # logits [[10, 6], [0, 8]]: rows log(1+e^-4), log(1+e^-8); columns log(1+e^-10), log(1+e^-2)
    rows = (math.log1p(math.exp(-4)) + math.log1p(math.exp(-8))) / 2
    cols = (math.log1p(math.exp(-10)) + math.log1p(math.exp(-2))) / 2
    assert float(contrastive_loss(images, texts, scale)) == pytest.approx((rows + cols) / 2, rel=1e-5)
    # caption 1 also describes image 0: row 0 target [1/2, 1/2], column 1 target [1/2, 1/2]
    both = torch.tensor([[True, True], [False, True]])
    row0 = math.log(math.exp(10) + math.exp(6)) - 8
    col1 = math.log(math.exp(6) + math.exp(8)) - 7
    want = ((row0 + math.log1p(math.exp(-8))) / 2 + (math.log1p(math.exp(-10)) + col1) / 2) / 2
    assert float(contrastive_loss(images, texts, scale, both)) == pytest.approx(want, rel=1e-5)
    assert want == pytest.approx(0.786365, abs=1e-6)


def test_contrastive_loss_with_diagonal_positives_is_clips():
    i, t, scale = wave_input((6, 5), seed=1), wave_input((6, 5), seed=2), torch.tensor(2.0)
    logits = scale.exp() * F.normalize(i, dim=1) @ F.normalize(t, dim=1).T
    labels = torch.arange(6)
    clip_paper = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert float(contrastive_loss(i, t, scale)) == pytest.approx(float(clip_paper), rel=1e-6)
    assert float(contrastive_loss(torch.ones(4, 3), torch.ones(4, 3), scale)) == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="diagonal"):
        contrastive_loss(i, t, scale, torch.zeros(6, 6, dtype=torch.bool))


def test_zero_shot_picks_the_most_similar_prompt():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))

        def encode_image(self, images):
            return F.normalize(images.flatten(1)[:, :3], dim=-1)

        def encode_text(self, tokens):
            return torch.eye(3)[: tokens.shape[0]]

    images = torch.zeros(2, 1, 16, 16)
    images[0, 0, 0, 2], images[1, 0, 0, 0] = 1.0, 1.0
    probs, predicted = zero_shot_classify(Fixed(), images, torch.ones(3, 4, dtype=torch.long))
    assert predicted.tolist() == [2, 0]
    assert torch.allclose(probs.sum(1), torch.ones(2))
    assert float(probs[0, 2]) == pytest.approx(math.exp(10) / (math.exp(10) + 2))


def test_temperature_below_the_cap_is_refused_at_once():
    """openai/CLIP#46: below 0.01 logit_scale starts above its cap, frozen there with no gradient; 0 divided by zero."""
    vocab = len(Tokenizer(caption_vocabulary()))
    for temperature in (0.005, 0.0, -0.07, float("nan")):
        with pytest.raises(ValueError, match="temperature must be at least 0.01"):
            CLIP(CLIPConfig(vocab_size=vocab, temperature=temperature))
    at_cap = CLIP(CLIPConfig(vocab_size=vocab, temperature=0.01))
    assert float(at_cap.logit_scale) == pytest.approx(MAX_LOGIT_SCALE)


def test_zero_shot_uses_the_scale_training_uses():
    """A logit_scale beyond the cap (loaded, or pushed there by an optimiser) is capped at 100 as clip_loss caps it."""
    class Fixed(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(scale)))

        def encode_image(self, images):
            return F.normalize(images.flatten(1)[:, :3], dim=-1)

        def encode_text(self, tokens):
            return torch.eye(3)[: tokens.shape[0]]

    images = torch.zeros(1, 1, 16, 16)
    images[0, 0, 0, :3] = torch.tensor([1.0, 0.99, 0.0])
    tokens = torch.ones(3, 4, dtype=torch.long)
    beyond, _ = zero_shot_classify(Fixed(1000.0), images, tokens)
    capped, _ = zero_shot_classify(Fixed(100.0), images, tokens)
    assert torch.allclose(beyond, capped)
    cos = F.normalize(torch.tensor([1.0, 0.99, 0.0]), dim=0)
    assert torch.allclose(beyond[0], (100 * cos).softmax(0), atol=1e-6)


def test_contrastive_loss_refuses_the_scale_in_place_of_its_log():
    """BAAI-DCAI/M3D#52: exp(100) overflows and the loss is NaN; a scale of 14.3 (1 / 0.07) trains far too sharp."""
    i, t = wave_input((4, 5), seed=1), wave_input((4, 5), seed=2)
    for scale in (100.0, 1 / 0.07, float("nan")):
        with pytest.raises(ValueError, match=r"log of the inverse temperature.*not the scale logit_scale.exp\(\)"):
            contrastive_loss(i, t, torch.tensor(scale))
    capped = torch.tensor(100.0).log()  # a float32 log 100, as clamp(max=MAX_LOGIT_SCALE) gives it
    assert torch.isfinite(contrastive_loss(i, t, capped))
    assert torch.isfinite(contrastive_loss(i, t, torch.tensor(MAX_LOGIT_SCALE + 1.0).clamp(max=MAX_LOGIT_SCALE)))


# -- training and sampling ---------------------------------------------------------------------
def test_a_few_training_steps_lower_the_loss_and_the_checkpoint_reloads(tmp_path):
    model, tok = small_clip(seed=3)
    captions = ["a dark coat", "a bag", "a photo of a sneaker", "trousers"] * 4
    images = torch.stack([garment(40 + 40 * (i % 4), 0.3 + 0.2 * (i % 4)) for i in range(16)])
    tokens = tok(captions)
    with torch.no_grad():
        before = float(clip_loss(model, images, tokens))
    path = tmp_path / "clip.pt"
    history = train(model, lambda m, batch: clip_loss(m, *batch), [(images, tokens)] * 30, epochs=1, lr=3e-3,
                    checkpoint=path, progress=False)
    assert history.losses[-1] < 0.7 * before
    assert float(model.logit_scale) <= MAX_LOGIT_SCALE + 1
    again = load_clip(path, model.config)
    assert torch.allclose(again.encode_text(tokens), model.eval().encode_text(tokens), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="05_CLIP"):
        load_clip(tmp_path / "missing.pt", model.config)


class Shift(torch.nn.Module):
    """A stand-in U-Net: e = 0.5 x_t + (c * c_mask) . v."""

    def __init__(self, dim):
        super().__init__()
        self.register_buffer("v", torch.linspace(-1, 1, dim))

    def forward(self, x_t, t, c, c_mask):
        return 0.5 * x_t + ((c * c_mask) @ self.v).reshape(-1, 1, 1, 1)


def test_text_to_image_is_guided_sampling_on_the_text_embedding():
    model, tok = small_clip(seed=4)
    model.eval()
    ddpm, unet, prompts = DDPM(5), Shift(8), ["a dark coat", "a large bag"]
    got = text_to_image(ddpm, unet, model, tok, prompts, 2.0, (1, 4, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        c = model.encode_text(tok(prompts))
    want = guided_sample(ddpm, unet, c, 2.0, (1, 4, 4), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(got.images, want.images) and got.frames.shape == want.frames.shape
    with pytest.raises(UnknownWordError, match="purple"):
        text_to_image(ddpm, unet, model, tok, ["a purple coat"], 2.0, (1, 4, 4))


# -- the pretrained model through open_clip (wiring only: random weights, no download) -----------
TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    open_clip = pytest.importorskip("open_clip", reason="the optional clip extra is not installed")
    path = tmp_path_factory.mktemp("open_clip") / "course-tiny-clip.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    loaded = load_open_clip("course-tiny-clip", pretrained=None)
    assert not isinstance(loaded, str), loaded
    return loaded


def test_open_clip_similarity_wiring(tiny_open_clip):
    from torchvision.transforms.functional import to_pil_image

    model, preprocess, tokenizer = tiny_open_clip
    images = wave_input((3, 1, 16, 16), seed=5)
    prompts = ["a photo of a coat", "a bag"]
    got = open_clip_similarity(model, preprocess, tokenizer, images, prompts)
    assert got.shape == (3, 2)
    # by hand: each image as an RGB picture through the model's own preprocessing
    batch = torch.stack([preprocess(to_pil_image(((img + 1) / 2).expand(3, -1, -1))) for img in images])
    assert batch.shape == (3, 3, 32, 32)
    with torch.no_grad():
        want = F.normalize(model.encode_image(batch), dim=-1) @ F.normalize(model.encode_text(tokenizer(prompts)), dim=-1).T
    assert torch.allclose(got, want, atol=1e-5)
    # rows follow the images and columns the prompts
    swapped = open_clip_similarity(model, preprocess, tokenizer, images.flip(0), prompts[::-1])
    assert torch.allclose(swapped, got.flip(0).flip(1), atol=1e-5)


def test_open_clip_offline_says_why_in_one_line(monkeypatch):
    pytest.importorskip("open_clip", reason="the optional clip extra is not installed")
    import socket

    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    reason = load_open_clip("ViT-B-32", "openai", timeout=0.1)
    assert isinstance(reason, str) and "\n" not in reason and "unreachable" in reason


def test_open_clip_missing_package_is_reported(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_open_clip(name, *args, **kwargs):
        if name == "open_clip":
            raise ImportError("No module named 'open_clip'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_open_clip)
    reason = load_open_clip()
    assert isinstance(reason, str) and "clip" in reason and "install" in reason
