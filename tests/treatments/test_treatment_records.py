import datetime
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from clinic.models import AuditEvent, Role
from scheduling.models import SeriesStatus, SessionStatus
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import HandpieceFactory, ScreeningFactory, UserFactory
from tests.factories.scheduling import starts_today
from tests.factories.treatments import TipLotFactory
from tests.treatments.conftest import treatment_body
from treatments import rules, selectors
from treatments.api.serializers import TreatmentRecordSerializer
from treatments.models import AftercareTemplate, TipLot, TreatmentRecord


def url(session) -> str:
    return f"/api/v1/sessions/{session.id}/treatment/"


@pytest.mark.django_db
def test_record_a_treatment(provider, session, lot, api):
    handpiece = HandpieceFactory(clinic=session.clinic, serial_number="SP-77")
    response = api(provider).post(url(session), treatment_body(lot, handpiece=str(handpiece.id)))
    assert response.status_code == 201, response.content
    body = response.json()
    record = TreatmentRecord.objects.get()
    assert body == {
        "id": str(record.id),
        "session": str(session.id),
        "patient": str(session.patient_id),
        "tip_lot": str(lot.id),
        "lot_number": lot.lot_number,
        "lot_expires_on": lot.expires_on.isoformat(),
        "serial_number": None,
        "handpiece": str(handpiece.id),
        "handpiece_serial": "SP-77",
        "depths": [
            {"area": "cheeks", "depth_mm": "1.25"},
            {"area": "forehead", "depth_mm": "0.50"},
        ],
        "depth_override_reason": "",
        "notes": "Tolerated well.",
        "performed_at": body["performed_at"],
        "provider": str(provider.id),
        "recorded_at": body["recorded_at"],
        "acknowledged_warnings": [],
        "amendments": [],
    }
    session.refresh_from_db()
    lot.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED
    assert (lot.quantity_used, lot.quantity_remaining) == (1, 9)
    assert AuditEvent.objects.get(action="treatment.record").patient_id == session.patient_id
    assert api(provider).get(url(session)).json() == body


@pytest.mark.django_db
def test_the_answer_is_the_record_as_read_back(provider, session, lot, api):
    """The answer is built from what was written (no read back): exactly what a read then
    shows, for depths given with other precisions and a treatment time with an offset."""
    performed_at = timezone.now().astimezone(datetime.timezone(timedelta(hours=-5)))
    body = treatment_body(lot, performed_at=performed_at.isoformat())
    body["depths"] = [
        {"area": "forehead", "depth_mm": "0.5"},
        {"area": "cheeks", "depth_mm": "1.250"},
    ]
    response = api(provider).post(url(session), body)
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["depths"] == [
        {"area": "forehead", "depth_mm": "0.50"},
        {"area": "cheeks", "depth_mm": "1.25"},
    ]
    assert api(provider).get(url(session)).json() == answer


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("depths", "field_error"),
    [
        ([{"area": "cheeks", "depth_mm": "2.75"}], True),
        ([{"area": "cheeks", "depth_mm": "0"}], True),
        ([{"area": "cheeks", "depth_mm": "1.10"}], True),
        ([{"area": "eyelids", "depth_mm": "0.5"}], True),
        ([{"area": "cheeks", "depth_mm": "1.255"}], True),
        ([{"area": "cheeks", "depth_mm": "1e9"}], True),
        ([{"area": "cheeks", "depth_mm": "abc"}], True),
        ([], True),
        ([{"area": "chin", "depth_mm": "1"}, {"area": "chin", "depth_mm": "1.5"}], True),
    ],
)
def test_bad_depths_are_400(provider, session, lot, api, depths, field_error):
    response = api(provider).post(url(session), treatment_body(lot, depths=depths))
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert next(iter(response.json()["errors"])).startswith("depths")
    lot.refresh_from_db()
    assert lot.quantity_used == 0


@pytest.mark.django_db
def test_performed_at_in_the_future_is_400(provider, session, lot, api):
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    response = api(provider).post(url(session), treatment_body(lot, performed_at=later))
    assert response.json()["errors"] == {"performed_at": ["Must not be in the future."]}


