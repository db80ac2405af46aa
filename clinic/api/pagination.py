"""List pagination, `{"results", "next", "previous"}`; `?page_size=` clamped to 200.

A page that does not exist (`?page=0`, `?page=x`, past the last one, a cursor that is not ours)
is the client's malformed parameter: 400 `invalid` naming it, not DRF's 404, which a client
would read as "the list is gone"."""

from typing import Any

from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


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
    """Pages by number, each read in one query: the page's rows and one more, which tells
    whether a next page exists. The answer carries no count, so nothing is counted (Django's
    paginator sends a COUNT(*) first, as costly as the page itself on a filtered list).

    The same pages and the same errors as DRF's with Django's paginator: page 1 of an empty
    list is an empty page; a page past the last one is 400 `invalid` on `page`."""

    # `?page=last` is not a number: the schema says integer.
    last_page_strings = ()
    # An offset PostgreSQL can take (bigint); a page number beyond it is past any list's end.
    MAX_OFFSET = 2**62

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        number = _positive_integer(request, self.page_query_param) or 1
        self.request = request
        size = self.get_page_size(request)
        if not size:
            return None
        offset = (number - 1) * size
        rows = list(queryset[offset : offset + size + 1]) if offset <= self.MAX_OFFSET else []
        if not rows and number > 1:
            raise exceptions.ValidationError(
                {self.page_query_param: [str(self.invalid_page_message)]}
            )
        self.number, self.has_next = number, len(rows) > size
        return rows[:size]

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.page_query_param, self.number + 1)

    def get_previous_link(self) -> str | None:
        if self.number == 1:
            return None
        url = self.request.build_absolute_uri()
        if self.number == 2:
            return remove_query_param(url, self.page_query_param)
        return replace_query_param(url, self.page_query_param, self.number - 1)

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
