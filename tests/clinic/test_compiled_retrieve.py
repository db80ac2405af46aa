"""Reads compiled once (clinic.plain_sql.CompiledQuery) where the API builds the same query on
every request: series and session detail (`PatientDataViewSet.compiled_retrieve`) and ids in a
body (`ClinicRelatedField`). The same answers as the ORM's per-request queries, scoped to the
user's clinic the same way."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import ValidationError

from clinic.api.base import PatientDataViewSet
from clinic.models import Role
from scheduling.api.views import SeriesViewSet, SessionViewSet
from scheduling.models import Series
from tests.factories import SeriesFactory, SessionFactory
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

VIEWS = [
    (SeriesViewSet, "/api/v1/series/{}/", "series"),
    (SessionViewSet, "/api/v1/sessions/{}/", "session"),
]


@pytest.fixture
def sessions(clinic, front_desk):
    """Two sessions of one series (numbers 1 and 2), the first completed."""
    series = SeriesFactory(patient__clinic=clinic, created_by=front_desk)
    first = SessionFactory(series=series, status="completed")
    second = SessionFactory(
        series=series,
        provider=first.provider,
        starts_at=first.starts_at + timedelta(days=30),
        ends_at=first.starts_at + timedelta(days=30, hours=1),
    )
    return first, second


def subject(kind: str, sessions):
    return sessions[0].series if kind == "series" else sessions[1]


@pytest.mark.parametrize(("view", "path", "kind"), VIEWS)
def test_the_compiled_answer_is_the_orms(view, path, kind, api, front_desk, sessions, monkeypatch):
    client = api(front_desk)
    url = path.format(subject(kind, sessions).pk)
    compiled = client.get(url)
    assert compiled.status_code == 200, compiled.content
    monkeypatch.setattr(view, "compiled_retrieve", False)
    built = client.get(url)
    assert built.status_code == 200
    assert compiled.json() == built.json()
    if kind == "session":
        assert compiled.json()["number"] == 2
    else:
        assert compiled.json()["sessions_completed"] == 1


@pytest.mark.parametrize(("view", "path", "kind"), VIEWS)
def test_another_clinics_object_is_not_found(
    view, path, kind, api, make_user, other_clinic, sessions
):
    theirs = api(make_user(Role.FRONT_DESK, other_clinic))
    assert_problem(theirs.get(path.format(subject(kind, sessions).pk)), 404, "not_found")


@pytest.mark.parametrize(("view", "path", "kind"), VIEWS)
def test_a_malformed_or_unknown_id_is_not_found(view, path, kind, api, front_desk):
    client = api(front_desk)
    assert_problem(client.get(path.format("-" * 36)), 404, "not_found")
    assert_problem(
        client.get(path.format("0" * 8 + "-0000-0000-0000-" + "0" * 12)), 404, "not_found"
    )


def test_a_retrieve_builds_no_query_once_compiled(api, front_desk, sessions, monkeypatch):
    client = api(front_desk)
    url = f"/api/v1/series/{sessions[0].series_id}/"
    assert client.get(url).status_code == 200  # compiled here at the latest
    built = []
    scoped = SeriesViewSet.scoped_queryset.__func__

    def counted(cls, clinic_id):
        built.append(clinic_id)
        return scoped(cls, clinic_id)

    monkeypatch.setattr(SeriesViewSet, "scoped_queryset", classmethod(counted))
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    assert built == []
    reads = [q["sql"] for q in captured.captured_queries if "scheduling_series" in q["sql"]]
    assert len(reads) == 1


def test_a_view_with_its_own_get_queryset_cannot_compile_its_retrieve():
    with pytest.raises(TypeError, match="compiled_retrieve"):

        class Careless(PatientDataViewSet):
            queryset = Series.objects.all()
            compiled_retrieve = True

            def get_queryset(self):
                return super().get_queryset().filter(status="active")


# --- ids in a body (ClinicRelatedField), by a query compiled once per declared field ----------


def booking_body(series, provider) -> dict:
    return {"series": str(series.pk), "provider": str(provider.pk)}


def test_a_body_id_of_another_clinic_is_refused_like_a_missing_one(
    api, front_desk, make_user, other_clinic, sessions
):
    from scheduling.api.serializers import BookingSerializer

    series, provider = sessions[0].series, sessions[0].provider
    mine = BookingSerializer(context={"request": _request(front_desk)})
    assert mine.fields["series"].to_internal_value(str(series.pk)) == series
    assert mine.fields["provider"].to_internal_value(str(provider.pk)) == provider

    theirs = BookingSerializer(
        context={"request": _request(make_user(Role.FRONT_DESK, other_clinic))}
    )
    for name, obj in (("series", series), ("provider", provider)):
        with pytest.raises(ValidationError, match="No such object in your clinic"):
            theirs.fields[name].to_internal_value(str(obj.pk))
    nobody = BookingSerializer(context={})
    with pytest.raises(ValidationError, match="No such object in your clinic"):
        nobody.fields["series"].to_internal_value(str(series.pk))


def test_fields_with_different_querysets_never_share_a_lookup(front_desk, provider):
    """Two roots of the same class (ListSerializer) with the same field name but different
    querysets: each field keeps its own rows."""
    from scheduling.api.timetable import AvailabilityQuerySerializer, TimeOffSerializer

    context = {"request": _request(front_desk)}
    anyone = AvailabilityQuerySerializer(many=True, context=context).child.fields["provider"]
    providers = TimeOffSerializer(many=True, context=context).child.fields["provider"]
    assert anyone.to_internal_value(str(front_desk.pk)) == front_desk  # compiled first
    with pytest.raises(ValidationError, match="No such object in your clinic"):
        providers.to_internal_value(str(front_desk.pk))
    assert providers.to_internal_value(str(provider.pk)) == provider


def test_a_related_field_that_overrides_its_queryset_cannot_be_declared():
    from clinic.api.base import ClinicRelatedField

    with pytest.raises(TypeError, match="get_queryset"):

        class Careless(ClinicRelatedField):
            def get_queryset(self):
                return super().get_queryset().filter(active=True)


def _request(user):
    from types import SimpleNamespace

    return SimpleNamespace(user=user)
