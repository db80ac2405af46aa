"""The API's JSON parser: DRF's, with a limit on how deeply a body may nest.

Python's json module recurses once per level: a body of a few kilobytes nested 1,000 deep
raises RecursionError (a 500), on any endpoint that reads a body, the anonymous login
included. No body of ours nests more than a few levels, so anything deeper than
MAX_JSON_DEPTH is refused as malformed (400 `invalid`) before it is decoded.
"""

from __future__ import annotations

import io
import json
import re
from itertools import accumulate
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32

# A JSON string (its escapes included), so the brackets inside it are not counted.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def nesting_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest, at C speed: strings removed,
    then the running sum of +1 per opening and -1 per closing bracket."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_A_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


TOO_DEEP = f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep."


def loads(body: bytes) -> Any:
    """json.loads, refusing (ValueError) a text nested deeper than MAX_JSON_DEPTH."""
    if nesting_depth(body) > MAX_JSON_DEPTH:
        raise ValueError(TOO_DEEP)
    return json.loads(body)


class DepthLimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        body = stream.read() if stream is not None else b""
        if nesting_depth(body) > MAX_JSON_DEPTH:
            raise ParseError(TOO_DEEP)
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError as exc:  # cannot happen within the limit; never a 500 if it does
            raise ParseError(TOO_DEEP) from exc