@pytest.mark.django_db
def test_another_clinics_lot_or_session_is_not_found(provider, session, other_clinic, api):
    their_lot = TipLotFactory(clinic=other_clinic)
    response = api(provider).post(url(session), treatment_body(their_lot))
    assert response.json()["errors"] == {"tip_lot": ["No such object in your clinic."]}


@pytest.mark.django_db
def test_a_record_is_never_deleted(provider, session, lot, api):
    """Nor edited in place (PUT, PATCH): test_treatment_contract.py."""
    client = api(provider)
    client.post(url(session), treatment_body(lot))
    assert client.delete(url(session)).status_code == 405


@pytest.mark.django_db
def test_amendments_keep_the_original(provider, session, lot, api):
    client = api(provider)
    original = client.post(url(session), treatment_body(lot)).json()
    response = client.post(
        f"{url(session)}amendments/",
        {
            "reason": "Wrong area recorded",
            "depths": [{"area": "chin", "depth_mm": "1.00"}],
            "notes": "Corrected.",
        },
    )
    assert response.status_code == 201, response.content
    amendment = response.json()
    assert amendment["changes"] == {
        "notes": "Corrected.",
        "depths": [{"area": "chin", "depth_mm": "1.00"}],
    }
    assert (amendment["reason"], amendment["amended_by"]) == (
        "Wrong area recorded",
        str(provider.id),
    )
    record = client.get(url(session)).json()
    assert record["depths"] == original["depths"]
    assert record["notes"] == original["notes"]
    # Read back as it was answered, to the microsecond (records read their amendments as JSON).
    assert record["amendments"] == [amendment]
    assert client.get(f"{url(session)}amendments/").json() == [amendment]
    bad = client.post(f"{url(session)}amendments/", {"reason": "", "notes": "x"})
    assert bad.status_code == 400
    deep = client.post(
        f"{url(session)}amendments/",
        {"reason": "Deeper", "depths": [{"area": "chin", "depth_mm": "2.5"}]},
    )
    assert deep.json()["code"] == "depth_not_allowed"


@pytest.mark.django_db
def test_aftercare_is_a_snapshot_of_the_template(provider, admin, session, lot, api):
    template = AftercareTemplate.objects.create(
        clinic=session.clinic,
        name="Ours",
        is_default=True,
        steps=[{"day_offset": 0, "product": "Skinfuse Rescue", "instruction": "Apply."}],
    )
    client = api(provider)
    assert client.get(f"/api/v1/sessions/{session.id}/aftercare/").status_code == 404
    client.post(url(session), treatment_body(lot))
    api(admin).patch(
        f"/api/v1/aftercare-templates/{template.id}/",
        {"steps": [{"day_offset": 3, "product": "", "instruction": "Changed."}]},
    )
    assert client.get(f"/api/v1/sessions/{session.id}/aftercare/").json() == {
        "session": str(session.id),
        "steps": [{"day_offset": 0, "product": "Skinfuse Rescue", "instruction": "Apply."}],
    }


@pytest.mark.django_db
def test_without_a_template_the_plan_uses_the_defaults(provider, session, lot, api):
    api(provider).post(url(session), treatment_body(lot))
    steps = api(provider).get(f"/api/v1/sessions/{session.id}/aftercare/").json()["steps"]
    assert steps == [dict(s) for s in rules.DEFAULT_AFTERCARE_STEPS]


