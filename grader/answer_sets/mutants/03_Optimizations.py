"""Plausible wrong answers for 03_Optimizations; each must fail the test cells in ``fails``."""
from grader.answer_sets.mutants import Mutant

MUTANTS = [
    # GELUConvBlock
    Mutant("batchnorm for groupnorm", "gelu_conv_block",
           "nn.GroupNorm(num_groups, out_ch),", "nn.BatchNorm2d(out_ch),", ("test_gelu_conv_block",)),
    Mutant("relu for gelu", "gelu_conv_block", "nn.GELU(),", "nn.ReLU(),", ("test_gelu_conv_block",)),
    Mutant("group size read as first argument", "gelu_conv_block",
           "nn.GroupNorm(num_groups, out_ch),", "nn.GroupNorm(out_ch // num_groups, out_ch),",
           ("test_gelu_conv_block",)),
    Mutant("no padding", "gelu_conv_block", "padding=1", "padding=0", ("test_gelu_conv_block",)),
    Mutant("no activation", "gelu_conv_block", "            nn.GELU(),\n", "", ("test_gelu_conv_block",)),
    Mutant("norm after activation", "gelu_conv_block",
           ("nn.GroupNorm(num_groups, out_ch),\n", "nn.GELU(),\n"),
           ("nn.GELU(),\n", "nn.GroupNorm(num_groups, out_ch),\n"), ("test_gelu_conv_block",)),
    # RearrangePoolBlock
    Mutant("patch positions before channels", "rearrange_pool_block",
           "b (c p1 p2) h w", "b (p1 p2 c) h w", ("test_rearrange_pool_block",)),
    Mutant("p2 before p1", "rearrange_pool_block", "b (c p1 p2) h w", "b (c p2 p1) h w",
           ("test_rearrange_pool_block",)),
    Mutant("conv keeps 4x channels", "rearrange_pool_block",
           "GELUConvBlock(4 * in_chs, in_chs, num_groups)", "GELUConvBlock(4 * in_chs, 4 * in_chs, num_groups)",
           ("test_rearrange_pool_block",)),
    # DownBlock / UpBlock
    Mutant("max pooling kept", "down_block", "RearrangePoolBlock(out_chs, num_groups),", "nn.MaxPool2d(2),",
           ("test_down_block",)),
    Mutant("pooling before the conv blocks", "down_block",
           ("            GELUConvBlock(in_chs, out_chs, num_groups),\n            GELUConvBlock(out_chs, out_chs, num_groups),\n            RearrangePoolBlock(out_chs, num_groups),\n",),
           ("            RearrangePoolBlock(in_chs, num_groups),\n            GELUConvBlock(in_chs, out_chs, num_groups),\n            GELUConvBlock(out_chs, out_chs, num_groups),\n",),
           ("test_down_block",)),
    Mutant("one conv block", "down_block", "            GELUConvBlock(out_chs, out_chs, num_groups),\n", "",
           ("test_down_block",)),
    Mutant("kernel 3 upsampling", "up_block", "kernel_size=2, stride=2",
           "kernel_size=3, stride=2, padding=1, output_padding=1", ("test_up_block",)),
    Mutant("skip concatenated first", "up_block", "torch.cat((x, skip), dim=1)", "torch.cat((skip, x), dim=1)",
           ("test_up_block",)),
    Mutant("skip added instead of concatenated", "up_block",
           ("torch.cat((x, skip), dim=1)", "nn.ConvTranspose2d(2 * in_chs"),
           ("x + skip", "nn.ConvTranspose2d(in_chs"), ("test_up_block",)),
    # SinusoidalPositionEmbedBlock
    Mutant("sin and cos swapped", "sinusoidal_embedding", "torch.cat((args.sin(), args.cos()), dim=-1)",
           "torch.cat((args.cos(), args.sin()), dim=-1)", ("test_sinusoidal_embedding",)),
    Mutant("sin and cos interleaved", "sinusoidal_embedding", "torch.cat((args.sin(), args.cos()), dim=-1)",
           "torch.stack((args.sin(), args.cos()), dim=-1).flatten(1)", ("test_sinusoidal_embedding",)),
    Mutant("divides by half", "sinusoidal_embedding", "(half - 1)", "half", ("test_sinusoidal_embedding",)),
    Mutant("growing frequencies", "sinusoidal_embedding", "* -scale", "* scale", ("test_sinusoidal_embedding",)),
    # EmbedBlock / ResidualConvBlock
    Mutant("relu in embed block", "embed_block", "nn.GELU(),", "nn.ReLU(),", ("test_embed_block",)),
    Mutant("embed block without its second linear layer", "embed_block", "            nn.Linear(emb_dim, emb_dim),\n", "",
           ("test_embed_block",)),
    Mutant("missing residual", "residual_conv_block", "return x1 + x2", "return x2", ("test_residual_conv_block",)),
    Mutant("residual of conv1 only", "residual_conv_block", "return x1 + x2", "return x1 + x1",
           ("test_residual_conv_block",)),
    # UNet
    Mutant("global skip concatenated the other way", "unet", "torch.cat((up2, down0), dim=1)",
           "torch.cat((down0, up2), dim=1)", ("test_unet",)),
    Mutant("no global skip", "unet",
           ("out_conv = nn.Conv2d(2 * up_chs[-1], up_chs[-1], 3, 1, 1)", "self.out(torch.cat((up2, down0), dim=1))"),
           ("out_conv = nn.Conv2d(up_chs[-1], up_chs[-1], 3, 1, 1)", "self.out(up2)"), ("test_unet",)),
    Mutant("t not divided by T", "unet", "self.sinusoidaltime(t.float() / self.T)", "self.sinusoidaltime(t.float())",
           ("test_unet",)),
    Mutant("t divided by T but not embedded", "unet", "t = self.sinusoidaltime(t.float() / self.T)",
           "t = (t.float() / self.T).repeat(8, 1).T", ("test_unet",)),
    Mutant("global skip from the input image", "unet",
           ("out_conv = nn.Conv2d(2 * up_chs[-1], up_chs[-1], 3, 1, 1)", "torch.cat((up2, down0), dim=1)"),
           ("out_conv = nn.Conv2d(up_chs[-1] + img_ch, up_chs[-1], 3, 1, 1)", "torch.cat((up2, x), dim=1)"),
           ("test_unet",)),
]

# Answer cells broken together (with their first mutant each) in one run: only their own test cells may
# fail, so no mistake is charged twice (each check builds its class from the finished blocks it uses).
# Every block that a later cell uses is broken in some run where that later cell is not.
ISOLATION_RUNS = [
    ("gelu_conv_block", "sinusoidal_embedding", "embed_block"),
    ("rearrange_pool_block", "up_block", "residual_conv_block"),
    ("down_block",),
]
