"""One table helper: records as aligned text, Markdown, JSON or CSV.

Every table emotune prints or writes goes through ``render``; it imports nothing heavy (a
DataFrame is read through its ``to_dict``), so the command line stays fast to start.

Example:

>>> print(render([{"model": "gru", "val_accuracy": 0.91}], fmt="markdown"))
| model | val_accuracy |
|---|---|
| gru | 0.9100 |
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from emotune.config import flatten, plain

FORMATS = ("table", "markdown", "json", "csv")


def cell(value: Any) -> str:
    """A value for reading: floats to 4 places (whole numbers without them), the rest as str."""
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.4f}"
    return str(value)


def to_json(value: Any) -> str:
    """``value`` as indented JSON text: NaN and infinities as null, tuples and numpy arrays as
    lists, numpy scalars as numbers, paths and other objects as strings."""
    return json.dumps(_json(value), indent=2)


def _json(value: Any) -> Any:
    """``config.plain(value)`` and what JSON needs on top: NaN and infinities as None, numpy
    arrays as lists, keys and other objects (paths) as strings."""
    value = plain(value)
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if hasattr(value, "tolist"):  # a numpy array (plain turns scalars only)
        return _json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _records(records: Any) -> list[dict[str, Any]]:
    if hasattr(records, "to_dict"):  # a pandas DataFrame
        return records.to_dict("records")
    return [dict(r) for r in records]


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def render(records: Any, columns: Sequence[str] | None = None, fmt: str = "table", *,
           headers: Mapping[str, str] | None = None,
           cells: Mapping[str, Callable[[Any], str]] | None = None,
           align: str | Mapping[str, str] = ">", sep: str = "  ",
           min_width: Mapping[str, int] | None = None) -> str:
    """Render ``records`` as text in one of ``FORMATS``.

    Args:
        records: a sequence of mappings, one per row, or a pandas DataFrame.
        columns: the columns, in order (default: every key, in the order first seen). In
            ``table``, ``markdown`` and ``csv``, nested mappings are flattened into dotted
            columns first (``probabilities.joy``); ``json`` keeps them nested.
        fmt: ``"table"`` (aligned plain text with a header row), ``"markdown"`` (a pipe
            table), ``"json"`` (a list of objects; NaN as null) or ``"csv"`` (a header row,
            then one line per record, full precision).
        headers: column titles for ``table`` and ``markdown`` (default: the column names).
        cells: per-column formatters for ``table`` and ``markdown`` (default: ``cell``).
        align: ``">"`` (right) or ``"<"`` (left) for ``table``; a mapping sets it per column
            (columns it leaves out are right-aligned).
        sep: what separates ``table`` columns.
        min_width: per-column minimum widths for ``table``.

    Returns:
        The text, without a final newline. A key a record lacks is an empty cell (null in
        JSON).

    Raises:
        ValueError: ``fmt`` is not one of ``FORMATS``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {', '.join(FORMATS)}. Received: fmt={fmt!r}")
    rows = _records(records)
    if fmt == "json":
        if columns is not None:
            rows = [{c: r.get(c) for c in columns} for r in rows]
        return to_json(rows)
    rows = [flatten(r) for r in rows]
    cols = list(columns) if columns is not None else _columns(rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows([[_csv_cell(r.get(c)) for c in cols] for r in rows])
        return buf.getvalue().rstrip("\n")
    head = [(headers or {}).get(c, c) for c in cols]
    formats = cells or {}
    body = [["" if c not in r else formats.get(c, cell)(r[c]) for c in cols] for r in rows]
    if fmt == "markdown":
        lines = [head, *body]
        out = ["| " + " | ".join(v.replace("|", "\\|") for v in line) + " |" for line in lines]
        out.insert(1, "|" + "---|" * len(cols))
        return "\n".join(out)
    sides = {c: align if isinstance(align, str) else align.get(c, ">") for c in cols}
    widths = [max([len(line[i]) for line in [head, *body]] + [(min_width or {}).get(c, 0)])
              for i, c in enumerate(cols)]
    return "\n".join(sep.join(v.ljust(w) if sides[c] == "<" else v.rjust(w)
                              for v, w, c in zip(line, widths, cols)).rstrip()
                     for line in [head, *body])


def _csv_cell(value: Any) -> Any:
    value = _json(value)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value
