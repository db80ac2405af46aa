"""What `OPTIONS` answers: the view's name, description and media types, with `Allow`.

DRF's SimpleMetadata also describes the POST/PUT body by building the view's serializer for a
cloned request, and `get_object()` for PUT. Views whose body serializer depends on the action
(the treatment record, its amendments, a recall) or that declare none then fail with a 500
for the very roles allowed to write. The OpenAPI schema (`/api/schema/`) already describes every
body exactly, so OPTIONS does not repeat it: it needs no object and no request data, and
cannot fail on any endpoint.
"""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request


class ClinicMetadata(SimpleMetadata):
    def determine_metadata(self, request: Request, view: Any) -> dict[str, Any]:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
            "schema": "/api/schema/",
        }