@pytest.mark.django_db
def test_the_last_planned_session_completes_the_series(provider, make_session, lot, api):
    first = make_session()
    series = first.series
    clinic = series.patient.clinic
    # Treated on their own days, the series' interval apart: at noon on the clinic's wall clock
    # (the same instant 60 days back can fall near midnight across a DST change).
    noons = [
        clinic.day_bounds(clinic.today() - timedelta(days=30 * n))[0] + timedelta(hours=12)
        for n in (2, 1)
    ]
    others = [
        make_session(
            patient=series.patient, series=series, starts_at=noon, ends_at=noon + timedelta(hours=1)
        )
        for noon in noons
    ]
    client = api(provider)
    for session in others:
        on_its_day = (session.starts_at + timedelta(minutes=10)).isoformat()
        response = client.post(url(session), treatment_body(lot, performed_at=on_its_day))
        assert response.status_code == 201, response.content
    assert client.post(url(first), treatment_body(lot)).status_code == 201
    series.refresh_from_db()
    assert series.status == SeriesStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_recordings_against_five_cartridges(provider, make_session, clinic, api):
    lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=5)
    # Thirty patients in thirty chairs now, each session with its own provider on the books.
    starts_at = next(starts_today(clinic))
    sessions = [
        make_session(
            provider=UserFactory(clinic=clinic, role=Role.PROVIDER),
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
        )
        for _ in range(30)
    ]
    clients = [api(provider) for _ in sessions]

    def record(pair):
        client, session = pair
        try:
            response = client.post(url(session), treatment_body(lot))
            return response.status_code, response.json().get("code")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(record, zip(clients, sessions, strict=True)))

    assert sorted(results, key=str) == sorted(
        [(201, None)] * 5 + [(409, "tip_lot_exhausted")] * 25, key=str
    )
    lot = TipLot.objects.get(pk=lot.pk)
    assert (lot.quantity_used, lot.quantity_remaining) == (5, 0)
    assert TreatmentRecord.objects.count() == 5


@pytest.mark.django_db
def test_performed_at_must_name_its_offset(provider, session, lot, api):
    response = api(provider).post(
        url(session), treatment_body(lot, performed_at="2026-03-01T10:00:00")
    )
    assert (response.status_code, list(response.json()["errors"])) == (400, ["performed_at"])


@pytest.mark.django_db
def test_bad_depths_are_refused_before_eligibility(provider, make_session, lot, api):
    session = make_session()
    ScreeningFactory(patient=session.patient, contraindications=["open_wounds"], eligible=False)
    bad = [{"area": "cheeks", "depth_mm": "3.00"}]
    response = api(provider).post(url(session), treatment_body(lot, depths=bad))
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


@pytest.mark.django_db
def test_a_records_depths_read_alone_are_those_read_with_it(provider, session, lot, api):
    """Depths come with the record (treatments.selectors.treatment_records); a record read
    without them has them read, the same."""
    written = api(provider).post(url(session), treatment_body(lot)).json()
    read = api(provider).get(url(session)).json()
    alone = TreatmentRecordSerializer(TreatmentRecord.objects.get()).data
    assert written["depths"] == read["depths"] == alone["depths"]
    assert all(len(d["depth_mm"].split(".")[1]) == 2 for d in read["depths"])


@pytest.mark.django_db
def test_a_query_made_from_a_records_amendments_is_still_the_records(provider, session, lot, api):
    """Amendments come with the record (in place of a prefetch); a new query made from them
    reads the record's own, as a related manager's would."""
    client = api(provider)
    client.post(url(session), treatment_body(lot))
    client.post(f"{url(session)}amendments/", {"reason": "Typo", "notes": "Fixed."})
    record = selectors.record_of_session(session.clinic_id, session.id)
    assert [a.reason for a in record.amendments.all()] == ["Typo"]
    derived = record.amendments.order_by("-amended_at")
    sql = str(derived.query)
    assert "record_id" in sql and (str(record.id) in sql or record.id.hex in sql)
    assert derived.filter(reason="Typo").count() == 1


@pytest.mark.django_db
def test_the_records_query_built_once_is_read_afresh_each_time(provider, make_session, lot, api):
    """treatment_records() copies one query built once: each copy reads what is there now,
    and one copy's filters and results are not another's."""
    client = api(provider)
    first = make_session()
    assert client.post(url(first), treatment_body(lot)).status_code == 201
    before = selectors.treatment_records()
    assert [r.session_id for r in before] == [first.id]
    second = make_session()
    assert client.post(url(second), treatment_body(lot)).status_code == 201
    narrowed = selectors.treatment_records().filter(session_id=second.id)
    assert [r.session_id for r in narrowed] == [second.id]
    assert sorted(r.session_id for r in selectors.treatment_records()) == sorted(
        [first.id, second.id]
    )
    assert [r.session_id for r in before] == [first.id]  # its own results, read once
    assert selectors.treatment_records() is not selectors.treatment_records()
