"""Right answers in notebook 01 written differently; each must pass its cell's checks."""
from grader.answer_sets.equivalents import Equivalent

DOWN_LAYERS = """        layers = [
            nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
"""
UP_LAYERS = """        layers = [
            nn.ConvTranspose2d(2 * in_ch, out_ch, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        ]
"""
UNET_FORWARD = """        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent = self.dense_emb(self.to_vec(down2))
        up0 = self.up0(latent)
        up1 = self.up1(up0, down2)
        up2 = self.up2(up1, down1)
"""

EQUIVALENTS = [
    # DownBlock
    Equivalent("down block built in a loop", "down_block", DOWN_LAYERS, """        layers = []
        for channels in (in_ch, out_ch):
            layers += [nn.Conv2d(channels, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()]
        layers.append(nn.MaxPool2d(2))
"""),
    Equivalent("down block with positional arguments, padding='same' and in-place ReLU", "down_block",
               DOWN_LAYERS, """        layers = [
            nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, (3, 3), padding="same"), nn.BatchNorm2d(out_ch), nn.ReLU(True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        ]
"""),
    Equivalent("down block layers given as an nn.Sequential", "down_block", DOWN_LAYERS, """        layers = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(),
            nn.MaxPool2d(2),
        )
"""),
    Equivalent("down block with each stage in its own nn.Sequential", "down_block", DOWN_LAYERS, """        def stage(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU())

        layers = [stage(in_ch, out_ch), stage(out_ch, out_ch), nn.MaxPool2d(2)]
"""),
    # UpBlock
    Equivalent("up block concatenates with torch.concat and a list", "up_block",
               "x = torch.cat((x, skip), dim=1)", "x = torch.concat([x, skip], 1)"),
    Equivalent("up block concatenates with torch.hstack", "up_block",
               "x = torch.cat((x, skip), dim=1)\n        return self.model(x)",
               "return self.model(torch.hstack((x, skip)))"),
    Equivalent("up block with positional arguments and in_ch * 2", "up_block", UP_LAYERS, """        layers = [
            nn.ConvTranspose2d(in_ch * 2, out_ch, 3, 2, 1, 1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding="same"), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        ]
"""),
    Equivalent("up block with each stage in its own nn.Sequential", "up_block", UP_LAYERS, """        layers = [
            nn.Sequential(nn.ConvTranspose2d(2 * in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
                          nn.BatchNorm2d(out_ch), nn.ReLU()),
            nn.Sequential(nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()),
        ]
"""),
    # BasicUNet
    Equivalent("U-Net with channels read from down_chs and a nested forward", "basic_unet",
               ("self.up1 = UpBlock(up_chs[0], up_chs[1])\n        self.up2 = UpBlock(up_chs[1], up_chs[2])",
                UNET_FORWARD),
               ("self.up1 = UpBlock(down_chs[2], down_chs[1])\n        self.up2 = UpBlock(down_chs[1], down_chs[0])",
                """        down1 = self.down1(down0)
        down2 = self.down2(down1)
        up2 = self.up2(self.up1(self.up0(self.dense_emb(self.to_vec(down2))), down2), down1)
""")),
    Equivalent("U-Net with the skips kept in a list", "basic_unet", UNET_FORWARD, """        skips = []
        h = down0
        for block in (self.down1, self.down2):
            h = block(h)
            skips.append(h)
        h = self.to_vec(h)
        h = self.dense_emb(h)
        h = self.up0(h)
        for block in (self.up1, self.up2):
            h = block(h, skips.pop())
        up2 = h
"""),
]
