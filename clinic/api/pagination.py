"""List pagination, `{"results", "next", "previous"}`; `?page_size=` clamped to 200.

A page that does not exist (`?page=0`, `?page=x`, past the last one, a cursor that is not ours)
is the client's malformed parameter: 400 `invalid` naming it, not DRF's 404, which a client
would read as "the list is gone"."""

from typing import Any

from rest_framework import exceptions, pagination
from rest_framework.response import Response


def _page(data: Any, paginator: Any) -> Response:
    return Response(
        {
            "results": data,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
        }
    )


def _page_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["results", "next", "previous"],
        "properties": {
            "results": schema,
            "next": {"type": "string", "nullable": True, "format": "uri"},
            "previous": {"type": "string", "nullable": True, "format": "uri"},
        },
    }


def _invalid(parameter: str, exc: exceptions.NotFound) -> exceptions.ValidationError:
    return exceptions.ValidationError({parameter: [str(exc.detail)]})


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as exc:
            raise _invalid(self.page_query_param, exc) from exc

    def get_paginated_response(self, data: Any) -> Response:
        return _page(data, self)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _page_schema(schema)


class CursorPagination(pagination.CursorPagination):
    """Opaque cursors: pages stay right while rows keep arriving at the head."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise _invalid(self.cursor_query_param, exc) from exc

    def get_paginated_response(self, data: Any) -> Response:
        return _page(data, self)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _page_schema(schema)
