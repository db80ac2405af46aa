"""Model instances from a hand-written SELECT, for the few reads every request makes.

Building a queryset and compiling it costs more Python than PostgreSQL spends answering a
lookup by key (about 0.5 ms of the token's 0.9 ms per request, docs/benchmarks.md). For such a
read the SQL is written once, from the models' own metadata, and each row becomes instances
exactly as the ORM would make them: the same columns, the same converters (`from_db_value`,
the backend's), `Model.from_db`, so the instances are saved, refreshed and compared like any
other. Anything but a constant-shaped lookup on the hot path goes through the ORM.

`CompiledQuery` is the same idea for a values_list() query the ORM writes: built and compiled
once per shape, then run as its SQL (booking's and availability's slot reads).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from django.db import connections, router
from django.db.models import Field, Model, QuerySet
from psycopg.types.range import Range


class Columns:
    """One model's concrete columns under a table alias, in a hand-written SELECT."""

    def __init__(self, model: type[Model], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields: list[Field] = list(model._meta.concrete_fields)
        self.names = [field.attname for field in self.fields]
        self._converters: dict[str, list[tuple[int, Any, list[Callable[..., Any]]]]] = {}

    @property
    def table(self) -> str:
        return f"{self.model._meta.db_table} {self.alias}"

    @property
    def select(self) -> str:
        return ", ".join(f"{self.alias}.{field.column}" for field in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def converters(self, using: str) -> list[tuple[int, Any, list[Callable[..., Any]]]]:
        """(position, column, converters) of the columns that have any, as the ORM's compiler
        would apply them to the same column."""
        if using not in self._converters:
            connection = connections[using]
            found = []
            for position, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                functions = connection.ops.get_db_converters(column) + column.get_db_converters(
                    connection
                )
                if functions:
                    found.append((position, column, functions))
            self._converters[using] = found
        return self._converters[using]

    def instance(self, row: Sequence[Any], start: int, using: str) -> Model | None:
        """The instance held in row[start:start + len(self)]; None if the columns are all NULL
        (the far side of a LEFT JOIN that found nothing)."""
        values = list(row[start : start + len(self.fields)])
        if values[0] is None and not any(values):
            return None
        connection = connections[using]
        for position, column, functions in self.converters(using):
            for convert in functions:
                values[position] = convert(values[position], column, connection)
        return self.model.from_db(using, self.names, values)


class CompiledQuery:
    """A values_list() query the ORM builds and compiles once per shape, then run as its SQL
    with each call's values.

    `build(**values)` returns the queryset (of `model`, which routes it). Each value is a UUID,
    a datetime or None; which of them are None is the shape (the build may branch on it), so a
    query is compiled once per shape and database. The build is given a unique stand-in for
    each value and the compiled parameters are mapped back to them, also inside ranges
    (`span__overlap=(start, end)`); a UUID or datetime parameter that is not one of the
    stand-ins (computed inside the build) is refused when the query is compiled, so no call's
    value is ever baked into the SQL. Rows come back as values_list() gives them, through the
    same converters.
    """

    def __init__(self, model: type[Model], build: Callable[..., QuerySet[Any]]) -> None:
        self._model = model
        self._build = build
        self._shapes: dict[tuple[Any, ...], _Compiled] = {}

    def rows(self, **values: UUID | datetime | None) -> list[tuple[Any, ...]]:
        # Routed at each call, as the ORM would route it (a request may read a replica; a
        # transaction on the primary reads there).
        using = router.db_for_read(self._model)
        shape = (using, *sorted((name, value is None) for name, value in values.items()))
        compiled = self._shapes.get(shape)
        if compiled is None:
            compiled = self._shapes[shape] = _Compiled(self._build, values, using)
        params = [part(values) for part in compiled.params]
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = list(compiled.compiler.apply_converters(rows, compiled.converters))
        return rows


class _Compiled:
    def __init__(
        self, build: Callable[..., QuerySet[Any]], values: dict[str, Any], using: str
    ) -> None:
        stand_ins: dict[Any, str] = {}
        given: dict[str, Any] = {}
        for position, (name, value) in enumerate(sorted(values.items())):
            if value is None:
                given[name] = None
                continue
            if isinstance(value, datetime):
                stand_in: Any = datetime(1001 + position, 1, 1, tzinfo=UTC)
            elif isinstance(value, UUID):
                stand_in = uuid4()
            else:
                raise TypeError(f"{name}: a UUID, a datetime or None, not {type(value).__name__}")
            stand_ins[stand_in] = name
            given[name] = stand_in
        queryset = build(**given).using(using)
        self.compiler = queryset.query.get_compiler(using=using)
        self.sql, raw = self.compiler.as_sql()
        self.converters = self.compiler.get_converters([s[0] for s in self.compiler.select])
        self.params = [self._part(param, stand_ins) for param in raw]
        found = {name for param in raw for name in self._names(param, stand_ins)}
        missing = {name for name, value in given.items() if value is not None} - found
        if missing:
            raise ValueError(f"not among the query's parameters: {sorted(missing)}")

    @staticmethod
    def _names(param: Any, stand_ins: dict[Any, str]) -> list[str]:
        if isinstance(param, Range):
            return [stand_ins[b] for b in (param.lower, param.upper) if b in stand_ins]
        return [stand_ins[param]] if isinstance(param, Hashable) and param in stand_ins else []

    @classmethod
    def _part(cls, param: Any, stand_ins: dict[Any, str]) -> Callable[[dict[str, Any]], Any]:
        if isinstance(param, Range):
            lower = cls._part(param.lower, stand_ins)
            upper = cls._part(param.upper, stand_ins)
            bounds = param.bounds
            return lambda values: Range(lower(values), upper(values), bounds)
        if isinstance(param, Hashable) and param in stand_ins:
            name = stand_ins[param]
            return lambda values: values[name]
        if isinstance(param, UUID | datetime):
            raise ValueError(f"a value computed inside the build would be fixed: {param!r}")
        return lambda _values: param
