"""Plausible wrong answers in notebook 05; each must fail the test cell(s) named in ``fails``."""
from grader.answer_sets.mutants import Mutant

SIM = "return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T"
LOGITS = "logits = logit_scale.exp() * similarity(image_emb, text_emb)"
LOSS_TEXTS = "loss_texts = F.cross_entropy(logits.T, text_targets)"
ZS_PROBS = "probs = (clip_model.logit_scale.exp() * similarity(image_emb, class_emb)).softmax(dim=1)"
GUIDED = ("return guidance.guided_sample(ddpm, unet, c, w, image_shape, generator=generator, n_frames=n_frames,\n"
          "                                  progress=progress)")

MUTANTS = [
    # similarity
    Mutant("similarity without normalisation", "similarity", SIM, "return image_emb @ text_emb.T",
           ("test_similarity",)),
    Mutant("similarity with only the images normalised", "similarity", SIM,
           "return F.normalize(image_emb, dim=-1) @ text_emb.T", ("test_similarity",)),
    Mutant("similarity transposed (texts x images)", "similarity", SIM,
           "return F.normalize(text_emb, dim=-1) @ F.normalize(image_emb, dim=-1).T", ("test_similarity",)),
    Mutant("similarity normalised over the batch axis", "similarity", SIM,
           "return F.normalize(image_emb, dim=0) @ F.normalize(text_emb, dim=0).T", ("test_similarity",)),
    Mutant("similarity as a distance", "similarity", SIM,
           "return torch.cdist(F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1))",
           ("test_similarity",)),
    Mutant("similarity imported from utils", "similarity", "def similarity(image_emb, text_emb):",
           "from utils.clip import similarity\ndef _unused(image_emb, text_emb):", ("test_similarity",)),
    # contrastive_loss
    Mutant("loss without the temperature", "contrastive_loss", LOGITS,
           "logits = similarity(image_emb, text_emb)", ("test_contrastive_loss",)),
    Mutant("loss divides by the scale (temperature inverted)", "contrastive_loss", LOGITS,
           "logits = similarity(image_emb, text_emb) / logit_scale.exp()", ("test_contrastive_loss",)),
    Mutant("loss uses logit_scale without exp", "contrastive_loss", LOGITS,
           "logits = logit_scale * similarity(image_emb, text_emb)", ("test_contrastive_loss",)),
    Mutant("loss without normalising the embeddings", "contrastive_loss", LOGITS,
           "logits = logit_scale.exp() * image_emb @ text_emb.T", ("test_contrastive_loss",)),
    Mutant("loss in one direction only (images)", "contrastive_loss", "return (loss_images + loss_texts) / 2",
           "return loss_images", ("test_contrastive_loss",)),
    Mutant("loss in one direction only (texts)", "contrastive_loss", "return (loss_images + loss_texts) / 2",
           "return loss_texts", ("test_contrastive_loss",)),
    Mutant("both directions softmax over the same axis", "contrastive_loss", LOSS_TEXTS,
           "loss_texts = F.cross_entropy(logits, image_targets)", ("test_contrastive_loss",)),
    Mutant("the two directions summed, not averaged", "contrastive_loss", "return (loss_images + loss_texts) / 2",
           "return loss_images + loss_texts", ("test_contrastive_loss",)),
    Mutant("labels shifted by one", "contrastive_loss",
           ("positives = positives.float()",),
           ("positives = positives.roll(1, dims=1).float()",), ("test_contrastive_loss",)),
    Mutant("diagonal targets whatever the positives", "contrastive_loss",
           "positives = positives.float()", "positives = torch.eye(n)", ("test_contrastive_loss",)),
    Mutant("the image targets reused for the texts", "contrastive_loss", LOSS_TEXTS,
           "loss_texts = F.cross_entropy(logits.T, image_targets)", ("test_contrastive_loss",)),
    Mutant("targets normalised over the wrong axis", "contrastive_loss",
           "image_targets = positives / positives.sum(dim=1, keepdim=True)",
           "image_targets = positives / positives.sum(dim=0, keepdim=True)", ("test_contrastive_loss",)),
    Mutant("loss with integer labels, ignoring the positives", "contrastive_loss",
           ("F.cross_entropy(logits, image_targets)", "F.cross_entropy(logits.T, text_targets)"),
           ("F.cross_entropy(logits, torch.arange(n))", "F.cross_entropy(logits.T, torch.arange(n))"),
           ("test_contrastive_loss",)),
    # zero_shot_classify
    Mutant("zero-shot softmax over the images", "zero_shot_classify", ZS_PROBS,
           "probs = (clip_model.logit_scale.exp() * similarity(image_emb, class_emb)).softmax(dim=0)",
           ("test_zero_shot_classify",)),
    Mutant("zero-shot without the temperature", "zero_shot_classify", ZS_PROBS,
           "probs = similarity(image_emb, class_emb).softmax(dim=1)", ("test_zero_shot_classify",)),
    Mutant("zero-shot temperature inverted", "zero_shot_classify", ZS_PROBS,
           "probs = (similarity(image_emb, class_emb) / clip_model.logit_scale.exp()).softmax(dim=1)",
           ("test_zero_shot_classify",)),
    Mutant("zero-shot logits transposed", "zero_shot_classify", ZS_PROBS,
           "probs = (clip_model.logit_scale.exp() * similarity(class_emb, image_emb)).softmax(dim=1)",
           ("test_zero_shot_classify",)),
    Mutant("zero-shot picks the least similar class", "zero_shot_classify",
           "return probs, probs.argmax(dim=1)", "return probs, probs.argmin(dim=1)",
           ("test_zero_shot_classify",)),
    Mutant("zero-shot returns the scaled similarities, not probabilities", "zero_shot_classify", ZS_PROBS,
           "probs = clip_model.logit_scale.exp() * similarity(image_emb, class_emb)", ("test_zero_shot_classify",)),
    # text_to_image
    Mutant("unconditional branch still sees the text", "text_to_image", GUIDED,
           "def both_see_text(x_t, t, c, w):\n"
           "        keep = torch.ones(x_t.shape[0], 1)\n"
           "        return (1 + w) * unet(x_t, t, c, keep) - w * unet(x_t, t, c, keep)\n"
           "    return ddpm.sample(both_see_text, (len(prompts), *image_shape), c, w, generator=generator,\n"
           "                       n_frames=n_frames)",
           ("test_text_to_image",)),
    Mutant("the original's per-feature mask in the unconditional branch", "text_to_image", GUIDED,
           "def guided(x_t, t, c, w):\n"
           "        n = x_t.shape[0]\n"
           "        drop = (torch.rand(n, c.shape[1], generator=torch.Generator().manual_seed(0)) >= 0.1).float()\n"
           "        e_cond = unet(x_t, t, c, torch.ones(n, 1))\n"
           "        e_uncond = unet(x_t, t, c * drop, torch.ones(n, 1))\n"
           "        return (1 + w) * e_cond - w * e_uncond\n"
           "    return ddpm.sample(guided, (len(prompts), *image_shape), c, w, generator=generator,\n"
           "                       n_frames=n_frames)",
           ("test_text_to_image",)),
    Mutant("guidance weight ignored", "text_to_image", "guided_sample(ddpm, unet, c, w, image_shape,",
           "guided_sample(ddpm, unet, c, 0.0, image_shape,", ("test_text_to_image",)),
    Mutant("guidance weight with the wrong sign", "text_to_image", "guided_sample(ddpm, unet, c, w, image_shape,",
           "guided_sample(ddpm, unet, c, -w, image_shape,", ("test_text_to_image",)),
    Mutant("sampler not seeded", "text_to_image", "image_shape, generator=generator,", "image_shape,",
           ("test_text_to_image",)),
    Mutant("one guidance weight for every prompt", "text_to_image", "guided_sample(ddpm, unet, c, w, image_shape,",
           "guided_sample(ddpm, unet, c, float(w), image_shape,", ("test_text_to_image",)),
    Mutant("context is the raw token ids", "text_to_image",
           "c = clip_model.encode_text(tokens)", "c = tokens.float()[:, :8]", ("test_text_to_image",)),
]

# Break every answer at once (the first mutant of each): each must fail its own test cell and no other.
ISOLATION_RUNS = [("similarity", "contrastive_loss", "zero_shot_classify", "text_to_image")]
