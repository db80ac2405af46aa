"""A lot's usage list (`GET /tip-lots/{id}/usage/`) is read by one statement compiled once
(treatments.selectors.LotUsage, clinic.plain_sql.CompiledQuery) and the lot by its compiled
lookup (ClinicScopedViewSet.compiled_object): the same pages, records, depths and amendments as
the ORM's queryset, scoped to the user's clinic the same way."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clinic.api.base import ClinicScopedViewSet
from clinic.models import AuditEvent, Role
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories.treatments import TipLotFactory
from tests.helpers import assert_problem, every_page
from tests.treatments.conftest import treatment_body
from treatments import selectors
from treatments.api.views import TipLotActionsViewSet
from treatments.models import TipLot, TreatmentRecord

pytestmark = pytest.mark.django_db


def usage(lot) -> str:
    return f"/api/v1/tip-lots/{lot.id}/usage/"


@pytest.fixture
def treated(provider, make_session, lot, api):
    """Five treatments with the lot (the second amended twice, the fourth once) and one with
    another lot of the clinic."""
    client = api(provider)
    records = []
    for _ in range(5):
        session = make_session()
        response = client.post(f"/api/v1/sessions/{session.id}/treatment/", treatment_body(lot))
        assert response.status_code == 201, response.content
        records.append(response.json())
    for index, changes in (
        (1, {"notes": "Corrected."}),
        (1, {"depths": [{"area": "chin", "depth_mm": "1.00"}]}),
        (3, {"depth_override_reason": ""}),
    ):
        amended = client.post(
            f"/api/v1/sessions/{records[index]['session']}/treatment/amendments/",
            {"reason": "Charting error", **changes},
            format="json",
        )
        assert amended.status_code == 201, amended.content
    other = TipLotFactory(clinic=lot.clinic, received_by=provider, quantity_received=5)
    client.post(f"/api/v1/sessions/{make_session().id}/treatment/", treatment_body(other))
    return records


def pages(client, lot, size: int) -> list[dict]:
    return every_page(client, usage(lot), {"page_size": size})


def the_orms(monkeypatch) -> None:
    """The view reads its page from the ORM's queryset and its lot by DRF's get_object."""
    monkeypatch.setattr(selectors, "LotUsage", selectors.lot_usage)
    monkeypatch.setattr(TipLotActionsViewSet, "compiled_object", lambda view: view.get_object())


@pytest.mark.parametrize("size", [2, 5, 50])
def test_the_compiled_pages_are_the_orms(size, provider, lot, treated, api, monkeypatch):
    client = api(provider)
    compiled = pages(client, lot, size)
    the_orms(monkeypatch)
    assert pages(client, lot, size) == compiled
    records = [record for answer in compiled for record in answer["results"]]
    assert {record["id"] for record in records} == {record["id"] for record in treated}
    assert len(records) == 5
    amended = {record["id"]: len(record["amendments"]) for record in records}
    assert sorted(amended.values()) == [0, 0, 0, 1, 2]
    # Newest treatment first, as the model orders records.
    assert [record["id"] for record in records] == [
        str(pk) for pk in TreatmentRecord.objects.filter(tip_lot=lot).values_list("pk", flat=True)
    ]


def test_a_page_past_the_last_is_400_as_before(provider, lot, treated, api, monkeypatch):
    client = api(provider)
    compiled = client.get(usage(lot), {"page_size": 5, "page": 2})
    assert_problem(compiled, 400, "invalid", errors={"page": ["Invalid page."]})
    the_orms(monkeypatch)
    assert client.get(usage(lot), {"page_size": 5, "page": 2}).json() == compiled.json()


def test_each_record_read_is_audited_once(provider, lot, treated, api):
    before = AuditEvent.objects.filter(action="treatment.read").count()
    assert api(provider).get(usage(lot), {"page_size": 3}).status_code == 200
    read = AuditEvent.objects.filter(action="treatment.read").order_by("sequence")
    assert read.count() == before + 3
    shown = api(provider).get(usage(lot), {"page_size": 3}).json()["results"]
    assert {str(event.object_id) for event in read[before:]} == {r["id"] for r in shown}


def test_another_clinics_lot_is_not_found(lot, treated, api, make_user, other_clinic):
    theirs = api(make_user(Role.PROVIDER, other_clinic))
    assert_problem(theirs.get(usage(lot)), 404, "not_found")


def test_an_unknown_or_malformed_lot_is_not_found(provider, api):
    client = api(provider)
    assert_problem(client.get("/api/v1/tip-lots/" + "-" * 36 + "/usage/"), 404, "not_found")
    unknown = TipLot(id="00000000-0000-0000-0000-000000000000")
    assert_problem(client.get(usage(unknown)), 404, "not_found")


def test_a_page_builds_no_query_once_compiled(provider, lot, treated, api, monkeypatch):
    client = api(provider)
    assert client.get(usage(lot)).status_code == 200  # compiled here at the latest
    built = []
    lot_usage = selectors.lot_usage

    def counted(clinic_id, lot_id):
        built.append(lot_id)
        return lot_usage(clinic_id, lot_id)

    monkeypatch.setattr(selectors, "lot_usage", counted)
    with CaptureQueriesContext(connection) as captured:
        assert len(client.get(usage(lot)).json()["results"]) == 5
    assert built == []
    reads = [
        q["sql"] for q in captured.captured_queries if "treatments_treatmentrecord" in q["sql"]
    ]
    assert len(reads) == 1


def test_a_usage_is_read_a_page_at_a_time(lot, treated):
    records = selectors.LotUsage(lot.clinic_id, lot.id)
    assert {str(r.id) for r in records[0:10]} == {r["id"] for r in treated}
    assert [r.id for r in records[1:3]] == [r.id for r in records[0:10]][1:3]
    assert records[5:2] == records[5:10] == []
    for window in (slice(0, None), slice(0, 10, 2)):
        with pytest.raises(ValueError, match="a window at a time"):
            records[window]


def test_a_view_with_its_own_get_queryset_has_no_compiled_object():
    class Careless(ClinicScopedViewSet):
        queryset = TipLot.objects.all()

        def get_queryset(self):
            return super().get_queryset().filter(quantity_used=0)

    with pytest.raises(TypeError, match="its own get_queryset"):
        Careless().compiled_object()


def test_a_view_that_filters_its_objects_has_no_compiled_object():
    class Filtered(ClinicScopedViewSet):
        queryset = TipLot.objects.all()
        filterset_fields = ["lot_number"]

    with pytest.raises(TypeError, match="get_queryset or filters"):
        Filtered().compiled_object()
