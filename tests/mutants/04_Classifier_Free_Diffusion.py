"""Plausible wrong answers in notebook 04; each must fail the test cell(s) named in ``fails``."""
from mutants import CONTEXT_MASK_RATE_MUTANTS, Mutant

MUTANTS = [
    # context_mask
    Mutant("mask inverted (1 = drop)", "context_mask",
           "return (u >= drop_prob).float()", "return (u < drop_prob).float()", ("test_context_mask",)),
    Mutant("mask keeps with probability drop_prob via bernoulli", "context_mask",
           "u = torch.rand((n, 1), generator=generator, device=device)\n    return (u >= drop_prob).float()",
           "return torch.bernoulli(torch.full((n, 1), drop_prob, device=device), generator=generator)",
           ("test_context_mask",)),
    Mutant("mask returned as booleans", "context_mask",
           "return (u >= drop_prob).float()", "return u >= drop_prob", ("test_context_mask",)),
    Mutant("mask of shape [n] instead of [n, 1]", "context_mask",
           "torch.rand((n, 1),", "torch.rand((n,),", ("test_context_mask",)),
    Mutant("mask ignores the generator", "context_mask",
           "torch.rand((n, 1), generator=generator, device=device)", "torch.rand((n, 1), device=device)",
           ("test_context_mask",)),
    Mutant("mask with a fixed drop probability", "context_mask",
           "return (u >= drop_prob).float()", "return (u >= 0.1).float()", ("test_context_mask",)),
    Mutant("mask imported from utils", "context_mask",
           "def context_mask(n, drop_prob, device=\"cpu\", generator=None):",
           "from utils.guidance import context_mask\ndef _unused(n, drop_prob, device=\"cpu\", generator=None):",
           ("test_context_mask",)),
    *CONTEXT_MASK_RATE_MUTANTS,
    # embed_context
    Mutant("mask applied after the embedding instead of to the context", "embed_context",
           "    c = c * c_mask  # a dropped class becomes the zero vector, then gets embedded like any other\n"
           "    return model.c_emb1(c), model.c_emb2(c)",
           "    m = c_mask[:, :, None, None]\n    return model.c_emb1(c) * m, model.c_emb2(c) * m",
           ("test_embed_context",)),
    Mutant("class embedded without its mask", "embed_context",
           "    c = c * c_mask  # a dropped class becomes the zero vector, then gets embedded like any other\n", "",
           ("test_embed_context",)),
    Mutant("embeddings swapped", "embed_context",
           "return model.c_emb1(c), model.c_emb2(c)", "return model.c_emb2(c), model.c_emb1(c)",
           ("test_embed_context",)),
    # conditional_loss
    Mutant("training never hides the class", "conditional_loss",
           "return ddpm.training_loss(model, x0, t, c, c_mask,", "return ddpm.training_loss(model, x0, t, c, torch.ones_like(c_mask),",
           ("test_conditional_loss",)),
    Mutant("training with the mask inverted", "conditional_loss",
           "return ddpm.training_loss(model, x0, t, c, c_mask,", "return ddpm.training_loss(model, x0, t, c, 1 - c_mask,",
           ("test_conditional_loss",)),
    Mutant("training with a fixed drop probability", "conditional_loss",
           "c_mask = context_mask(n, drop_prob,", "c_mask = context_mask(n, 0.1,", ("test_conditional_loss",)),
    Mutant("training ignores the injected noise", "conditional_loss",
           "c_mask, noise=noise, generator=generator)", "c_mask, generator=generator)",
           ("test_conditional_loss",)),
    # guided_noise
    Mutant("guidance with (1 - w)", "guided_noise",
           "return (1 + w) * e_cond - w * e_uncond", "return (1 - w) * e_cond - w * e_uncond",
           ("test_guided_noise",)),
    Mutant("unconditional pass still sees the class", "guided_noise",
           "torch.cat([keep, torch.zeros_like(keep)])", "torch.cat([keep, keep])", ("test_guided_noise",)),
    Mutant("conditional and unconditional halves swapped", "guided_noise",
           "e_cond, e_uncond = e.chunk(2)", "e_uncond, e_cond = e.chunk(2)", ("test_guided_noise",)),
    Mutant("guidance adds instead of subtracting", "guided_noise",
           "return (1 + w) * e_cond - w * e_uncond", "return (1 + w) * e_cond + w * e_uncond",
           ("test_guided_noise",)),
    Mutant("guidance as a convex mix (1 - w) e_uncond + w e_cond", "guided_noise",
           "return (1 + w) * e_cond - w * e_uncond", "return (1 - w) * e_uncond + w * e_cond",
           ("test_guided_noise",)),
    Mutant("guidance ignores w (conditional only)", "guided_noise",
           "return (1 + w) * e_cond - w * e_uncond", "return e_cond", ("test_guided_noise",)),
]

# Answer cells broken together (with their first mutant each) in one run: only their own test cells may
# fail, so no mistake is charged twice. conditional_loss is checked with the finished context_mask.
ISOLATION_RUNS = [("context_mask", "embed_context")]
