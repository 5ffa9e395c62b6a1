"""Readers for the files a user brings: plain text, labelled records, CoNLL-U.

Each reader takes a path (``.gz`` is decompressed), decodes UTF-8 with replacement (warning once,
with file and line), and raises ``DataError`` naming the file and line of anything it cannot use.
"""

from __future__ import annotations

import csv
import gzip
import json
import warnings
from pathlib import Path

__all__ = ["DataError", "read_text", "read_records", "read_conllu"]


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and line."""


def _lines(path: Path) -> list[str]:
    """Lines of a text file; undecodable bytes become U+FFFD with one warning per file."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark (Excel exports) is dropped
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        warnings.warn(
            f"{path}:{line}: bytes that are not UTF-8; decoded with replacement characters",
            stacklevel=3,
        )
        text = data.decode("utf-8-sig", errors="replace")
    # Split on "\n" only: str.splitlines would also split on U+2028, U+0085 and friends,
    # which JSON strings may hold.
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def read_text(path: str | Path) -> str:
    """The whole text of a file (for language models)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    text = "".join(_lines(path))
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected text to train on")
    return text


def read_records(
    path: str | Path, text_field: str = "text", label_field: str = "label"
) -> list[tuple[str, str]]:
    """(text, label) pairs from JSON Lines, CSV or TSV (with a header row naming the fields)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    kind = path.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    lines = _lines(path)
    records: list[tuple[str, str]] = []
    if kind in ("jsonl", "json"):
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON: {error.msg}") from None
            if not isinstance(row, dict) or text_field not in row or label_field not in row:
                raise DataError(
                    f"{path}:{number}: expected an object with fields {text_field!r} and "
                    f"{label_field!r}, got {line.strip()[:80]!r}"
                )
            records.append((str(row[text_field]), str(row[label_field])))
    elif kind in ("csv", "tsv"):
        reader = csv.reader(lines, delimiter="\t" if kind == "tsv" else ",")
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the file is empty; expected a header row and records")
        for name in (text_field, label_field):
            if name not in header:
                raise DataError(f"{path}:1: header has no column {name!r}; columns: {header}")
        text_at, label_at = header.index(text_field), header.index(label_field)
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}:{reader.line_num}: expected {len(header)} columns, got {len(row)}"
                )
            records.append((row[text_at], row[label_at]))
    else:
        raise DataError(f"{path}: expected a .jsonl, .csv or .tsv file (optionally .gz)")
    if not records:
        raise DataError(f"{path}: the file has no records")
    return records


def read_conllu(path: str | Path, column: int = 3) -> list[tuple[list[str], list[str]]]:
    """(words, tags) per sentence of a CoNLL-U file; ``column`` 3 is UPOS.

    Multi-word token lines (ids like ``3-4``) and empty nodes (``5.1``) are skipped.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(_lines(path), 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(
                f"{path}:{number}: expected 10 tab-separated columns, got {len(fields)}"
            )
        if "-" in fields[0] or "." in fields[0]:
            continue
        words.append(fields[1])
        tags.append(fields[column])
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise DataError(f"{path}: the file has no sentences")
    return sentences
