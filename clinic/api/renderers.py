"""The API's JSON, written by orjson: DRF's JSONRenderer's output, in a twentieth of the time.

DRF renders with the standard library's encoder, which walks a page of a hundred rows' dicts
at about 100 MB/s (0.2 ms for a page of 50 audit events, docs/benchmarks.md, sixth round);
orjson writes the same page in 11 µs. The body is what DRF writes, byte for byte, for the values
a serializer returns (str, int, bool, None, dicts and lists of them): compact, UTF-8 rather
than \\u escapes, U+2028 and U+2029 escaped. Anything else is written as DRF writes it:
datetimes, dates and times are handed to DRF's own encoder (orjson would write them its own
way), as are lazy strings, decimals and the rest. A body orjson refuses (an integer beyond 64
bits, a key that is not a string, text that is not valid Unicode) is rendered by DRF's renderer,
with its results and errors; so is an `Accept: application/json; indent=N` (orjson indents by
two only). One difference is left: a float that is not finite (NaN, infinity) is written as
null, where DRF's strict renderer fails the response. No serializer of this API returns a float
(measurements are decimals, written as strings)."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

# DRF's encoder for what orjson hands over (its `default` needs no encoder state).
_drf_default = JSONEncoder().default
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(data: Any) -> bytes:
    """`data` as DRF's JSONRenderer writes it (compact, no indent)."""
    try:
        body = orjson.dumps(data, default=_drf_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return renderers.JSONRenderer().render(data)
    # JSON that is also a strict JavaScript subset, as DRF's.
    if b"\xe2\x80\xa8" in body or b"\xe2\x80\xa9" in body:
        body = body.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    return body


class JSONRenderer(renderers.JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        if (
            self.ensure_ascii
            or not self.compact
            or self.get_indent(accepted_media_type, renderer_context or {}) is not None
        ):
            return super().render(data, accepted_media_type, renderer_context)
        return dumps(data)
