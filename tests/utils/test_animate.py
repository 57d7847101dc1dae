"""utils.plotting.animate: every frame shows the whole picture and its whole title, and the player
loads nothing from the internet (the browser test plays it in JupyterLab)."""
from __future__ import annotations

import base64
import re
import struct

import pytest
import torch

from frame_checks import title_columns
from utils.plotting import animate


def frame_pngs(html: str) -> list[bytes]:
    """The PNG of every frame the player's script holds."""
    encoded = re.findall(r'frames\[\d+\] = "data:image/png;base64,(.*?)"', html, re.S)
    return [base64.b64decode(re.sub(r"\\\n|\s", "", e)) for e in encoded]


LABELS = [f"w = 2, t = {t}" + (" (pure noise)" if t == 150 else "") for t in (150, 100, 50, 0)]


@pytest.mark.parametrize("n_images", [1, 3, 12])
def test_every_frame_shows_its_whole_title(n_images):
    frames = torch.linspace(-1, 1, 4 * n_images * 16 * 16).reshape(4, n_images, 1, 16, 16)
    pngs = frame_pngs(animate(frames, LABELS, ncols=n_images).data)
    assert len(pngs) == 4
    for png in pngs:
        first, last, width = title_columns(png)
        assert first >= 2 and last <= width - 3, f"title cut off: columns {first}..{last} of {width}"


def test_the_image_has_its_size_and_first_frame_before_the_script_runs():
    # JupyterLab lays out no cell scrolled out of view; an <img> that only the script fills can then
    # stay 0 x 0 pixels when scrolled back (the browser test measures it on the page).
    html = animate(torch.rand(3, 2, 1, 16, 16) * 2 - 1, ["a", "b", "c"]).data
    first = frame_pngs(html)[0]
    width, height = struct.unpack(">II", first[16:24])
    tag = re.search(r'<img id="_anim_img\w+"[^>]*>', html).group(0)
    assert f'width="{width}"' in tag and f'height="{height}"' in tag, tag
    shown = re.search(r'src="data:image/png;base64,([^"]*)"', tag).group(1)
    assert base64.b64decode(shown) == first


def test_the_player_needs_no_internet():
    html = animate(torch.zeros(3, 2, 1, 16, 16), ["a", "b", "c"]).data
    assert not re.search(r"""(href|src)\s*=\s*["']?(https?:)?//""", html)
    assert 'class="fa' not in html                       # icons from a web font
    buttons = re.findall(r"<button[^>]*>(.*?)</button>", html, re.S)
    assert len(buttons) == 9 and all(b.strip() for b in buttons)


def test_bad_frames_or_labels_are_refused():
    with pytest.raises(ValueError, match="one entry per frame"):
        animate(torch.zeros(3, 2, 1, 16, 16), ["a", "b"])
    with pytest.raises(ValueError, match=r"\[K, N, C, H, W\]"):
        animate(torch.zeros(2, 1, 16, 16))
