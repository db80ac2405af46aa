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


def _positive_integer(request: Any, parameter: str) -> int | None:
    """The parameter as a whole number from 1, None when absent; anything else (0, -1, 1.5,
    x, an empty value, `last`) is the client's mistake, 400, never quietly the default."""
    if parameter not in request.query_params:
        return None
    value = request.query_params[parameter]
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise exceptions.ValidationError({parameter: ["Enter a whole number from 1."]})
    return int(value)


def _with_minimum(parameters: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    for parameter in parameters:
        if parameter["name"] in names:
            parameter["schema"] = {**parameter["schema"], "minimum": 1}
    return parameters


class StrictPageSize:
    """`?page_size=` is a whole number from 1; above max_page_size it is clamped (the contract)."""

    page_size_query_param = "page_size"
    max_page_size = 200
    page_size: int | None

    def get_page_size(self, request: Any) -> int | None:
        size = _positive_integer(request, self.page_size_query_param)
        if size is None:
            return self.page_size
        return min(size, self.max_page_size)


class PageNumberPagination(StrictPageSize, pagination.PageNumberPagination):
    # `?page=last` is not a number: the schema says integer.
    last_page_strings = ()

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        _positive_integer(request, self.page_query_param)
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as exc:
            raise _invalid(self.page_query_param, exc) from exc

    def get_paginated_response(self, data: Any) -> Response:
        return _page(data, self)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _page_schema(schema)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return _with_minimum(
            super().get_schema_operation_parameters(view),
            (self.page_query_param, self.page_size_query_param),
        )


class CursorPagination(StrictPageSize, pagination.CursorPagination):
    """Opaque cursors: pages stay right while rows keep arriving at the head."""

    page_size = 50

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise _invalid(self.cursor_query_param, exc) from exc

    def get_paginated_response(self, data: Any) -> Response:
        return _page(data, self)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _page_schema(schema)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return _with_minimum(
            super().get_schema_operation_parameters(view), (self.page_size_query_param,)
        )
