"""`GET /api/v1/audit-events/`: roles, fields, filters, clinic scope, cursor pagination."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import time_machine

from clinic import audit
from clinic.models import AuditEvent, AuditOutcome, Role
from tests.audit.conftest import seal
from tests.factories import PatientFactory

URL = "/api/v1/audit-events/"
T0 = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)  # 10:00 in New York (EDT since 9 March)


def write(actor, minutes: int, action: str = "patient.read", **kwargs) -> AuditEvent:
    with time_machine.travel(T0 + timedelta(minutes=minutes), tick=False):
        return audit.record(actor=actor, action=action, object_type="patient", **kwargs)


def ids(response) -> list[str]:
    return [event["id"] for event in response.json()["results"]]


def trail_reads(auditor) -> int:
    return AuditEvent.objects.filter(action="audit_event.list", actor=auditor).count()


@pytest.mark.django_db
def test_auditor_reads_the_trail_with_every_field(api, auditor, front_desk, clinic):
    patient = PatientFactory(clinic=clinic)
    first = write(front_desk, 1, object_id=patient.id, patient_id=patient.id)
    second = write(
        None,
        2,
        action="auth.login",
        actor_label="ghost",
        outcome=AuditOutcome.FAILED,
        clinic_id=clinic.id,
        detail={"why": "bad password"},
    )
    seal()
    first.refresh_from_db()
    second.refresh_from_db()

    response = api(auditor).get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": str(second.id),
                "at": "2025-03-10T14:02:00Z",
                "actor": None,
                "actor_label": "ghost",
                "action": "auth.login",
                "object_type": "patient",
                "object_id": "",
                "patient": None,
                "request_id": "",
                "outcome": "failed",
                "detail": {"why": "bad password"},
                "sequence": 2,
                "hash": second.hash,
            },
            {
                "id": str(first.id),
                "at": "2025-03-10T14:01:00Z",
                "actor": str(front_desk.id),
                "actor_label": front_desk.username,
                "action": "patient.read",
                "object_type": "patient",
                "object_id": str(patient.id),
                "patient": str(patient.id),
                "request_id": "",
                "outcome": "success",
                "detail": {},
                "sequence": 1,
                "hash": first.hash,
            },
        ],
        "next": None,
        "previous": None,
    }
    # Reading the trail is on the trail.
    event = AuditEvent.objects.get(action="audit_event.list")
    assert (event.actor_id, event.object_type, event.detail) == (
        auditor.id,
        "audit_event",
        {"filters": {}, "count": 2},
    )


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR])
def test_admins_and_auditors_may_read(api, make_user, clinic, role):
    assert api(make_user(role, clinic)).get(URL).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PROVIDER])
def test_every_other_role_is_refused_and_the_attempt_recorded(api, make_user, clinic, role):
    user = make_user(role, clinic)
    response = api(user).get(URL)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "permission_denied"
    denied = AuditEvent.objects.get(actor=user)
    assert (denied.action, denied.object_type, denied.outcome) == (
        "audit_event.list",
        "audit_event",
        "denied",
    )


@pytest.mark.django_db
def test_anonymous_is_401(api):
    response = api().get(URL)
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


@pytest.mark.django_db
def test_writes_are_refused(api, auditor, admin):
    assert api(auditor).post(URL, {}).status_code == 403
    assert api(admin).post(URL, {}).status_code == 405


@pytest.mark.django_db
def test_another_clinics_events_are_invisible(api, auditor, admin, other_clinic, make_user):
    mine = write(admin, 1)
    write(make_user(Role.ADMIN, other_clinic), 2)
    assert ids(api(auditor).get(URL)) == [str(mine.id)]


@pytest.mark.django_db
def test_filters(api, auditor, admin, front_desk, clinic):
    patient, other = PatientFactory(clinic=clinic), PatientFactory(clinic=clinic)
    a = write(admin, 0, patient_id=patient.id)  # 10:00 New York
    b = write(front_desk, 60 * 10, action="patient.update", patient_id=patient.id)  # 20:00
    c = write(front_desk, 60 * 11, patient_id=other.id)  # 21:00 New York, next day in UTC
    d = write(front_desk, 60 * 24, outcome=AuditOutcome.DENIED)  # the next day
    client = api(auditor)

    def listed(**params) -> list[str]:
        response = client.get(URL, params)
        assert response.status_code == 200, response.json()
        return [i for i in ids(response) if i in {str(e.id) for e in (a, b, c, d)}]

    assert listed() == [str(d.id), str(c.id), str(b.id), str(a.id)]
    assert listed(patient=str(patient.id)) == [str(b.id), str(a.id)]
    assert listed(actor=str(front_desk.id)) == [str(d.id), str(c.id), str(b.id)]
    assert listed(action="patient.update") == [str(b.id)]
    assert listed(outcome="denied") == [str(d.id)]
    assert listed(since="2025-03-11T00:30:00Z") == [str(d.id), str(c.id)]
    assert listed(since="2025-03-10T20:00:00-04:00") == [str(d.id), str(c.id), str(b.id)]
    # A date, or a time without offset, is the clinic's (New York): 21:00 there is 01:00 UTC.
    assert listed(since="2025-03-10T21:00:00") == [str(d.id), str(c.id)]
    assert listed(since="2025-03-11") == [str(d.id)]
    assert listed(patient=str(patient.id), action="patient.read") == [str(a.id)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "9999-12-31T23:00:00Z"}, "since"),
        ({"since": "0001-01-01"}, "since"),
        ({"since": "2025-03-10 21:00:00"}, "since"),
        ({"since": "20250310"}, "since"),
        ({"patient": "42"}, "patient"),
        ({"outcome": "x"}, "outcome"),
    ],
)
def test_bad_filters_are_400(api, auditor, params, field):
    response = api(auditor).get(URL, params)
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], list(body["errors"])) == ("invalid", [field])


@pytest.mark.django_db
def test_cursor_pagination_walks_every_event_once_newest_first(api, auditor, admin):
    events = [write(admin, n, object_id=n + 1) for n in range(7)]
    client = api(auditor)
    expected = [str(e.id) for e in reversed(events)]

    first = client.get(URL, {"page_size": 3, "action": "patient.read"}).json()
    assert [e["id"] for e in first["results"]] == expected[:3]
    assert first["previous"] is None
    assert parse_qs(urlparse(first["next"]).query)["page_size"] == ["3"]
    # Events written meanwhile (e.g. this very reading) do not shift the pages.
    write(admin, 100)
    second = client.get(first["next"]).json()
    assert [e["id"] for e in second["results"]] == expected[3:6]
    third = client.get(second["next"]).json()
    assert ([e["id"] for e in third["results"]], third["next"]) == (expected[6:], None)
    back = client.get(third["previous"]).json()
    assert [e["id"] for e in back["results"]] == expected[3:6]


@pytest.mark.django_db
def test_the_cursor_walks_one_large_read_both_ways(api, auditor, admin):
    """A read of more objects than a page leaves that many events at once: each has a moment
    of its own, so the cursor (on `at`) pages them forward and back alike."""
    audit.record_reads(
        actor=admin,
        action="patient.list",
        object_type="patient",
        objects=[(f"p{n}", None) for n in range(130)],
    )
    client = api(auditor)
    pages = [client.get(URL, {"page_size": 50, "action": "patient.list"}).json()]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).json())
    forward = [[e["object_id"] for e in page["results"]] for page in pages]
    assert [len(page) for page in forward] == [50, 50, 30]
    assert [oid for page in forward for oid in page] == [f"p{n}" for n in reversed(range(130))]
    back = [client.get(pages[2]["previous"]).json()]
    back.append(client.get(back[0]["previous"]).json())
    assert [[e["object_id"] for e in page["results"]] for page in back] == forward[1::-1]


@pytest.mark.django_db
def test_page_size_is_clamped_to_200(api, auditor, admin):
    audit.record_reads(
        actor=admin,
        action="patient.list",
        object_type="patient",
        objects=[(f"p{n}", None) for n in range(230)],
    )
    response = api(auditor).get(URL, {"page_size": 1000})
    assert len(response.json()["results"]) == 200
    assert response.json()["next"] is not None
    assert len(api(auditor).get(URL).json()["results"]) == 50


@pytest.mark.django_db
def test_bad_cursor_is_400_naming_it(api, auditor):
    response = api(auditor).get(URL, {"cursor": "garbage"})
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (response.status_code, body["code"], body["errors"]) == (
        400,
        "invalid",
        {"cursor": ["Invalid cursor"]},
    )


@pytest.mark.django_db
def test_each_reading_of_the_trail_is_on_the_trail(api, auditor, admin):
    """(What a page costs in queries: tests/clinic/test_query_counts.py.)"""
    client = api(auditor)
    write(admin, 0)
    assert len(client.get(URL).json()["results"]) == 1
    assert len(client.get(URL).json()["results"]) == 2  # the first reading, not this one
    assert trail_reads(auditor) == 2


def paged(rows, url: str) -> tuple[list[str], str | None, str | None]:
    """One page of `rows` as the trail's paginator reads it for `url`: ids, next, previous."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from clinic.api.audit_views import AuditCursorPagination

    paginator = AuditCursorPagination()
    page = paginator.paginate_queryset(rows, Request(APIRequestFactory().get(url)))
    return (
        [str(row["id"]) for row in page],
        paginator.get_next_link(),
        paginator.get_previous_link(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("page_size", [1, 2, 3, 50])
def test_the_whole_trail_pages_as_the_orm_s_queryset_both_ways(auditor, admin, clinic, page_size):
    """The unfiltered trail is read by a compiled statement (audit_views.WholeTrail), a
    filtered one by the ORM: the same pages and links, forward and back, events sharing a
    moment (the cursor's offsets) included."""
    from clinic.api.audit_views import WholeTrail, _columns

    for minute in (1, 1, 1, 2, 3, 3, 4):
        write(admin, minute)
    orm = AuditEvent.objects.filter(clinic_id=clinic.id).values(*_columns())
    url, url_back = f"http://testserver{URL}?page_size={page_size}", None
    pages, seen = 0, []
    while url:
        ours = paged(WholeTrail(clinic.id), url)
        assert ours == paged(orm, url)
        seen += ours[0]
        url, pages = ours[1], pages + 1
        if url is None:  # the last page: now back to the first
            url_back = ours[2]
    assert seen == [str(e) for e in orm.order_by("-at", "-id").values_list("id", flat=True)]
    assert pages == -(-7 // page_size)
    back = []
    while url_back:
        ours = paged(WholeTrail(clinic.id), url_back)
        assert ours == paged(orm, url_back)
        back = ours[0] + back
        url_back = ours[2]
    # (Back across events that share a moment, DRF's cursor may join pages: it does so alike.)
    assert set(back) <= set(seen) and (pages == 1 or back)


def forged(**cursor) -> str:
    import base64
    from urllib.parse import urlencode

    return base64.b64encode(urlencode(cursor).encode()).decode()


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{}, {"action": "patient.read"}], ids=["whole", "filtered"])
@pytest.mark.parametrize(
    "position", ["garbage", "2025-03-10 14:00:00", "2025-13-40 99:00:00+00:00"]
)
def test_a_cursor_at_a_position_the_trail_never_wrote_is_400(api, auditor, params, position):
    response = api(auditor).get(URL, {**params, "cursor": forged(o=0, p=position)})
    assert (response.status_code, response.json()["errors"]) == (
        400,
        {"cursor": ["Invalid cursor"]},
    )
