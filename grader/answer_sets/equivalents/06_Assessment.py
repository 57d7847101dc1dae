"""Right answers in notebook 06 written differently; each must pass its cell's checks."""
from grader.answer_sets.equivalents import Equivalent

EQUIVALENTS = [
    Equivalent("schedule with the product as exp of a sum of logs", "schedule",
               "alpha_bars = torch.cumprod(alphas, dim=0)", "alpha_bars = alphas.log().cumsum(0).exp()"),
    Equivalent("q_sample with gather and view", "q_sample",
               "    a = alpha_bars[t].reshape(-1, 1, 1, 1)\n    return a.sqrt() * x0 + (1 - a).sqrt() * noise",
               "    a = alpha_bars.gather(0, t).view(-1, 1, 1, 1)\n    return torch.sqrt(a) * x0 + torch.sqrt(1 - a) * noise"),
    Equivalent("reverse step with torch.where for the last step", "p_sample",
               "    keep_noise = (t > 0).float().reshape(-1, 1, 1, 1)\n    return mean + keep_noise * beta.sqrt() * z",
               "    noisy = mean + beta.sqrt() * z\n    return torch.where((t == 0).reshape(-1, 1, 1, 1), mean, noisy)"),
    Equivalent("reverse step through sqrt(1/alpha)", "p_sample",
               "mean = (x_t - beta / (1 - alpha_bar).sqrt() * e_t) / alpha.sqrt()",
               "mean = (1 / alpha).sqrt() * (x_t - (beta / (1 - alpha_bar).sqrt()) * e_t)"),
    Equivalent("mask from bernoulli-free comparison written as 1 - (u < p)", "context_mask",
               "return (u >= drop_prob).float()", "return 1.0 - (u < drop_prob).float()"),
    Equivalent("loss written out as a mean of squares", "conditional_loss",
               "return F.mse_loss(model(x_t, t, c, c_mask), noise)",
               "return ((model(x_t, t, c, c_mask) - noise) ** 2).mean()"),
    Equivalent("the masked class passed to the model", "conditional_loss",
               "model(x_t, t, c, c_mask)", "model(x_t, t, c * c_mask, c_mask)"),
    Equivalent("masked class with a mask of ones", "conditional_loss",
               "model(x_t, t, c, c_mask)", "model(x_t, t, c * c_mask, torch.ones_like(c_mask))"),
    Equivalent("two separate calls", "guided_noise",
               "    c_mask = torch.cat([keep, torch.zeros_like(keep)])  # first copy keeps the class, second drops it\n"
               "    e = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, c]), c_mask)\n"
               "    e_cond, e_uncond = e.chunk(2)\n",
               "    e_cond = model(x_t, t, c, keep)\n"
               "    e_uncond = model(x_t, t, c, torch.zeros_like(keep))\n"),
    Equivalent("guidance as e_cond + w (e_cond - e_uncond)", "guided_noise",
               "return (1 + w) * e_cond - w * e_uncond", "return e_cond + w * (e_cond - e_uncond)"),
    Equivalent("guidance written as the diffusers scale s = 1 + w", "guided_noise",
               "return (1 + w) * e_cond - w * e_uncond", "s = 1 + w\n    return e_uncond + s * (e_cond - e_uncond)"),
    Equivalent("GELU of the bottleneck applied in forward instead of inside to_vec", "unet",
               ("self.to_vec = nn.Sequential(nn.Flatten(), nn.GELU())",
                "latent_vec = self.dense_emb(self.to_vec(down2))"),
               ("self.to_vec = nn.Sequential(nn.Flatten())",
                "latent_vec = self.dense_emb(F.gelu(self.to_vec(down2)))")),
    Equivalent("to_vec written as a plain function", "unet",
               "self.to_vec = nn.Sequential(nn.Flatten(), nn.GELU())", "self.to_vec = lambda h: F.gelu(h.flatten(1))"),
    Equivalent("sampling loop over reversed(range(T))", "sample_images",
               "for i in range(len(betas) - 1, -1, -1):", "for i in reversed(range(len(betas))):"),
]
