"""The model's copy of a screenshot comes from the raw pixels when the env kept them, and is the same."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pixelpilot._png import encode_png
from pixelpilot.actions import Observation
from pixelpilot.serving.images import prepare_image, smart_resize


def _screen() -> Image.Image:
    img = Image.new("RGB", (1920, 1080), "white")
    draw = ImageDraw.Draw(img)
    for row in range(40):
        draw.text((20, 10 + row * 26), f"row {row}: the quick brown fox jumps over the lazy dog", fill=(row * 5, 0, 90))
    return img


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def test_a_desktop_frame_is_resized_from_its_raw_pixels_without_a_png_round_trip() -> None:
    screen = _screen()
    encoded: list[bool] = []

    def png() -> bytes:
        encoded.append(True)
        return _png(screen)

    obs = Observation(png=png, raw=screen.copy, width=1920, height=1080, input_width=1920, input_height=1080)
    from_raw = prepare_image(obs)
    assert not encoded  # the full-size PNG was neither encoded nor decoded for the model
    from_png = prepare_image(_png(screen))
    assert (from_raw.width, from_raw.height) == smart_resize(1920, 1080) == (1504, 832)
    assert from_raw.png == from_png.png  # the very bytes the PNG path gives (and the exports rebuild)


def test_an_observation_that_fits_is_sent_as_captured() -> None:
    small = _png(_screen().resize((1280, 800)))  # 1,000 tokens, sides multiples of 32: as it is
    obs = Observation(png=small, width=1280, height=800, input_width=1280, input_height=800)
    assert prepare_image(obs).png == small
    assert "raw" not in obs.meta()


@pytest.mark.parametrize("size", [(1920, 1080), (2560, 1440), (1080, 1920), (1281, 801)])
def test_a_shrunk_screen_holds_pillows_bicubic_to_rounding(size: tuple[int, int]) -> None:
    # Qwen's own pipeline resizes with Pillow's bicubic; pixelpilot shrinks with libvips' cubic
    # reduce (four times faster): the pixels the model is sent must be Pillow's to rounding, from
    # the raw pixels as from a PNG.
    screen = _screen().resize(size)
    target = smart_resize(*size)
    assert target[0] <= size[0] and target[1] <= size[1]
    want = np.asarray(screen.resize(target, Image.Resampling.BICUBIC), dtype=np.int16)
    obs = Observation(png=_png(screen), raw=screen.copy, width=size[0], height=size[1], input_width=1, input_height=1)
    for image in (prepare_image(obs), prepare_image(_png(screen))):
        got = np.asarray(Image.open(io.BytesIO(image.png)).convert("RGB"), dtype=np.int16)
        assert got.shape == want.shape
        diff = np.abs(got - want)
        assert diff.mean() < 0.05  # 0.012-0.021 measured: a rounding here and there
        assert (diff > 1).mean() < 0.005  # 0.03-0.3% measured, on the edges of the text
        assert diff.max() <= 24  # 7-17 measured


@pytest.mark.parametrize("size", [(1366, 768), (192, 192), (7, 3)])
def test_an_enlarged_screen_is_pillows_bicubic_exactly(size: tuple[int, int]) -> None:
    # A side that grows (1366 -> 1376; a page under the 64-token floor) is Pillow's resize itself.
    screen = _screen().resize(size)
    target = smart_resize(*size)
    assert target[0] > size[0] or target[1] > size[1]
    want = screen.resize(target, Image.Resampling.BICUBIC).tobytes()
    assert Image.open(io.BytesIO(prepare_image(_png(screen)).png)).convert("RGB").tobytes() == want


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("size", [(1504, 832), (7, 3), (1, 1)])
def test_the_fast_png_holds_the_exact_pixels(mode: str, size: tuple[int, int]) -> None:
    img = _screen().resize(size).convert(mode)
    data = encode_png(img)
    back = Image.open(io.BytesIO(data))
    back.load()  # a decoder that checks the zlib stream and every chunk's CRC
    assert (back.mode, back.size, back.tobytes()) == (mode, size, img.tobytes())
    assert encode_png(img) == data  # the same bytes every time


def test_the_fast_png_refuses_a_level_isal_does_not_have() -> None:
    with pytest.raises(ValueError, match="0-3"):
        encode_png(_screen(), level=6)
