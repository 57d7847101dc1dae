"""Right answers in notebook 05 written differently; each must pass its cell's checks."""
from grader.answer_sets.equivalents import Equivalent

SIM = "    return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T\n"
LOSS = """    logits = logit_scale.exp() * similarity(image_emb, text_emb)
    positives = positives.float()
    image_targets = positives / positives.sum(dim=1, keepdim=True)      # row i: the captions of image i
    text_targets = positives.T / positives.T.sum(dim=1, keepdim=True)   # row j: the images of caption j
    loss_images = F.cross_entropy(logits, image_targets)     # each row: which caption is mine?
    loss_texts = F.cross_entropy(logits.T, text_targets)     # each column: which image is mine?
    return (loss_images + loss_texts) / 2
"""
ZERO_SHOT = """    image_emb = clip_model.encode_image(images)
    class_emb = clip_model.encode_text(class_tokens)
    probs = (clip_model.logit_scale.exp() * similarity(image_emb, class_emb)).softmax(dim=1)
    return probs, probs.argmax(dim=1)
"""
T2I = """    with torch.no_grad():
        c = clip_model.encode_text(tokens)
    return guidance.guided_sample(ddpm, unet, c, w, image_shape, generator=generator, n_frames=n_frames,
                                  progress=progress)
"""

EQUIVALENTS = [
    # similarity
    Equivalent("similarity from cosine_similarity with broadcasting", "similarity", SIM,
               "    return F.cosine_similarity(image_emb[:, None, :], text_emb[None, :, :], dim=-1)\n"),
    Equivalent("similarity with norms and einsum", "similarity", SIM, """    a = image_emb / image_emb.norm(dim=1, keepdim=True)
    b = text_emb / text_emb.norm(dim=1, keepdim=True)
    return torch.einsum("nd,md->nm", a, b)
"""),
    Equivalent("similarity as a product divided by the outer product of norms", "similarity", SIM,
               "    return (image_emb @ text_emb.T) / torch.outer(image_emb.norm(dim=-1), text_emb.norm(dim=-1))\n"),
    # contrastive_loss
    Equivalent("loss written with log_softmax over both axes", "contrastive_loss", LOSS, """    sims = similarity(image_emb, text_emb) * torch.exp(logit_scale)
    pos = positives.to(sims.dtype)
    per_image = -(pos / pos.sum(1, keepdim=True) * sims.log_softmax(dim=1)).sum(1).mean()
    per_text = -(pos / pos.sum(0, keepdim=True) * sims.log_softmax(dim=0)).sum(0).mean()
    return 0.5 * (per_image + per_text)
"""),
    Equivalent("loss with the temperature as a division", "contrastive_loss", LOSS, """    temperature = 1 / logit_scale.exp()
    logits = similarity(image_emb, text_emb) / temperature
    p = positives.float()
    return (F.cross_entropy(logits, p / p.sum(-1, keepdim=True))
            + F.cross_entropy(logits.t(), p.t() / p.t().sum(-1, keepdim=True))) / 2
"""),
    Equivalent("loss one image and one text at a time", "contrastive_loss", LOSS, """    logits = logit_scale.exp() * similarity(image_emb, text_emb)
    rows, cols = [], []
    for i in range(n):
        want = positives[i].float()
        rows.append(-(want / want.sum() * torch.log_softmax(logits[i], dim=0)).sum())
        want = positives[:, i].float()
        cols.append(-(want / want.sum() * torch.log_softmax(logits[:, i], dim=0)).sum())
    return (torch.stack(rows).mean() + torch.stack(cols).mean()) / 2
"""),
    # zero_shot_classify
    Equivalent("zero-shot with softmax(-1) and max().indices", "zero_shot_classify", ZERO_SHOT, """    sims = similarity(clip_model.encode_image(images), clip_model.encode_text(class_tokens))
    probs = torch.softmax(sims * clip_model.logit_scale.exp(), dim=-1)
    return probs, probs.max(dim=-1).indices
"""),
    Equivalent("zero-shot predictions from the similarities directly", "zero_shot_classify", ZERO_SHOT, """    sims = similarity(clip_model.encode_image(images), clip_model.encode_text(class_tokens))
    predicted = sims.argmax(dim=1)
    return F.softmax(clip_model.logit_scale.exp() * sims, dim=1), predicted
"""),
    # text_to_image
    Equivalent("text_to_image through ddpm.sample and 04's guided noise", "text_to_image", T2I, """    c = clip_model.encode_text(tokens).detach()

    def guided(x_t, t, c, w):
        return guidance.guided_noise(unet, x_t, t, c, w)

    return ddpm.sample(guided, (len(prompts), *image_shape), c, torch.as_tensor(w, dtype=torch.float32),
                       generator=generator, n_frames=n_frames, progress=progress)
"""),
]
