"""Right answers for 04_Classifier_Free_Diffusion written differently from the instructor's; each must get full marks."""
from grader.answer_sets.equivalents import Equivalent

EQUIVALENTS = [
    # context_mask
    Equivalent("Bernoulli draw of the keep probability", "context_mask",
               "    u = torch.rand((n, 1), generator=generator, device=device)\n    return (u >= drop_prob).float()",
               "    keep = torch.full((n, 1), 1.0 - drop_prob, device=device)\n"
               "    return torch.bernoulli(keep, generator=generator)"),
    Equivalent("torch.where and strict comparison", "context_mask",
               "return (u >= drop_prob).float()", "return torch.where(u < drop_prob, 0.0, 1.0).to(torch.float32)"),
    # embed_context
    Equivalent("a list instead of a tuple", "embed_context",
               "return model.c_emb1(c), model.c_emb2(c)", "return [model.c_emb1(c), model.c_emb2(c)]"),
    Equivalent("mask written per embedding", "embed_context",
               "    c = c * c_mask  # a dropped class becomes the zero vector, then gets embedded like any other\n"
               "    return model.c_emb1(c), model.c_emb2(c)",
               "    return (model.c_emb1(c * c_mask), model.c_emb2(torch.mul(c, c_mask)))"),
    # conditional_loss
    Equivalent("the masked class passed to the model", "conditional_loss",
               "return ddpm.training_loss(model, x0, t, c, c_mask,",
               "return ddpm.training_loss(model, x0, t, c * c_mask, c_mask,"),
    Equivalent("masked class with a mask of ones", "conditional_loss",
               "return ddpm.training_loss(model, x0, t, c, c_mask,",
               "return ddpm.training_loss(model, x0, t, c * c_mask, torch.ones_like(c_mask),"),
    # guided_noise
    Equivalent("two separate calls", "guided_noise",
               "    keep = torch.ones(n, 1, dtype=c.dtype, device=c.device)\n"
               "    c_mask = torch.cat([keep, torch.zeros_like(keep)])  # first copy keeps the class, second drops it\n"
               "    e = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, c]), c_mask)\n"
               "    e_cond, e_uncond = e.chunk(2)\n",
               "    keep = torch.ones(n, 1, dtype=c.dtype, device=c.device)\n"
               "    e_cond = model(x_t, t, c, keep)\n"
               "    e_uncond = model(x_t, t, c, torch.zeros_like(keep))\n"),
    Equivalent("zero class instead of a zero mask, the diffusers form", "guided_noise",
               ("c_mask = torch.cat([keep, torch.zeros_like(keep)])", "torch.cat([c, c]), c_mask)",
                "return (1 + w) * e_cond - w * e_uncond"),
               ("c_mask = torch.cat([keep, keep])", "torch.cat([c, torch.zeros_like(c)]), c_mask)",
                "return e_uncond + (1 + w) * (e_cond - e_uncond)")),
    Equivalent("loss written out, the model called with keywords", "conditional_loss",
               "return ddpm.training_loss(model, x0, t, c, c_mask, noise=noise, generator=generator)",
               "x_t, noise = ddpm.q_sample(x0, t, noise, generator)\n"
               "    return F.mse_loss(model(x_t, t, c=c, c_mask=c_mask), noise)"),
]
