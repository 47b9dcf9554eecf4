"""Bad chart images and news are rejected where they enter, with one-line messages."""

import io

import pytest
from PIL import Image

from alphasignal.errors import ImageError, NewsError
from alphasignal.inputs import clean_news, load_image, read_news_file

LIMITS = dict(max_bytes=1_000_000, max_pixels=4_000_000)


def png_bytes(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_valid_png_and_jpeg(tmp_path):
    path = tmp_path / "c.png"
    path.write_bytes(png_bytes())
    data, mime = load_image(path, **LIMITS)
    assert mime == "image/png" and data == path.read_bytes()
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="JPEG")
    assert load_image(buf.getvalue(), **LIMITS)[1] == "image/jpeg"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "image not found"),
        (lambda p: p.write_bytes(b""), "empty \\(0 bytes\\)"),
        (lambda p: p.write_text("this is not a picture"), "not an image"),
        (lambda p: p.write_bytes(png_bytes((400, 400))[:300]), "truncated or corrupt"),
        (lambda p: p.write_bytes(b"\0" * 1_000_001), "image too large"),
    ],
    ids=["missing", "zero-bytes", "text-renamed-png", "truncated-png", "over-size-limit"],
)
def test_bad_images(tmp_path, make, message):
    path = tmp_path / "chart.png"
    make(path)
    with pytest.raises(ImageError, match=message):
        load_image(path, **LIMITS)


def test_too_many_pixels():
    with pytest.raises(ImageError, match="pixels"):
        load_image(png_bytes((3000, 2000)), max_bytes=10_000_000, max_pixels=1_000_000)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path, **LIMITS)


def test_unsupported_format(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="TIFF")
    with pytest.raises(ImageError, match="unsupported image format TIFF"):
        load_image(buf.getvalue(), **LIMITS)


NEWS = dict(max_items=3, max_chars=50)


def test_news_is_cleaned():
    news = clean_news(["  Apple   beats\nexpectations ", "", "Second"], ticker="AAPL", **NEWS)
    assert news.items == ("Apple beats expectations", "Second") and news.ticker == "AAPL"
    assert clean_news(None, **NEWS) is None
    assert clean_news("one item", **NEWS).items == ("one item",)


@pytest.mark.parametrize(
    "items, message",
    [
        ([], "news is empty"),
        (["", "   "], "news is empty"),
        (["x" * 51], "news item too long: 51"),
        (["a", "b", "c", "d"], "too many news items: 4"),
        ([3], "must be text"),
    ],
)
def test_bad_news(items, message):
    with pytest.raises(NewsError, match=message):
        clean_news(items, **NEWS)


def test_news_file(tmp_path):
    path = tmp_path / "news.txt"
    path.write_text("first\n\n second \n")
    assert read_news_file(path) == ["first", " second "]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(NewsError, match="news file is empty"):
        read_news_file(tmp_path / "empty.txt")
    with pytest.raises(NewsError, match="news file not found"):
        read_news_file(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(NewsError, match="not UTF-8"):
        read_news_file(tmp_path / "bin.txt")
