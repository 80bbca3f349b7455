"""Hypothesis strategies that break the real answer shapes of tests/cases/ the way peers and proxies do.

A case file is loaded into a plain JSON tree, then changed at random places (a key dropped, a value
of the wrong type, an unknown field, a node nested deeper or chained inside itself, a repeated key)
and encoded by our own encoder, which can also write what ``json.dumps`` cannot: repeated keys,
``NaN``, numbers of thousands of digits, text that is not UTF-8, nesting thousands deep. Last, the
bytes themselves may be cut, wrapped in HTML, emptied or corrupted.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import strategies as st

CASES = Path(__file__).resolve().parent.parent / "cases"

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1  # a Java long: the widest number a Hadoop daemon sends


def case_tree(name: str) -> Any:
    return json.loads((CASES / name).read_bytes())


@dataclass(frozen=True)
class Tok:
    """JSON text written verbatim (may be invalid on purpose)."""

    raw: bytes


@dataclass(frozen=True)
class Dup:
    """A JSON object written with its pairs as given, repeated keys included."""

    pairs: tuple[tuple[str, Any], ...]


def encode(node: Any) -> bytes:
    if isinstance(node, Tok):
        return node.raw
    if isinstance(node, Dup):
        return b"{" + b",".join(_key(k) + b":" + encode(v) for k, v in node.pairs) + b"}"
    if isinstance(node, dict):
        return b"{" + b",".join(_key(k) + b":" + encode(v) for k, v in node.items()) + b"}"
    if isinstance(node, list):
        return b"[" + b",".join(encode(v) for v in node) + b"]"
    if isinstance(node, float) and not math.isfinite(node):
        return b"null"
    return json.dumps(node, ensure_ascii=False).encode()


def _key(key: str) -> bytes:
    return json.dumps(key, ensure_ascii=False).encode()


def deep(n: int, open_: bytes = b"[", close: bytes = b"]", inner: bytes = b"1") -> Tok:
    return Tok(open_ * n + inner + close * n)


# Values of the wrong type or out of every sane range, by kind (each kind is drawn as often).
_NUMBERS: list[Any] = [
    0, -1, 1, 2**31, LONG_MAX, LONG_MAX + 1, LONG_MIN, LONG_MIN - 1, 2**64, 10**30, 1.5, -0.0, 1e308,
    Tok(b"1e400"), Tok(b"-1e400"), Tok(b"1" * 5000), Tok(b"-" + b"9" * 30), Tok(b"1E2"),
]
_TEXTS: list[Any] = [
    "", "abc", "NaN", "Infinity", "-Infinity", "-1", "1e3", "1.5", "0x10", "²", "٣", "--5", " 12 ", "true",
    "null", str(LONG_MAX + 1), "9" * 5000, "é😀\u200b\x00", "x" * 100_000, "application_1_1", "RUNNING",
    Tok(b'"\\u00e9\\n\\t"'), Tok(b'"\xff\xfe"'), Tok(b'"\xed\xa0\x80"'),  # the last: Java's lone surrogate
]
_OTHERS: list[Any] = [None, True, False, [], {}, [1, 2], [None], {"a": 1}, {"queue": None}, {"entry": []}]
# What makes the whole text unusable for every JSON decoder: bare NaN, a lone surrogate escape,
# nesting past every decoder's limit. One broken record inside a valid answer cannot carry these.
_INVALID: list[Any] = [
    Tok(b"NaN"), Tok(b"Infinity"), Tok(b"-Infinity"), Tok(b'"\\ud800"'), deep(1100), deep(3000),
    deep(1500, b'{"a":', b"}"),
]

_FREE = object()  # stands for a value hypothesis draws (any integer, float or text)


def _odd_value(rnd: random.Random, draw: st.DrawFn, valid_json: bool) -> Any:
    """One bad value; each kind as likely as the others (hypothesis's own choices favour the first)."""
    kinds = [_NUMBERS, _TEXTS, _OTHERS] + ([] if valid_json else [_INVALID])
    value = rnd.choice([*rnd.choice(kinds), _FREE])
    if value is _FREE:
        value = draw(st.one_of(st.integers(), st.integers(LONG_MIN - 10, LONG_MAX + 10), st.text(max_size=30),
                               st.floats(allow_nan=False, allow_infinity=False), st.just(deep(60))))
    return copy.deepcopy(value)  # a later mutation may change a drawn {} or [] in place


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a tree (the root included), as key/index tuples."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += paths(value, (*prefix, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for step in path:
        node = node[step]
    return node


def _set(root: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _chain(node: dict, key: str, depth: int) -> Tok:
    """``node`` nested inside itself ``depth`` times through ``key`` (queues inside queues...)."""
    hole = Tok(b"\x00HOLE\x00")
    outer, inner = encode({**node, key: hole}).split(hole.raw)
    return Tok(outer * depth + encode(node) + inner * depth)


@st.composite
def mutate_tree(draw: st.DrawFn, tree: Any, under: tuple = (), valid_json: bool = False) -> Any:
    """``tree`` (not modified) changed at 1 to 4 places (mostly one) at or below the path ``under``.

    Choices go through a hypothesis-driven ``Random``: uniform (every place, operation and bad
    value as likely), yet reproducible, derandomizable and shrinkable.
    """
    rnd = draw(st.randoms(use_true_random=False))
    tree = copy.deepcopy(tree)
    for _ in range(rnd.choice([1, 1, 1, 2, 4])):
        places = [p for p in paths(tree) if p[: len(under)] == under]
        if not places:
            break
        where = rnd.choice(places)
        node = _get(tree, where)
        ops = ["replace", "replace", "replace", "wrap", "copy_other"]
        if where:
            ops.append("drop")
        if isinstance(node, dict):
            ops += ["unknown_field", "duplicate_key", "chain"] if node else ["unknown_field"]
        if isinstance(node, list) and node:
            ops += ["duplicate_item"]
        op = rnd.choice(ops)
        if op == "replace":
            tree = _set(tree, where, _odd_value(rnd, draw, valid_json))
        elif op == "wrap":  # nest deeper: a list for an object, an object for a value
            wrapper = rnd.choice(["list", "object", "queue"])
            tree = _set(tree, where, [node] if wrapper == "list" else {wrapper if wrapper == "queue" else "x": node})
        elif op == "copy_other":  # a node of another shape where this one belongs
            tree = _set(tree, where, copy.deepcopy(_get(tree, rnd.choice(paths(tree)))))
        elif op == "drop":
            parent = _get(tree, where[:-1])
            if isinstance(parent, (dict, list)):
                del parent[where[-1]]
            if where == under:  # gone: a list index would now name its neighbour
                break
        elif op == "unknown_field":
            node[draw(st.text(max_size=12))] = _odd_value(rnd, draw, valid_json)
        elif op == "duplicate_key":  # the repeat comes first or last: decoders keep different ones
            key = rnd.choice(sorted(node))
            pairs = list(node.items())
            extra = (key, _odd_value(rnd, draw, valid_json))
            tree = _set(tree, where, Dup(tuple([extra, *pairs] if rnd.random() < 0.5 else [*pairs, extra])))
        elif op == "chain":
            key = rnd.choice(sorted(node))
            depth = rnd.choice([2, 30, 400, 1000] if not valid_json else [2, 30, 150])
            tree = _set(tree, where, _chain(node, key, depth))
        elif op == "duplicate_item":
            node.append(copy.deepcopy(rnd.choice(node)))
        if isinstance(tree, (Tok, Dup)):  # the root itself is now verbatim text: stop here
            break
    return tree


@st.composite
def mutate_bytes(draw: st.DrawFn, body: bytes) -> bytes:
    """Damage done to the bytes on the way: cut, wrapped, emptied, corrupted."""
    rnd = draw(st.randoms(use_true_random=False))
    op = rnd.choice(["truncate", "html", "empty", "flip", "insert", "prefix", "twice", "text"])
    if op == "truncate":
        return body[: rnd.randint(0, max(0, len(body) - 1))]
    if op == "html":
        return b"<html><head><title>Error 502</title></head><body><pre>" + body + b"</pre></body></html>"
    if op == "empty":
        return b""
    if op == "flip":
        i = rnd.randint(0, max(0, len(body) - 1))
        return body[:i] + bytes([rnd.randint(0, 255)]) + body[i + 1 :]
    if op == "insert":
        i = rnd.randint(0, len(body))
        return body[:i] + draw(st.binary(min_size=1, max_size=8)) + body[i:]
    if op == "prefix":
        return rnd.choice([b"\xef\xbb\xbf", b"  \n", b")]}',\n", b"\x00"]) + body
    if op == "twice":
        return body + body
    return rnd.choice([
        b"This is standby RM. The redirect url is: /ws/v1/cluster/apps",
        b"There is no active RM right now.\nHA Zookeeper Connection State: CONNECTING",
        b"no such app: application_1700000000000_0050", b"null", b"[]", b"{}", b"0", b'"apps"',
    ])


@st.composite
def bad_bodies(draw: st.DrawFn, *trees: Any) -> bytes:
    """One of ``trees`` with its content mutated, its bytes damaged, or both."""
    rnd = draw(st.randoms(use_true_random=False))
    tree = rnd.choice(trees)
    kind = rnd.choice(["tree"] * 6 + ["bytes", "both"])
    body = encode(draw(mutate_tree(tree)) if kind != "bytes" else tree)
    return draw(mutate_bytes(body)) if kind != "tree" else body


# --- invariants of typed records -------------------------------------------------------------------

def check_typed(value: Any, annotation: Any, where: str = "$") -> None:
    """``value`` is of the declared type, recursively; every integer fits a Java long (what the
    events can encode). msgspec structs are checked field by field from their own annotations."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metas = typing.get_args(annotation)
        check_typed(value, base, where)
        for meta in metas:
            if isinstance(meta, msgspec.Meta):
                assert meta.ge is None or value >= meta.ge, f"{where}: {value!r} < {meta.ge}"
                assert meta.le is None or value <= meta.le, f"{where}: {value!r} > {meta.le}"
                assert meta.pattern is None or __import__("re").search(meta.pattern, value), f"{where}: {value!r}"
        return
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        errors = []
        for option in options:
            try:
                check_typed(value, option, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} is none of {annotation}: {errors}")
    if origin is typing.Literal:
        assert value in typing.get_args(annotation), f"{where}: {value!r} not in {annotation}"
        return
    if annotation is type(None) or annotation is None:
        assert value is None, f"{where}: {value!r} is not None"
        return
    if origin is list:
        assert isinstance(value, list), f"{where}: {type(value).__name__} is not a list"
        (item,) = typing.get_args(annotation)
        for i, v in enumerate(value):
            check_typed(v, item, f"{where}[{i}]")
        return
    if origin is dict:
        assert isinstance(value, dict), f"{where}: {type(value).__name__} is not a dict"
        key_type, value_type = typing.get_args(annotation)
        for k, v in value.items():
            check_typed(k, key_type, f"{where}.<key>")
            check_typed(v, value_type, f"{where}.{k}")
        return
    if annotation is msgspec.Raw:
        assert isinstance(value, msgspec.Raw), f"{where}: not Raw"
        return
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        assert isinstance(value, annotation), f"{where}: {type(value).__name__} is not {annotation.__name__}"
        for field in msgspec.structs.fields(annotation):
            check_typed(getattr(value, field.name), field.type, f"{where}.{field.name}")
        return
    if annotation is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an int"
        assert LONG_MIN <= value <= LONG_MAX, f"{where}: {value} does not fit a long"
        return
    if annotation is float:
        assert isinstance(value, float), f"{where}: {value!r} is not a float"
        return
    if annotation in (str, bool):
        assert type(value) is annotation, f"{where}: {value!r} is not {annotation.__name__}"
        return
    raise AssertionError(f"{where}: no check for {annotation!r}")
