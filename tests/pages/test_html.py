"""`jaxsteer.pages.html`: escaping, rounding, the image converter and PNGs, tables, the page."""

import io

import numpy as np
from PIL import Image

from jaxsteer.pages.html import (
    Raw,
    array_png,
    facts_table,
    fmt,
    page,
    png_uri,
    signed,
    table,
    to_uint8,
)


def test_numbers_for_people():
    assert fmt(3.14159) == "3.14" and fmt(1234567.0) == "1.23e+06" and fmt(0.5, 1) == "0.5"
    assert fmt(float("nan")) == "-" and fmt(None) == "-"
    assert fmt(True) == "True" and fmt(7) == "7"                 # bools and ints as they are
    assert fmt([1.23456, 2, None]) == "1.23, 2, -"
    assert signed(0.25) == "+0.25" and signed(-3.0) == "-3" and signed(float("nan")) == "-"


def test_to_uint8_maps_minus_one_to_zero_and_one_to_255_with_clipping():
    x = np.array([[-2.0, -1.0, 0.0, 1.0, 3.0, -1.0 + 2 / 255]])
    assert to_uint8(x).tolist() == [[0, 0, 128, 255, 255, 1]]    # 127.5 rounds to even 128
    assert to_uint8(x).dtype == np.uint8


def test_array_png_round_trips_and_shrinks_large_images():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(array_png(small))))
    np.testing.assert_array_equal(back, small)                  # PNG is lossless
    big = Image.open(io.BytesIO(array_png(np.zeros((300, 600, 3), np.uint8), max_side=100)))
    assert big.size == (100, 50)                                # aspect kept
    assert png_uri(b"\x89PNG").startswith("data:image/png;base64,iVBORw")


def test_tables_escape_text_but_not_raw_html():
    t = table(["name", "n"], [["<b>", 1.23456], [Raw("<i>x</i>"), None]], numeric=[1])
    assert "&lt;b&gt;" in t and "<b>" not in t and "<i>x</i>" in t
    assert "<td class=num>1.23</td>" in t and "<td class=num>-</td>" in t
    assert "<th class=num>n</th>" in t and "<th>name</th>" in t
    assert t.count("<tr>") == 3
    assert facts_table({"a&b": 0.123456}) == "<table class='facts'><tr><th>a&amp;b</th>" \
        "<td>0.123</td></tr></table>"


def test_a_page_is_one_file_with_an_escaped_title():
    doc = page("x < y", "<p>body</p>", script="let a = 1;")
    assert doc.startswith("<!doctype html>") and doc.count("x &lt; y") == 2
    assert "<p>body</p>" in doc and "<script>let a = 1;</script>" in doc
    assert "http" not in doc and "src=" not in doc             # nothing fetched
    assert "<script>" not in page("t", "b")
