"""One rule for how a number reads: ``mlwidget.display.fmt_num`` (the widgets, the listing's
scores) and the pages' JavaScript ``fmt`` (numbers of JSON answers) give the same text for one
table of cases and for thousands of random numbers."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from rest_helpers import chromium_page, needs_chromium

from mlwidget.display import fmt_num

# (value, what a person reads): the rule in examples
CASES: list[tuple[object, str]] = [
    (1234567.8, "1234568"),  # the whole part is never rounded away
    (0.812345, "0.8123"),
    (151.765, "151.8"),
    (3.0, "3"),
    (3, "3"),
    (-0.0, "0"),
    (0.0, "0"),
    (-1234.5, "-1235"),  # halves away from zero
    (1234.5, "1235"),
    (0.125, "0.125"),
    (0.1 + 0.2, "0.3"),
    (1 / 3, "0.3333"),
    (2 / 3, "0.6667"),
    (9.99995, "10"),
    (0.00001, "0.00001"),
    (0.0000099999, "1e-5"),  # exponent form below 1e-5
    (1.5e-7, "1.5e-7"),
    (-2.5e-12, "-2.5e-12"),
    (999999999999999.9, "1000000000000000"),
    (1e15, "1e+15"),  # and from 1e15
    (1.23456e20, "1.235e+20"),
    (10**20, "1e+20"),
    (2021, "2021"),  # no thousands separators: a year reads as written
    (12345678901234.5, "12345678901235"),
    (float("inf"), "∞"),
    (float("-inf"), "-∞"),
    (float("nan"), ""),
    (None, ""),
    (True, "True"),
    (False, "False"),
    ("text", "text"),
]


@pytest.mark.parametrize(("value", "text"), CASES)
def test_fmt_num_reads_as_the_rule_says(value: object, text: str) -> None:
    assert fmt_num(value) == text


def test_fmt_num_reads_numpy_numbers_as_python_ones() -> None:
    assert fmt_num(np.float64(1234567.8)) == "1234568"
    assert fmt_num(np.float32(0.1)) == "0.1"
    assert fmt_num(np.int64(-7)) == "-7"
    assert fmt_num(np.bool_(True)) == "True"


def random_numbers(n: int = 4000) -> list[float]:
    """Numbers of every magnitude the rule distinguishes, ties (x.5, x.125) and whole ones."""
    rng = random.Random(26)
    out: list[float] = []
    for _ in range(n):
        exponent = rng.randint(-9, 20)
        value = rng.random() * 10.0**exponent
        pick = rng.random()
        if pick < 0.15:
            value = round(value, rng.randint(0, 4))  # few decimals: halves and whole numbers
        elif pick < 0.25:
            value = math.floor(value * 8) / 8  # exact binary ties: .125, .5, .875
        out.append(-value if rng.random() < 0.3 else value)
    return out


def js_fmt_source() -> str:
    """The pages' shared script (templates/_common_js.html) as the server sends it."""
    import tornado.template
    from mlwidget_server.pages import TEMPLATES

    return tornado.template.Loader(TEMPLATES).load("_common_js.html").generate().decode()


@needs_chromium
def test_the_pages_read_numbers_as_fmt_num_does() -> None:
    # numbers travel as their shortest text (repr): JavaScript's Number() reads back the same
    # double; NaN and the infinities are not JSON, so every value goes as text or a literal
    values = [v for v, _ in CASES] + random_numbers()
    wire = [
        {"number": repr(float(v)).replace("inf", "Infinity")}
        if isinstance(v, float)
        else {"number": str(v)}
        if isinstance(v, int) and not isinstance(v, bool)
        else {"value": v}
        for v in values
    ]
    script = (
        "(cases) => {\n" + js_fmt_source() + "\nreturn cases.map((c) => "
        "fmt('number' in c ? Number(c.number) : c.value));\n}"
    )
    with chromium_page("about:blank") as (page, errors):
        shown = page.evaluate(script, wire)
        assert not errors, errors
    expected = [fmt_num(v) for v in values]
    differ = [
        (json.dumps(w), js, py) for w, js, py in zip(wire, shown, expected, strict=True) if js != py
    ]
    assert not differ, differ[:20]
    assert shown[: len(CASES)] == [text for _, text in CASES]
