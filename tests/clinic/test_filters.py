"""clinic.api.fields.FilterBackend skips a filterset that would filter nothing; the premise is
checked here for every API filterset: given a query none of its filters reads, it hands the
queryset back unchanged."""

import pytest
from django.http import QueryDict

from clinic.api.fields import FilterSet
from patients.api.views import PatientFilter
from scheduling.api.views import SessionFilter
from tests.test_architecture import APPS, subclasses


def api_filtersets() -> list[type[FilterSet]]:
    import clinic.urls  # noqa: F401 (every view, and with them every filterset)

    return [cls for cls in subclasses(FilterSet) if cls.__module__.split(".")[0] in APPS]


@pytest.mark.django_db
@pytest.mark.parametrize("filterset", api_filtersets(), ids=lambda cls: cls.__name__)
def test_a_filterset_that_reads_nothing_of_the_query_leaves_the_list_as_it_is(filterset):
    query = QueryDict("page=2&page_size=10&ordering=x")
    queryset = filterset._meta.model._default_manager.all()
    if filterset.filters_anything(query):
        # Only a class that filters by default is built for a query without its parameters.
        assert filterset.filter_queryset is not FilterSet.filter_queryset
        return
    filtered = filterset(data=query, queryset=queryset).qs
    assert str(filtered.query) == str(queryset.query)


def test_most_filtersets_are_skipped_for_a_query_without_their_parameters():
    skipped = [cls for cls in api_filtersets() if not cls.filters_anything(QueryDict(""))]
    assert len(skipped) >= len(api_filtersets()) - 1


def test_a_parameter_given_even_empty_builds_the_filterset():
    assert not SessionFilter.filters_anything(QueryDict("page=1"))
    assert SessionFilter.filters_anything(QueryDict("date=2026-12-01"))
    assert SessionFilter.filters_anything(QueryDict("status="))


def test_a_filterset_with_a_default_is_always_built():
    # Patients: archived ones are hidden unless `archived` is asked for.
    assert PatientFilter.filters_anything(QueryDict(""))


@pytest.mark.django_db
def test_the_list_without_parameters_and_with_an_empty_one_agree(api, auditor):
    client = api(auditor)
    client.get("/api/v1/audit-events/")  # each read of the trail is on it
    plain = client.get("/api/v1/audit-events/").json()["results"]
    empty = client.get("/api/v1/audit-events/", {"action": ""}).json()["results"]
    # The empty parameter's page: the plain read's own event, then the plain page.
    assert len(plain) == 1
    assert [e["id"] for e in empty[1:]] == [e["id"] for e in plain]
    assert empty[0]["action"] == "audit_event.list"
    wrong = client.get("/api/v1/audit-events/", {"outcome": "bogus"})
    assert wrong.status_code == 400
