"""A small reader of protobuf text format (Triton's config.pbtxt), for tests without tritonclient.

Messages become dicts, `[...]` lists become lists, a field given more than once becomes a
list of its values; enum values (bare identifiers) become `Ident` so that a test can tell
them from quoted strings.
"""

from __future__ import annotations

import json
import re

TOKEN = re.compile(r'\s+|#[^\n]*|(?P<tok>"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_.]*|[{}\[\]:,])')


class Ident(str):
    """A bare identifier: an enum value or true/false."""


def tokens(text: str) -> list[str]:
    found, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"unexpected text at {position}: {text[position:position + 20]!r}")
        if match.group("tok"):
            found.append(match.group("tok"))
        position = match.end()
    return found


def parse(text: str) -> dict:
    return parse_message(tokens(text), 0, closing=None)[0]


def parse_message(items: list[str], i: int, closing: str | None) -> tuple[dict, int]:
    message: dict = {}
    while i < len(items) and items[i] != closing:
        key = items[i]
        i += 1
        if items[i] == ":":
            i += 1
        value, i = parse_value(items, i)
        if key in message:
            previous = message[key]
            message[key] = (previous if isinstance(previous, list) else [previous]) + (
                value if isinstance(value, list) else [value])
        else:
            message[key] = value
    if closing is not None and i >= len(items):
        raise ValueError(f"missing {closing!r}")
    return message, i + (closing is not None)


def parse_value(items: list[str], i: int):
    token = items[i]
    if token == "{":
        return parse_message(items, i + 1, closing="}")
    if token == "[":
        values, i = [], i + 1
        while items[i] != "]":
            value, i = parse_value(items, i)
            values.append(value)
            if items[i] == ",":
                i += 1
        return values, i + 1
    if token.startswith('"'):
        return json.loads(token), i + 1
    if re.fullmatch(r"-?\d+", token):
        return int(token), i + 1
    if re.fullmatch(r"-?\d+\.\d+", token):
        return float(token), i + 1
    return Ident(token), i + 1
