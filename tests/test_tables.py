"""emotune.tables: the one helper behind every printed and written table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotune.baseline import baseline_markdown
from emotune.config import plain
from emotune.tables import render, to_json


def test_render_every_format():
    rows = [{"name": "a|b", "acc": 0.91234, "n": 3, "p": {"joy": 0.5}},
            {"name": "c, d", "acc": float("nan"), "n": None}]
    assert render(rows, fmt="table") == ("name     acc     n   p.joy\n"
                                         " a|b  0.9123     3  0.5000\n"
                                         "c, d     nan  None")
    assert render(rows, ["name", "acc"], "table", align="<", sep=" | ") == (
        "name | acc\na|b  | 0.9123\nc, d | nan")
    assert render(rows, ["n"], min_width={"n": 4}) == "   n\n   3\nNone"
    assert render(rows, fmt="markdown").split("\n") == [
        "| name | acc | n | p.joy |", "|---|---|---|---|", "| a\\|b | 0.9123 | 3 | 0.5000 |",
        "| c, d | nan | None |  |"]
    assert render(rows, fmt="csv").split("\n") == [
        "name,acc,n,p.joy", "a|b,0.91234,3,0.5", '"c, d",,,']
    assert json.loads(render(rows, fmt="json")) == [
        {"name": "a|b", "acc": 0.91234, "n": 3, "p": {"joy": 0.5}},
        {"name": "c, d", "acc": None, "n": None}]
    assert json.loads(render(pd.DataFrame(rows[:1]), ["n", "name"], "json")) == [
        {"n": 3, "name": "a|b"}]
    assert render([], ["x", "y"], "csv") == "x,y"
    with pytest.raises(ValueError, match="Received: fmt='yaml'"):
        render(rows, fmt="yaml")


def test_json_is_config_plain_made_safe_for_json():
    value = {"k": (3, 4), "lr": np.float64(0.01), "n": np.int64(7), "arr": np.array([1.5, np.nan]),
             "bad": [float("nan"), float("inf"), np.float32("-inf")], "path": Path("a/b"),
             1: {"ok": True, "none": None}}
    assert json.loads(to_json(value)) == {
        "k": [3, 4], "lr": 0.01, "n": 7, "arr": [1.5, None], "bad": [None, None, None],
        "path": "a/b", "1": {"ok": True, "none": None}}
    # Where config.plain's value is already JSON, it is exactly that value.
    finite = {"k": (3, 4), "lr": np.float64(0.01), "nested": [{"x": np.int32(2)}]}
    assert json.loads(to_json(finite)) == plain(finite)
    assert render([{"x": np.float64("nan")}], fmt="json") == '[\n  {\n    "x": null\n  }\n]'


def test_baseline_markdown_by_hand():
    result = {"majority": {"label": "joy", "val": {"accuracy": 0.35, "macro_f1": 0.08},
                           "test": {"accuracy": 0.34, "macro_f1": 0.07}},
              "tfidf_logreg": {"C": 16.0, "val": {"accuracy": 0.88, "macro_f1": 0.85},
                               "test": {"accuracy": 0.87, "macro_f1": 0.84}}}
    assert baseline_markdown(result) == (
        "| baseline | val acc | val macro-F1 | test acc | test macro-F1 |\n"
        "|---|---|---|---|---|\n"
        "| majority class (joy) | 0.3500 | 0.0800 | 0.3400 | 0.0700 |\n"
        "| TF-IDF 1-2 grams + logistic regression (C=16, chosen on val) | 0.8800 | 0.8500 | "
        "0.8700 | 0.8400 |\n")
