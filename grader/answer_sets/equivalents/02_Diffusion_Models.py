"""Right answers in notebook 02 written differently; each must pass its cell's checks."""
from grader.answer_sets.equivalents import Equivalent

SCHEDULE = """    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    alphas = 1.0 - betas
    alpha_bars = torch.cumprod(alphas, dim=0)
"""
Q = """    alpha_bar = extract(schedule.alpha_bars, t, x0.shape)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
"""
LOSS = """    x_t, noise = q_sample(x0, t, schedule, noise)
    return F.mse_loss(model(x_t, t), noise)
"""
STEP = """    beta = extract(schedule.betas, t, x_t.shape)
    alpha = extract(schedule.alphas, t, x_t.shape)
    alpha_bar = extract(schedule.alpha_bars, t, x_t.shape)
    mean = (x_t - beta / (1 - alpha_bar).sqrt() * e_t) / alpha.sqrt()
    sigma = beta.sqrt()
    keep_noise = (t > 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
    return mean + keep_noise * sigma * z
"""

EQUIVALENTS = [
    # the schedule
    Equivalent("schedule from arange and a cumulative product in a loop", "make_schedule", SCHEDULE, """    steps = torch.arange(T, dtype=torch.float64)
    betas = beta_start + (beta_end - beta_start) * steps / (T - 1)
    alphas = 1 - betas
    alpha_bars = torch.empty_like(alphas)
    product = 1.0
    for i in range(T):
        product = product * alphas[i]
        alpha_bars[i] = product
"""),
    Equivalent("schedule with the product as exp of a sum of logs", "make_schedule", SCHEDULE,
               """    betas = torch.linspace(beta_start, beta_end, steps=T).double()
    alphas = torch.ones_like(betas) - betas
    alpha_bars = alphas.log().cumsum(0).exp()
"""),
    Equivalent("schedule in numpy", "make_schedule", SCHEDULE, """    import numpy as np
    betas = torch.from_numpy(np.linspace(beta_start, beta_end, T))
    alphas = 1.0 - betas
    alpha_bars = torch.from_numpy(np.cumprod(alphas.numpy()))
"""),
    Equivalent("schedule in float32 throughout (the float64 advice ignored)", "make_schedule", SCHEDULE,
               """    betas = torch.linspace(beta_start, beta_end, T)
    alphas = 1 - betas
    alpha_bars = alphas.cumprod(dim=0)
"""),
    # q(x_t | x_0)
    Equivalent("q_sample indexing alpha_bars and reshaping with view", "q_sample", Q,
               """    alpha_bar = schedule.alpha_bars[t].view(-1, 1, 1, 1)
    x_t = torch.sqrt(alpha_bar) * x0 + torch.sqrt(1.0 - alpha_bar) * noise
"""),
    Equivalent("q_sample with None indexing and powers", "q_sample", Q,
               """    a = schedule.alpha_bars[t][:, None, None, None]
    x_t = a ** 0.5 * x0 + (1 - a) ** 0.5 * noise
"""),
    Equivalent("q_sample one image at a time", "q_sample", Q, """    rows = []
    for i in range(x0.shape[0]):
        ab = schedule.alpha_bars[t[i]]
        rows.append(ab.sqrt() * x0[i] + (1 - ab).sqrt() * noise[i])
    x_t = torch.stack(rows)
"""),
    # the loss
    Equivalent("loss written out as a mean of squares", "training_loss", LOSS,
               """    x_t, used = q_sample(x0, t, schedule, noise)
    predicted = model(x_t, t)
    return ((predicted - used) ** 2).mean()
"""),
    Equivalent("loss with nn.MSELoss, the noise drawn first and the arguments swapped", "training_loss", LOSS,
               """    if noise is None:
        noise = torch.randn_like(x0)
    x_t = q_sample(x0, t, schedule, noise)[0]
    return torch.nn.MSELoss()(noise, model(x_t, t))
"""),
    # the reverse step
    Equivalent("reverse step with torch.where on t > 0", "p_sample", STEP,
               """    beta = schedule.betas[t].view(-1, 1, 1, 1)
    alpha = schedule.alphas[t].view(-1, 1, 1, 1)
    alpha_bar = schedule.alpha_bars[t].view(-1, 1, 1, 1)
    mean = 1 / torch.sqrt(alpha) * (x_t - (1 - alpha) / torch.sqrt(1 - alpha_bar) * e_t)
    return torch.where(t.view(-1, 1, 1, 1) > 0, mean + torch.sqrt(beta) * z, mean)
"""),
    Equivalent("reverse step zeroing the noise of images at t == 0", "p_sample", STEP,
               """    beta = extract(schedule.betas, t, x_t.shape)
    alpha = extract(schedule.alphas, t, x_t.shape)
    alpha_bar = extract(schedule.alpha_bars, t, x_t.shape)
    noise = beta.sqrt() * z
    noise[t == 0] = 0
    return alpha.rsqrt() * (x_t - beta * (1 - alpha_bar).rsqrt() * e_t) + noise
"""),
    Equivalent("reverse step one image at a time", "p_sample", STEP, """    out = torch.empty_like(x_t)
    for i, step in enumerate(t.tolist()):
        beta, alpha, alpha_bar = schedule.betas[step], schedule.alphas[step], schedule.alpha_bars[step]
        mean = (x_t[i] - beta / (1 - alpha_bar).sqrt() * e_t[i]) / alpha.sqrt()
        out[i] = mean + beta.sqrt() * z[i] if step > 0 else mean
    return out
"""),
]
