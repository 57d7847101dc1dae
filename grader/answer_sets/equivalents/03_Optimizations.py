"""Right answers for 03_Optimizations written differently from the instructor's; each must get full marks."""
from grader.answer_sets.equivalents import Equivalent

GELU_CLASS = "class GELUConvBlock(nn.Module):"

EQUIVALENTS = [
    # GELUConvBlock
    Equivalent("F.gelu in a small module", "gelu_conv_block",
               (GELU_CLASS, "nn.GELU(),"),
               ("class Gelu(nn.Module):\n    def forward(self, x):\n        return F.gelu(x)\n\n\n" + GELU_CLASS, "Gelu(),")),
    Equivalent("a subclass of nn.GELU", "gelu_conv_block",
               (GELU_CLASS, "nn.GELU(),"), ("class MyGELU(nn.GELU):\n    pass\n\n\n" + GELU_CLASS, "MyGELU(),")),
    Equivalent("GELU's tanh approximation", "gelu_conv_block", "nn.GELU(),", 'nn.GELU(approximate="tanh"),'),
    Equivalent("keyword arguments and padding='same'", "gelu_conv_block",
               ("nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1),", "nn.GroupNorm(num_groups, out_ch),"),
               ('nn.Conv2d(in_channels=in_ch, out_channels=out_ch, kernel_size=(3, 3), padding="same"),',
                "nn.GroupNorm(num_groups=num_groups, num_channels=out_ch),")),
    # RearrangePoolBlock
    Equivalent("reshape and permute instead of einops", "rearrange_pool_block",
               ('        self.rearrange = Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)\n',
                "        x = self.rearrange(x)\n"),
               ("", "        n, c, h, w = x.shape\n"
                    "        x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)\n"
                    "        x = x.reshape(n, 4 * c, h // 2, w // 2)\n")),
    Equivalent("nn.PixelUnshuffle", "rearrange_pool_block",
               'Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)', "nn.PixelUnshuffle(2)"),
    Equivalent("einops.rearrange in forward", "rearrange_pool_block",
               ('        self.rearrange = Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)\n',
                "        x = self.rearrange(x)\n        return self.conv(x)"),
               ("", "        from einops import rearrange\n"
                    '        return self.conv(rearrange(x, "b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2))')),
    # DownBlock / UpBlock
    Equivalent("conv blocks from a loop", "down_block",
               ("            GELUConvBlock(in_chs, out_chs, num_groups),\n"
                "            GELUConvBlock(out_chs, out_chs, num_groups),\n"),
               ("            *[GELUConvBlock(in_chs if i == 0 else out_chs, out_chs, num_groups) for i in range(2)],\n",)),
    Equivalent("list in torch.cat, positional dim, conv blocks from a loop", "up_block",
               ("torch.cat((x, skip), dim=1)", "nn.ConvTranspose2d(2 * in_chs, out_chs, kernel_size=2, stride=2),\n" + 4 * "            GELUConvBlock(out_chs, out_chs, num_groups),\n"),
               ("torch.cat([x, skip], 1)", "nn.ConvTranspose2d(2 * in_chs, out_chs, 2, 2),\n            *[GELUConvBlock(out_chs, out_chs, num_groups) for _ in range(4)],\n")),
    # SinusoidalPositionEmbedBlock
    Equivalent("powers of 10000 and torch.outer", "sinusoidal_embedding",
               ("        scale = math.log(10000) / (half - 1)\n"
                "        freqs = torch.exp(torch.arange(half, device=time.device) * -scale)\n"
                "        args = time[:, None] * freqs[None, :]\n"),
               ("        freqs = 10000 ** (-torch.arange(half, device=time.device) / (half - 1))\n"
                "        args = torch.outer(time, freqs)\n",)),
    Equivalent("float64 arithmetic and an explicit loop", "sinusoidal_embedding",
               ("        scale = math.log(10000) / (half - 1)\n"
                "        freqs = torch.exp(torch.arange(half, device=time.device) * -scale)\n"
                "        args = time[:, None] * freqs[None, :]\n"
                "        return torch.cat((args.sin(), args.cos()), dim=-1)",),
               ("        freqs = [math.exp(-math.log(10000) * i / (half - 1)) for i in range(half)]\n"
                "        args = torch.stack([time.double() * f for f in freqs], dim=1)\n"
                "        return torch.cat([torch.sin(args), torch.cos(args)], dim=1).float()",)),
    # EmbedBlock
    Equivalent("einops Rearrange instead of Unflatten", "embed_block",
               "nn.Unflatten(1, (emb_dim, 1, 1)),", 'Rearrange("b c -> b c 1 1"),'),
    Equivalent("GELU's tanh approximation in EmbedBlock", "embed_block", "nn.GELU(),", 'nn.GELU(approximate="tanh"),'),
    # ResidualConvBlock
    Equivalent("residual sum in one line", "residual_conv_block",
               "        x1 = self.conv1(x)\n        x2 = self.conv2(x1)\n        return x1 + x2",
               "        x1 = self.conv1(x)\n        return self.conv2(x1) + x1"),
    # UNet
    Equivalent("true division of the integer steps, list in torch.cat", "unet",
               ("t = self.sinusoidaltime(t.float() / self.T)", "torch.cat((up2, down0), dim=1)"),
               ("t = self.sinusoidaltime(t / self.T)", "torch.cat([up2, down0], 1)")),
    Equivalent("keyword arguments for out_conv, time embedding in two lines", "unet",
               ("out_conv = nn.Conv2d(2 * up_chs[-1], up_chs[-1], 3, 1, 1)", "t = self.sinusoidaltime(t.float() / self.T)"),
               ("out_conv = nn.Conv2d(in_channels=2 * up_chs[-1], out_channels=up_chs[-1], kernel_size=3, padding=1)",
                "t = t.float() / self.T\n        t = self.sinusoidaltime(t)")),
]
