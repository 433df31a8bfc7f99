"""How much a JSON body would cost to parse, measured on its raw bytes before parsing.

Parsing builds one Python object per value: a 9 MB array of tiny objects becomes about a
million dicts (over 100 MB). ``check_shape`` counts values and measures nesting without
building any: string literals are skipped (found by a C-level regex), and between them commas
and brackets are counted by ``bytes.count``. A body refused here was never parsed.
"""

from __future__ import annotations

import itertools
import re

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


class ShapeError(ValueError):
    pass


def check_shape(body: bytes, *, max_values: int, max_depth: int) -> None:
    """Raise ShapeError when ``body`` holds more than ``max_values`` values or nests deeper
    than ``max_depth``. Malformed JSON is left for the parser to report.

    The body is walked gap by gap between string literals, so nothing the size of the body is
    built (``re.sub`` would build one piece per string), and the walk stops at the first limit
    passed: an oversized body costs only as much as the part of it that passed.
    """
    # Every value but the first follows a comma or opens a container (empty containers are
    # over-counted by one, which errs on the side of the limit).
    values, depth, position = 1, 0, 0
    for match in itertools.chain(_STRING.finditer(body), (None,)):
        end = match.start() if match is not None else len(body)
        if end > position:
            values += sum(body.count(mark, position, end) for mark in (b",", b"[", b"{"))
            if values > max_values:
                raise ShapeError(f"the request body holds more than {max_values} JSON values")
            for byte in body[position:end].translate(None, _NOT_BRACKETS):
                if byte in b"[{":
                    depth += 1
                    if depth > max_depth:
                        raise ShapeError(f"the request body nests deeper than {max_depth} levels")
                else:
                    depth -= 1
        if match is None:
            return
        position = match.end()
