"""Queries the ORM builds and compiles once, for the reads the API makes on almost every
request with the same shape.

Building a queryset and compiling it costs more Python than PostgreSQL spends answering a
lookup by key (about 0.5 ms of the token's 0.9 ms per request, docs/benchmarks.md).
`CompiledQuery` builds such a query once per shape and then runs it as its SQL, turning rows
into what the ORM would have returned (values, or instances with their select_related objects
and annotations, through the same converters). It serves the bearer token's lookup, the slot
reads of booking and availability, series and session detail, a body's ids
(ClinicRelatedField), a patient's latest screening, booking's and treatment's row locks, the
audit trail's and a lot's usage pages (`window`, `window_objects`). Anything else goes through
the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.transaction import TransactionManagementError
from psycopg.types.range import Range

from clinic.db_router import PRIMARY, reads_alias

# What a compiled query's values may be: each one a parameter of the SQL.
Value = UUID | datetime | str | None


class CompiledQuery:
    """A query the ORM builds and compiles once per shape, then run as its SQL with each
    call's values: `rows()` for a values_list(), `objects()` for model instances.

    `build(**values)` returns the queryset, read where the router reads. Each value is a UUID,
    a datetime, a string or None; which of them are None is the shape (the build may branch on
    it), so a query is compiled once per shape and database. The build is given a unique
    stand-in for each value and the compiled parameters are mapped back to them, also inside
    ranges (`span__overlap=(start, end)`); a UUID or datetime parameter that is not one of the
    stand-ins (computed inside the build) is refused when the query is compiled, so no call's
    value is ever baked into the SQL. Rows and instances come back as the ORM makes them,
    through the same converters.
    """

    def __init__(self, build: Callable[..., QuerySet[Any]], *, locks: bool = False) -> None:
        """`locks`: the build's queryset takes row locks (select_for_update); it then runs on
        the primary, inside the caller's transaction only, as the ORM requires."""
        self._build = build
        self._locks = locks
        self._shapes: dict[tuple[Any, ...], _Compiled] = {}

    def rows(self, **values: Value) -> list[tuple[Any, ...]]:
        return self._rows(self._compiled(values), values)

    def window(self, offset: int, limit: int, **values: Value) -> list[tuple[Any, ...]]:
        """`rows()` offset..offset + limit of an ordered, unsliced query, as the ORM's
        `queryset[offset:offset + limit]`; the two are parameters of the one compiled SQL (the
        ORM writes them into it), so a page of any size at any offset is the same statement."""
        return self._window(self._compiled(values), offset, limit, values)

    def objects(self, **values: Value) -> list[Model]:
        """For a queryset of model instances (select_related and annotations included): the
        instances, made as Django's ModelIterable makes them from the same row."""
        compiled = self._compiled(values)
        return self._objects(compiled, _plan(compiled), self._rows(compiled, values))

    def window_objects(self, offset: int, limit: int, **values: Value) -> list[Model]:
        """`objects()` offset..offset + limit, as `window()` reads rows."""
        compiled = self._compiled(values)
        plan = _plan(compiled)
        return self._objects(compiled, plan, self._window(compiled, offset, limit, values))

    @classmethod
    def _window(
        cls, compiled: _Compiled, offset: int, limit: int, values: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        if offset < 0 or limit < 0:
            raise ValueError("a window's offset and limit are never negative")
        if not compiled.windowable:
            raise ValueError("window() is for an ordered query that is not sliced or locked")
        return cls._rows(compiled, values, window=(limit, offset))

    @staticmethod
    def _objects(compiled: _Compiled, plan: _Instances, rows: list[tuple[Any, ...]]) -> list[Model]:
        found = []
        for row in rows:
            obj = plan.model.from_db(compiled.using, plan.names, row[plan.start : plan.end])
            for populator in plan.related:
                populator.populate(row, obj)
            for name, position in plan.annotations.items():
                setattr(obj, name, row[position])
            found.append(obj)
        return found

    def pages(self, **values: Value) -> Pages:
        """These values' rows, or instances for a query of model instances, as a paginator
        slices a queryset (clinic.api.pagination): `pages[offset:stop]` is one window."""
        return Pages(self, values)

    def first(self, **values: Value) -> Model | None:
        """The first instance, or None (as QuerySet.first on a query that orders)."""
        found = self.objects(**values)
        return found[0] if found else None

    def get(self, **values: Value) -> Model:
        """The one instance, as QuerySet.get: the model's DoesNotExist if there is none."""
        found = self.objects(**values)
        if len(found) == 1:
            return found[0]
        model: Any = self._compiled(values).instances.model  # type: ignore[union-attr]
        raise model.DoesNotExist if not found else model.MultipleObjectsReturned

    def _compiled(self, values: dict[str, Any]) -> _Compiled:
        if self._locks:
            # Row locks are taken on the primary, in a transaction (the ORM refuses otherwise).
            using = PRIMARY
            if not connections[using].in_atomic_block:
                raise TransactionManagementError(
                    "select_for_update cannot be used outside of a transaction."
                )
        else:
            # Routed at each call, as the ORM would route it (a request may read a replica; a
            # transaction on the primary reads there).
            using = reads_alias()
        shape = (using, *sorted((name, value is None) for name, value in values.items()))
        compiled = self._shapes.get(shape)
        if compiled is None:
            compiled = self._shapes[shape] = _Compiled(self._build, values, using, self._locks)
        return compiled

    @staticmethod
    def _rows(
        compiled: _Compiled, values: dict[str, Any], window: tuple[int, int] | None = None
    ) -> list[tuple[Any, ...]]:
        using = compiled.using
        params = [part(values) for part in compiled.params]
        sql = compiled.sql
        if window is not None:
            sql = compiled.windowed_sql
            params += window
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not compiled.converters:
            return rows
        converted = []
        for row in rows:
            values_ = list(row)
            for position, functions, expression in compiled.converters:
                for convert in functions:
                    values_[position] = convert(values_[position], expression, connection)
            converted.append(tuple(values_))
        return converted


class Pages:
    """A compiled query's rows (instances for a query of model instances) for one call's
    values, sliced as a paginator slices a queryset: `pages[offset:stop]` is the list of that
    window, read by the one compiled statement (`window`, `window_objects`). Rows are tuples,
    as `rows()` gives them, whatever values() or values_list() the build asked for; instances
    are made as ModelIterable makes them (a subclass's own post-processing, such as
    treatments.selectors' records with their JSON arrays, is the caller's to apply)."""

    def __init__(self, query: CompiledQuery, values: dict[str, Value]) -> None:
        self.query, self.values = query, values

    def __getitem__(self, window: slice) -> list[Any]:
        if not isinstance(window, slice) or window.step is not None or window.stop is None:
            raise ValueError("a compiled list is read a window at a time: [offset:stop]")
        if (window.start or 0) < 0 or window.stop < 0:
            raise ValueError("negative indexing is not supported")  # as a queryset's
        offset = window.start or 0
        limit = max(window.stop - offset, 0)  # [5:2] is empty, as a queryset's
        query, compiled = self.query, self.query._compiled(self.values)
        rows = query._window(compiled, offset, limit, self.values)
        if compiled.instances is None:
            return rows
        return query._objects(compiled, compiled.instances, rows)


def _ordered(query: Any) -> bool:
    """Whether the query's SQL orders its rows, by its own order_by or its model's ordering (as
    QuerySet.ordered tells; a GROUP BY drops the model's ordering)."""
    if query.extra_order_by or query.order_by:
        return True
    return bool(query.default_ordering and query.get_meta().ordering and not query.group_by)


def _plan(compiled: _Compiled) -> _Instances:
    if compiled.instances is None:
        raise TypeError("objects() is for a queryset of model instances; use rows()")
    return compiled.instances


# Where a compiled parameter comes from: ("value", name) a call's value, ("const", x) the same
# for every call, ("range", type, bounds, lower, upper) a range of two of these.
_Source = tuple[Any, ...]


class _Compiled:
    """The SQL, the parameters' sources and the converters of one shape, compiled twice with
    two different sets of stand-ins (datetimes in opposite orders): if anything but where the
    values go differs between the two, the SQL depends on the values themselves (a date or a
    number derived from them, a branch on how they compare) and is refused."""

    def __init__(
        self, build: Callable[..., QuerySet[Any]], values: dict[str, Any], using: str, locks: bool
    ) -> None:
        (sql, sources, compiler, models), (other_sql, other_sources, _, _) = (
            self._compile(build, values, using, ascending, locks) for ascending in (True, False)
        )
        if sql != other_sql or sources != other_sources:
            raise ValueError(
                "the query's SQL or constants depend on the values: pass what it needs as values"
            )
        missing = {name for name, value in values.items() if value is not None} - set(
            _names(sources)
        )
        if missing:
            raise ValueError(f"not among the query's parameters: {sorted(missing)}")
        self.using = using
        self.sql = sql
        query = compiler.query
        # Nothing follows the ORDER BY of such a query's SQL but what slicing would write.
        self.windowable = _ordered(query) and not (
            locks or query.low_mark or query.high_mark is not None or query.combinator
        )
        self.windowed_sql = sql + " LIMIT %s OFFSET %s"
        self.params = [_reader(source) for source in sources]
        self.converters = [
            (position, functions, expression)
            for position, (functions, expression) in compiler.get_converters(
                [selected[0] for selected in compiler.select]
            ).items()
        ]
        # Instances for a queryset of them (the compiler has a klass_info for values too).
        self.instances = _Instances(compiler, using) if models and compiler.klass_info else None

    @staticmethod
    def _compile(
        build: Callable[..., QuerySet[Any]],
        values: dict[str, Any],
        using: str,
        ascending: bool,
        locks: bool,
    ) -> tuple[str, list[_Source], Any, bool]:
        stand_ins: dict[Any, str] = {}
        given: dict[str, Any] = {}
        for position, (name, value) in enumerate(sorted(values.items())):
            if value is None:
                given[name] = None
                continue
            if isinstance(value, datetime):
                year = 1001 + position if ascending else 2999 - position
                stand_in: Any = datetime(year, 1, 1, tzinfo=UTC)
            elif isinstance(value, UUID):
                stand_in = uuid4()
            elif isinstance(value, str):
                stand_in = f"stand-in {uuid4().hex}"
            else:
                raise TypeError(
                    f"{name}: a UUID, a datetime, a string or None, not {type(value).__name__}"
                )
            stand_ins[stand_in] = name
            given[name] = stand_in
        queryset = build(**given)
        # What the compiled SQL alone cannot carry: the ORM's own routing or a second query.
        private: Any = queryset  # the QuerySet attributes the ORM keeps to itself
        if (
            private._db is not None
            or private._prefetch_related_lookups
            or private._known_related_objects
        ):
            raise ValueError(
                "a compiled query is a plain read: no using(), prefetch_related() or related"
                " manager"
            )
        if bool(queryset.query.select_for_update) != locks:
            raise ValueError("select_for_update() and CompiledQuery(locks=True) go together")
        compiler = queryset.using(using).query.get_compiler(using=using)
        sql, raw = compiler.as_sql()
        models = issubclass(private._iterable_class, ModelIterable)
        return sql, [_source(param, stand_ins) for param in raw], compiler, models


class _Instances:
    """Where a row's model, related models (select_related) and annotations are, as Django's
    ModelIterable reads them from the compiler (the compiler itself is not kept: it holds the
    connection of the thread that compiled it)."""

    def __init__(self, compiler: Any, using: str) -> None:
        klass_info, select = compiler.klass_info, compiler.select
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.names = [column[0].target.attname for column in select[self.start : self.end]]
        # (django-stubs describe a later Django, whose signature adds fetch_mode)
        self.related = get_related_populators(klass_info, select, using)  # type: ignore[call-arg]
        self.annotations = dict(compiler.annotation_col_map)


def _source(param: Any, stand_ins: dict[Any, str]) -> _Source:
    if isinstance(param, Range):
        lower, upper = _source(param.lower, stand_ins), _source(param.upper, stand_ins)
        return ("range", type(param), param.bounds, lower, upper)
    if isinstance(param, Hashable) and param in stand_ins:
        return ("value", stand_ins[param])
    if isinstance(param, UUID | datetime):
        raise ValueError(f"a value computed inside the build would be fixed: {param!r}")
    return ("const", param)


def _names(sources: list[_Source]) -> list[str]:
    names = []
    for source in sources:
        if source[0] == "value":
            names.append(source[1])
        elif source[0] == "range":
            names += _names([source[3], source[4]])
    return names


def _reader(source: _Source) -> Callable[[dict[str, Any]], Any]:
    kind = source[0]
    if kind == "value":
        name = source[1]
        return lambda values: values[name]
    if kind == "range":
        range_type, bounds = source[1], source[2]
        lower, upper = _reader(source[3]), _reader(source[4])
        return lambda values: range_type(lower(values), upper(values), bounds)
    constant = source[1]
    return lambda _values: constant
