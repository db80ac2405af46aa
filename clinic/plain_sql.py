"""Model instances from a hand-written SELECT, for the few reads every request makes.

Building a queryset and compiling it costs more Python than PostgreSQL spends answering a
lookup by key (about 0.5 ms of the token's 0.9 ms per request, docs/benchmarks.md). For such a
read the SQL is written once, from the models' own metadata, and each row becomes instances
exactly as the ORM would make them: the same columns, the same converters (`from_db_value`,
the backend's), `Model.from_db`, so the instances are saved, refreshed and compared like any
other. Anything but a constant-shaped lookup on the hot path goes through the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.db.models import Field, Model


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
