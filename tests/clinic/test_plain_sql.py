"""Queries compiled once (clinic.plain_sql.CompiledQuery) answer as the ORM's: the token lookup
every request makes reads what `select_related("user__clinic")` reads, rows and instances come
through the same converters, and a build that would fix a value into the SQL is refused."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken

from clinic.authentication import tokens_with_key
from clinic.models import Role
from clinic.plain_sql import CompiledQuery
from scheduling.models import Session
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PatientFactory, SeriesFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


def values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_the_token_its_user_and_clinic_are_the_orms(make_user, clinic):
    user = make_user(Role.PROVIDER, clinic)
    token, _secret = AuthToken.objects.create(user=user)
    AuthToken.objects.create(user=make_user(Role.FRONT_DESK, clinic))  # another key
    expected = AuthToken.objects.select_related("user__clinic").get(token_key=token.token_key)

    with CaptureQueriesContext(connection) as captured:
        (found,) = tokens_with_key(token.token_key)
        # The user and the clinic come with the token: nothing more is read for them.
        assert found.user.clinic.zone == clinic.zone
    assert len(captured) == 1

    assert values(found) == values(expected)
    assert values(found.user) == values(expected.user)
    assert values(found.user.clinic) == values(expected.user.clinic)
    assert found == expected and found.user == user
    # As loaded from the database: saved with an UPDATE, not inserted again.
    assert not found._state.adding and found._state.db == "default"
    assert not found.user._state.adding


def test_a_user_of_no_clinic_has_no_clinic():
    superuser = UserFactory(clinic=None, role=Role.ADMIN, is_superuser=True)
    token, _secret = AuthToken.objects.create(user=superuser)
    (found,) = tokens_with_key(token.token_key)
    assert found.user == superuser
    assert found.user.clinic is None


def test_no_token_with_the_key_is_no_row():
    assert list(tokens_with_key("00000000")) == []


def test_a_token_key_is_a_value_not_part_of_the_sql(make_user, clinic):
    # Two tokens, two keys, one compiled query: each lookup finds its own token.
    first, _ = AuthToken.objects.create(user=make_user(Role.PROVIDER, clinic))
    second, _ = AuthToken.objects.create(user=make_user(Role.FRONT_DESK, clinic))
    assert [t.pk for t in tokens_with_key(first.token_key)] == [first.pk]
    assert [t.pk for t in tokens_with_key(second.token_key)] == [second.pk]


# --- CompiledQuery -----------------------------------------------------------------------------


def sessions_of(*, provider_id, patient_id, start, end):
    from django.db.models import Q

    from scheduling.checks import span

    who = Q(provider_id=provider_id)
    if patient_id is not None:
        who |= Q(patient_id=patient_id)
    return (
        Session.objects.alias(span=span())
        .filter(who, span__overlap=(start, end))
        .order_by("starts_at")
        .values_list("id", "starts_at")
    )


def test_a_compiled_query_answers_as_the_orm_for_each_call_and_shape(clinic, front_desk):
    builds = []

    def counted(**values):
        builds.append(values)
        return sessions_of(**values)

    query = CompiledQuery(counted)
    day = timezone.now().replace(microsecond=0) + timedelta(days=3)
    first, second = (UserFactory(clinic=clinic, role=Role.PROVIDER) for _ in range(2))
    patient = PatientFactory(clinic=clinic)
    made = [
        SessionFactory(
            series=SeriesFactory(patient=PatientFactory(clinic=clinic), created_by=front_desk),
            provider=provider,
            starts_at=day + timedelta(hours=hour),
            ends_at=day + timedelta(hours=hour, minutes=30),
            created_by=front_desk,
        )
        for provider, hour in ((first, 0), (first, 2), (second, 1))
    ]
    SessionFactory(
        series=SeriesFactory(patient=patient, created_by=front_desk),
        provider=UserFactory(clinic=clinic, role=Role.PROVIDER),
        starts_at=day + timedelta(hours=4),
        ends_at=day + timedelta(hours=5),
        created_by=front_desk,
    )

    def call(provider, patient, from_hour, to_hour):
        return {
            "provider_id": provider.id,
            "patient_id": patient.id if patient else None,
            "start": day + timedelta(hours=from_hour),
            "end": day + timedelta(hours=to_hour),
        }

    calls = [call(first, None, 0, 3), call(second, None, 0, 3), call(first, None, 1, 3)]
    calls.append(call(second, patient, 0, 6))
    for values in calls:
        assert query.rows(**values) == list(sessions_of(**values))
    # Two shapes (patient or not), each compiled twice (the check of _Compiled): four builds
    # for the four calls, and none for any later call.
    assert len(builds) == 4
    assert [row[0] for row in query.rows(**calls[0])] == [made[0].id, made[1].id]
    assert len(builds) == 4


def test_a_value_computed_inside_the_build_is_refused():
    def computed(*, provider_id):
        return sessions_of(
            provider_id=provider_id, patient_id=None, start=timezone.now(), end=timezone.now()
        )

    with pytest.raises(ValueError, match="computed inside the build"):
        CompiledQuery(computed).rows(provider_id=uuid.uuid4())


def test_a_value_the_query_does_not_use_is_refused():
    def unused(*, provider_id, patient_id):
        return Session.objects.filter(provider_id=provider_id).values_list("id")

    with pytest.raises(ValueError, match="patient_id"):
        CompiledQuery(unused).rows(provider_id=uuid.uuid4(), patient_id=uuid.uuid4())


def test_a_value_derived_inside_the_build_is_refused():
    def derived(*, provider_id, start):
        # A date made from a value would be the first call's date for every later call.
        return Session.objects.filter(
            provider_id=provider_id, starts_at__gte=start + timedelta(hours=1)
        ).values_list("id")

    with pytest.raises(ValueError, match="computed inside the build"):
        CompiledQuery(derived).rows(provider_id=uuid.uuid4(), start=timezone.now())

    def by_day(*, provider_id, start):
        return Session.objects.filter(provider_id=provider_id, clinic__name=str(start.year))

    with pytest.raises(ValueError, match="depend on the values"):
        CompiledQuery(lambda **v: by_day(**v).values_list("id")).rows(
            provider_id=uuid.uuid4(), start=timezone.now()
        )


def test_a_branch_on_how_values_compare_is_refused():
    def branching(*, start, end):
        sessions = Session.objects.filter(starts_at__gte=start)
        if start < end:
            sessions = sessions.filter(ends_at__lte=end)
        else:
            sessions = sessions.filter(ends_at__gte=end)
        return sessions.values_list("id")

    now = timezone.now()
    with pytest.raises(ValueError, match="depend on the values"):
        CompiledQuery(branching).rows(start=now, end=now + timedelta(hours=1))


def test_converted_columns_come_back_as_the_orm_reads_them(admin):
    from clinic import audit
    from clinic.models import AuditEvent

    event = audit.record(actor=admin, action="x", detail={"a": [1, 2], "b": "c"})
    instances = CompiledQuery(lambda *, pk: AuditEvent.objects.filter(pk=pk))
    assert values(instances.get(pk=event.pk)) == values(AuditEvent.objects.get(pk=event.pk))

    compiled = CompiledQuery(
        lambda *, pk: AuditEvent.objects.filter(pk=pk).values_list("id", "detail")
    )
    assert compiled.rows(pk=event.pk) == list(
        AuditEvent.objects.filter(pk=event.pk).values_list("id", "detail")
    )
    assert compiled.rows(pk=event.pk)[0][1] == {"a": [1, 2], "b": "c"}


@pytest.mark.parametrize(
    "build",
    [
        lambda *, pk: Session.objects.filter(pk=pk).prefetch_related("depths"),
        lambda *, pk: Session.objects.using("default").filter(pk=pk),
    ],
    ids=["prefetch_related", "using"],
)
def test_what_the_sql_alone_cannot_carry_is_refused(build):
    with pytest.raises(ValueError, match="plain read"):
        CompiledQuery(build).objects(pk=uuid.uuid4())


def test_row_locks_are_declared_and_taken_as_the_orm_takes_them(clinic):
    from patients.models import Patient

    patient = PatientFactory(clinic=clinic)
    locking = CompiledQuery(
        lambda *, pk: Patient.objects.select_for_update(no_key=True).filter(pk=pk), locks=True
    )
    with CaptureQueriesContext(connection) as captured:
        assert locking.get(pk=patient.pk) == patient
    assert captured.captured_queries[-1]["sql"].endswith("FOR NO KEY UPDATE")
    with pytest.raises(Patient.DoesNotExist):
        locking.get(pk=uuid.uuid4())
    # A lock must be declared, and a declared lock must be taken.
    with pytest.raises(ValueError, match="go together"):
        CompiledQuery(lambda *, pk: Patient.objects.select_for_update().filter(pk=pk)).objects(
            pk=patient.pk
        )
    with pytest.raises(ValueError, match="go together"):
        CompiledQuery(lambda *, pk: Patient.objects.filter(pk=pk), locks=True).objects(
            pk=patient.pk
        )


@pytest.mark.django_db(transaction=True)
def test_row_locks_outside_a_transaction_are_refused(clinic):
    from django.db.transaction import TransactionManagementError

    from patients.models import Patient

    locking = CompiledQuery(
        lambda *, pk: Patient.objects.select_for_update().filter(pk=pk), locks=True
    )
    with pytest.raises(TransactionManagementError):
        locking.objects(pk=PatientFactory(clinic=clinic).pk)


def test_a_window_is_the_orm_s_slice_of_the_same_query(clinic, front_desk):
    day = timezone.now().replace(microsecond=0) + timedelta(days=3)
    provider = UserFactory(clinic=clinic, role=Role.PROVIDER)
    for hour in range(5):
        SessionFactory(
            series=SeriesFactory(patient=PatientFactory(clinic=clinic), created_by=front_desk),
            provider=provider,
            starts_at=day + timedelta(hours=hour),
            ends_at=day + timedelta(hours=hour, minutes=30),
            created_by=front_desk,
        )
    builds = []

    def counted(**values):
        builds.append(values)
        return sessions_of(**values)

    query = CompiledQuery(counted)
    values = {
        "provider_id": provider.id,
        "patient_id": None,
        "start": day,
        "end": day + timedelta(days=1),
    }
    for offset, limit in ((0, 2), (2, 2), (4, 2), (1, 10), (0, 0), (7, 3)):
        window = query.window(offset, limit, **values)
        assert window == list(sessions_of(**values)[offset : offset + limit])
    # Ordered by the model's Meta.ordering alone (no order_by): a window too.
    by_model = CompiledQuery(lambda *, provider_id: Session.objects.filter(provider_id=provider_id))
    every = list(Session.objects.filter(provider_id=provider.id))
    assert [s.pk for s in by_model.window_objects(1, 3, provider_id=provider.id)] == [
        s.pk for s in every[1:4]
    ]
    # Pages: the same windows, sliced as a paginator slices a queryset.
    pages = query.pages(**values)
    assert pages[1:3] == list(sessions_of(**values)[1:3])
    assert pages[4:2] == []
    for window in (slice(0, None), slice(0, 4, 2)):
        with pytest.raises(ValueError, match="a window at a time"):
            pages[window]
    for window in (slice(0, -1), slice(-2, 3)):
        with pytest.raises(ValueError, match="negative"):
            pages[window]
    # A values() build is read as rows: objects() refuses it.
    with pytest.raises(TypeError, match="use rows"):
        CompiledQuery(
            lambda *, provider_id: Session.objects.filter(provider_id=provider_id).values("pk")
        ).objects(provider_id=provider.id)
    assert [s.pk for s in by_model.pages(provider_id=provider.id)[0:2]] == [s.pk for s in every[:2]]
    # One statement for every window (compiled twice, the check of _Compiled): its bounds are
    # parameters, not part of the SQL.
    assert len(builds) == 2
    with pytest.raises(ValueError, match="never negative"):
        query.window(-1, 2, **values)


@pytest.mark.parametrize(
    "build",
    [
        lambda *, pk: Session.objects.filter(pk=pk).order_by(),
        lambda *, pk: Session.objects.filter(pk=pk).values("patient_id").annotate(n=Count("pk")),
        lambda *, pk: Session.objects.filter(pk=pk).order_by("starts_at")[:5],
    ],
    ids=["not ordered", "grouped (no model ordering)", "already sliced"],
)
def test_a_window_of_a_query_that_is_not_ordered_or_is_sliced_is_refused(build):
    with pytest.raises(ValueError, match="ordered query"):
        CompiledQuery(build).window(0, 10, pk=uuid.uuid4())
