"""Reads of series and sessions, with everything derived from the sessions computed in SQL.

Counts, next due dates and session numbers are never stored: they are annotations over the
sessions as they are now, so a cancel, a no-show or a move can never leave them stale, and a
list costs the same number of queries whatever its length.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from uuid import UUID

from django.db.models import (
    Case,
    Count,
    F,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)

from clinic.models import Clinic
from scheduling import rules
from scheduling.models import Series, Session
from scheduling.rules import (
    ACTIVE_SESSION_STATUSES,
    OPEN_SESSION_STATUSES,
    SeriesStatus,
    SessionStatus,
)


def series_with_progress(queryset: QuerySet[Series] | None = None) -> QuerySet[Series]:
    """Series annotated with their progress; `next_due_on(series)` reads the annotations."""
    series = Series.objects.all() if queryset is None else queryset
    return series.select_related("clinic").annotate(
        sessions_completed=Count("sessions", filter=Q(sessions__status=SessionStatus.COMPLETED)),
        sessions_booked=Count("sessions", filter=Q(sessions__status__in=OPEN_SESSION_STATUSES)),
        last_session_starts_at=Max(
            "sessions__starts_at", filter=Q(sessions__status__in=ACTIVE_SESSION_STATUSES)
        ),
    )


def next_due_on(series: Series) -> date | None:
    """The next session's due date, from a series loaded by `series_with_progress`."""
    clinic = series.clinic
    last = series.last_session_starts_at  # type: ignore[attr-defined]
    return rules.next_due_on(
        is_active=series.status == SeriesStatus.ACTIVE,
        planned_sessions=series.planned_sessions,
        active_sessions=series.sessions_completed + series.sessions_booked,  # type: ignore[attr-defined]
        last_session_on=clinic.local_date(last) if last is not None else None,
        interval_days=series.interval_days,
        created_on=clinic.local_date(series.created_at),
    )


@functools.cache
def _session_number() -> Case:
    """The `number` annotation, built once: resolving it into a query copies it, so one
    instance serves every query (building the correlated subquery was a good part of a session
    read's time)."""
    earlier = (
        Session.objects.filter(series_id=OuterRef("series_id"), status__in=ACTIVE_SESSION_STATUSES)
        .filter(
            Q(starts_at__lt=OuterRef("starts_at"))
            | Q(starts_at=OuterRef("starts_at"), id__lt=OuterRef("id"))
        )
        .order_by()
        # COUNT as a plain function: one row, 0 when there is none, and no GROUP BY to compile.
        .annotate(count=Func(F("id"), function="COUNT"))
        .values("count")
    )
    return Case(
        When(status__in=ACTIVE_SESSION_STATUSES, then=Subquery(earlier) + Value(1)),
        default=None,
        output_field=IntegerField(),
    )


def sessions_with_number(queryset: QuerySet[Session] | None = None) -> QuerySet[Session]:
    """Sessions annotated with `number`, their place among the series' active sessions.

    A correlated count rather than a window function, so the number is right even when the
    list is filtered (a day view sees one session of a series, still numbered 3 of 5).
    Cancelled and no-show sessions hold no place: their number is null.
    """
    sessions = Session.objects.all() if queryset is None else queryset
    return sessions.annotate(number=_session_number())


def sessions_on_day(queryset: QuerySet[Session], day: date, clinic: Clinic) -> QuerySet[Session]:
    """Sessions starting on one of the clinic's local calendar days."""
    start, end = clinic.day_bounds(day)
    return queryset.filter(starts_at__gte=start, starts_at__lt=end)


def active_sessions_of_series(
    series_id: UUID, *, exclude_id: UUID | None = None
) -> list[tuple[UUID, datetime]]:
    """(id, starts_at) of the series' sessions that hold a place, oldest first."""
    sessions = Session.objects.filter(series_id=series_id, status__in=ACTIVE_SESSION_STATUSES)
    if exclude_id is not None:
        sessions = sessions.exclude(pk=exclude_id)
    return list(sessions.order_by("starts_at", "id").values_list("id", "starts_at"))
