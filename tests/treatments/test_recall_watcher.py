"""The recall watcher against a local openFDA-shaped feed (pytest-httpserver), never the
internet: notices once per (recall, lot), quarantine, one email per admin, confirm, dismiss."""

import logging
import socket
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from clinic.models import AuditEvent, Role
from scheduling.notifications import sender
from scheduling.notifications.models import Notification
from tests.factories import PatientFactory, ScreeningFactory
from tests.factories.treatments import TipLotFactory
from tests.treatments.conftest import treatment_body
from treatments import recalls, rules
from treatments.models import RecallNotice, TipLot

FEED_PATH = "/device/recall.json"
NOTICES = "/api/v1/recall-notices/"


def recall(event="93012", code_info="Lot Numbers: SP2401, SP2402; UDI-DI 00850012345671", **more):
    return {
        "res_event_number": event,
        "product_res_number": f"Z-{event}-2026",
        "product_code": "QAI",
        "recall_status": "Open, Classified",
        "reason_for_recall": "Sterility of the needle cartridge may be compromised.",
        "product_description": "SkinPen Precision needle cartridge, 14 pin",
        "code_info": code_info,
        "event_date_initiated": "2026-11-20",
        **more,
    }


def feed(*results) -> dict:
    return {
        "meta": {"results": {"skip": 0, "limit": 1000, "total": len(results)}},
        "results": list(results),
    }


@pytest.fixture
def watcher(settings, httpserver):
    settings.RECALL_FEED_URL = httpserver.url_for(FEED_PATH) + '?search=product_code:"QAI"'
    settings.RECALL_FEED_TIMEOUT_SECONDS = 0.5
    settings.RECALL_FEED_ATTEMPTS = 2
    settings.RECALL_FEED_RETRY_BACKOFF_SECONDS = 0
    return httpserver


@pytest.fixture
def held_lot(clinic, provider) -> TipLot:
    return TipLotFactory(clinic=clinic, received_by=provider, lot_number="SP2401")


@pytest.fixture
def admins(clinic, make_user):
    return [
        make_user(Role.ADMIN, clinic, email="ann@clinic.example"),
        make_user(Role.ADMIN, clinic, email="bob@clinic.example"),
        make_user(Role.ADMIN, clinic, email=""),  # no address: no email
    ]


def send_emails():
    sender.send_due()


def status_of(api, user, lot) -> str:
    return api(user).get(f"/api/v1/tip-lots/{lot.id}/").json()["status"]


@pytest.mark.django_db
def test_repeated_polls_give_one_notice_per_recall_and_lot_and_one_email_per_admin(
    watcher, held_lot, admins, other_clinic, make_user, api
):
    elsewhere_admin = make_user(Role.ADMIN, other_clinic, email="eve@elsewhere.example")
    elsewhere = TipLotFactory(clinic=other_clinic, lot_number="sp2402")  # case does not matter
    unnamed = TipLotFactory(clinic=held_lot.clinic, lot_number="SP24")  # not a whole token
    watcher.expect_request(FEED_PATH).respond_with_json(
        feed(recall("93012"), recall("93013", code_info="Lot SP2401 only."))
    )

    for _poll in range(3):
        recalls.poll()
        send_emails()

    notices = RecallNotice.objects.order_by("source_id", "lot_number")
    assert [(n.source, n.source_id, n.tip_lot_id, n.status) for n in notices] == [
        ("openfda", "93012", held_lot.id, "open"),
        ("openfda", "93012", elsewhere.id, "open"),
        ("openfda", "93013", held_lot.id, "open"),
    ]
    held_lot.refresh_from_db()
    unnamed.refresh_from_db()
    assert held_lot.quarantined_at is not None
    assert unnamed.quarantined_at is None
    assert status_of(api, admins[0], held_lot) == "quarantined"
    assert status_of(api, admins[0], unnamed) == "active"
    # One email per admin with an address and notice, however many polls.
    assert sorted((m.to[0], m.subject) for m in mail.outbox) == [
        ("ann@clinic.example", "Recall notice: cartridge lot SP2401 is quarantined"),
        ("ann@clinic.example", "Recall notice: cartridge lot SP2401 is quarantined"),
        ("bob@clinic.example", "Recall notice: cartridge lot SP2401 is quarantined"),
        ("bob@clinic.example", "Recall notice: cartridge lot SP2401 is quarantined"),
        ("eve@elsewhere.example", "Recall notice: cartridge lot sp2402 is quarantined"),
    ]
    body = next(m.body for m in mail.outbox if m.to == [elsewhere_admin.email])
    assert "93012" in body
    assert "Sterility of the needle cartridge may be compromised." in body
    assert AuditEvent.objects.filter(action="recall_notice.open").count() == 3


@pytest.mark.django_db
def test_a_quarantined_lot_is_refused_at_treatment(watcher, held_lot, provider, session, api):
    watcher.expect_request(FEED_PATH).respond_with_json(feed(recall()))
    recalls.poll()
    client = api(provider)
    response = client.post(f"/api/v1/sessions/{session.id}/treatment/", treatment_body(held_lot))
    assert (response.status_code, response.json()["code"]) == (422, "tip_lot_quarantined")
    body = treatment_body(held_lot, tip_barcode=scan_of(held_lot))
    del body["tip_lot"]
    response = client.post(f"/api/v1/sessions/{session.id}/treatment/", body)
    assert (response.status_code, response.json()["code"]) == (422, "tip_lot_quarantined")
    held_lot.refresh_from_db()
    assert held_lot.quantity_used == 0


def scan_of(lot: TipLot) -> str:
    return f"(01)00850012345671(17){lot.expires_on:%y%m%d}(10){lot.lot_number}"


@pytest.mark.django_db
def test_dismiss_frees_the_lot_for_good(watcher, held_lot, admin, provider, session, api):
    watcher.expect_request(FEED_PATH).respond_with_json(feed(recall()))
    recalls.poll()
    notice = RecallNotice.objects.get()

    response = api(admin).post(f"{NOTICES}{notice.id}/dismiss/", {"reason": "Not our product"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "id": str(notice.id),
        "source": "openfda",
        "source_id": "93012",
        "tip_lot": str(held_lot.id),
        "lot_number": "SP2401",
        "reason": "Sterility of the needle cartridge may be compromised.",
        "product_description": "SkinPen Precision needle cartridge, 14 pin",
        "status": "dismissed",
        "created_at": body["created_at"],
        "resolved_at": body["resolved_at"],
        "resolved_by": str(admin.id),
        "dismiss_reason": "Not our product",
    }
    assert status_of(api, admin, held_lot) == "active"
    assert AuditEvent.objects.filter(action="recall_notice.dismiss", actor=admin).count() == 1
    # The next poll sees the same recall: the notice is not opened again.
    recalls.poll()
    assert RecallNotice.objects.get().status == "dismissed"
    response = api(provider).post(
        f"/api/v1/sessions/{session.id}/treatment/", treatment_body(held_lot)
    )
    assert response.status_code == 201, response.content
    again = api(admin).post(f"{NOTICES}{notice.id}/dismiss/", {"reason": "Twice"})
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")


@pytest.mark.django_db
def test_a_lot_held_by_two_recalls_is_free_once_both_are_dismissed(watcher, held_lot, admin, api):
    watcher.expect_request(FEED_PATH).respond_with_json(
        feed(recall("93012"), recall("93013", code_info="SP2401"))
    )
    recalls.poll()
    first, second = RecallNotice.objects.order_by("source_id")
    api(admin).post(f"{NOTICES}{first.id}/dismiss/", {"reason": "Not ours"})
    assert status_of(api, admin, held_lot) == "quarantined"
    api(admin).post(f"{NOTICES}{second.id}/dismiss/", {"reason": "Not ours"})
    assert status_of(api, admin, held_lot) == "active"


@pytest.mark.django_db
def test_confirm_recalls_the_lot_as_the_recall_endpoint_does(
    watcher, held_lot, admin, provider, clinic, make_session, api
):
    patient = PatientFactory(clinic=clinic, first_name="Ana", last_name="Avila")
    ScreeningFactory(patient=patient, screened_by=provider, screened_on=timezone.localdate())
    session = make_session(patient)
    treated = api(provider).post(
        f"/api/v1/sessions/{session.id}/treatment/", treatment_body(held_lot)
    )
    assert treated.status_code == 201, treated.content
    watcher.expect_request(FEED_PATH).respond_with_json(feed(recall()))
    recalls.poll()
    notice = RecallNotice.objects.get()

    response = api(admin).post(f"{NOTICES}{notice.id}/confirm/", {}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "lot_number": "SP2401",
        "recalled_at": body["recalled_at"],
        "affected_sessions": 1,
        "affected_patients": [
            {
                "id": str(patient.id),
                "first_name": "Ana",
                "last_name": "Avila",
                "email": patient.email,
                "phone": patient.phone,
                "sessions": [str(session.id)],
            }
        ],
    }
    held_lot.refresh_from_db()
    assert held_lot.recall_reason == "Sterility of the needle cartridge may be compromised."
    assert status_of(api, admin, held_lot) == "recalled"
    notice.refresh_from_db()
    assert (notice.status, notice.resolved_by_id) == ("confirmed", admin.id)
    assert set(
        AuditEvent.objects.filter(
            actor=admin, action__in=["recall_notice.confirm", "tip_lot.recall"]
        ).values_list("action", flat=True)
    ) == {"recall_notice.confirm", "tip_lot.recall"}
    assert Notification.objects.filter(kind="lot_recall", patient=patient).exists()
    again = api(admin).post(f"{NOTICES}{notice.id}/confirm/", {}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")


@pytest.mark.django_db
def test_confirm_takes_the_admins_reason(watcher, held_lot, admin, api):
    watcher.expect_request(FEED_PATH).respond_with_json(feed(recall()))
    recalls.poll()
    notice = RecallNotice.objects.get()
    response = api(admin).post(f"{NOTICES}{notice.id}/confirm/", {"reason": "FDA Z-1"})
    assert (response.status_code, response.json()["affected_sessions"]) == (200, 0)
    held_lot.refresh_from_db()
    assert held_lot.recall_reason == "FDA Z-1"


# --- A feed that fails changes nothing -----------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{FEED_PATH}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answer",
    [
        lambda server: server.expect_request(FEED_PATH).respond_with_data("oops", status=503),
        lambda server: server.expect_request(FEED_PATH).respond_with_data(
            "<html>Service down</html>", content_type="text/html"
        ),
        lambda server: server.expect_request(FEED_PATH).respond_with_json({"results": "none"}),
        lambda server: server.expect_request(FEED_PATH).respond_with_json([recall()]),
        lambda server: server.expect_request(FEED_PATH).respond_with_data(
            '{"results": [', content_type="application/json"
        ),
        lambda server: server.expect_request(FEED_PATH).respond_with_data("no", status=403),
    ],
    ids=["503", "html", "results_not_a_list", "not_an_object", "truncated_json", "403"],
)
def test_a_feed_that_fails_or_answers_garbage_changes_nothing(
    watcher, held_lot, admins, caplog, answer
):
    answer(watcher)
    with caplog.at_level(logging.WARNING, logger="treatments"):
        assert recalls.poll() is None
    assert not RecallNotice.objects.exists()
    held_lot.refresh_from_db()
    assert held_lot.quarantined_at is None
    assert any("recall feed not read, nothing changed" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_a_server_error_is_retried_a_bounded_number_of_times(watcher, held_lot):
    watcher.expect_request(FEED_PATH).respond_with_data("down", status=502)
    assert recalls.poll() is None
    assert len(watcher.log) == 2  # RECALL_FEED_ATTEMPTS


@pytest.mark.django_db
def test_a_feed_that_recovers_within_the_retries_is_read(watcher, held_lot):
    watcher.expect_ordered_request(FEED_PATH).respond_with_data("down", status=503)
    watcher.expect_ordered_request(FEED_PATH).respond_with_json(feed(recall()))
    assert recalls.poll() == recalls.PollResult(recalls=1, notices_created=1)


@pytest.mark.django_db
def test_a_feed_that_does_not_answer_changes_nothing(settings, held_lot, caplog):
    settings.RECALL_FEED_URL = closed_port_url()
    settings.RECALL_FEED_RETRY_BACKOFF_SECONDS = 0
    with caplog.at_level(logging.WARNING, logger="treatments"):
        assert recalls.poll() is None
    assert not RecallNotice.objects.exists()
    assert any("ConnectError" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_a_slow_feed_times_out_and_changes_nothing(watcher, held_lot, caplog):
    release = threading.Event()

    def stall(request):
        release.wait(5)  # longer than the client's timeout; released when the test ends
        from werkzeug import Response

        return Response("{}", content_type="application/json")

    watcher.expect_request(FEED_PATH).respond_with_handler(stall)
    try:
        with caplog.at_level(logging.WARNING, logger="treatments"):
            assert recalls.poll() is None
    finally:
        release.set()
    assert not RecallNotice.objects.exists()
    assert any("ReadTimeout" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_no_matches_is_not_a_failure(watcher, held_lot):
    # openFDA answers a search with no hits so.
    watcher.expect_request(FEED_PATH).respond_with_json(
        {"error": {"code": "NOT_FOUND", "message": "No matches found!"}}, status=404
    )
    assert recalls.poll() == recalls.PollResult(recalls=0, notices_created=0)


@pytest.mark.django_db
def test_entries_without_an_id_or_code_info_are_skipped(watcher, held_lot):
    watcher.expect_request(FEED_PATH).respond_with_json(
        feed(
            recall(event="", product_res_number="", code_info="SP2401"),
            recall(code_info=""),
            "not an object",
            recall(event="93014", code_info="SP2401"),
        )
    )
    assert recalls.poll() == recalls.PollResult(recalls=1, notices_created=1)
    assert RecallNotice.objects.get().source_id == "93014"


@pytest.mark.django_db
def test_pages_are_followed_and_the_limit_asked_for(watcher, held_lot):
    second = watcher.url_for("/page2")
    watcher.expect_request(
        FEED_PATH, query_string={"search": 'product_code:"QAI"', "limit": "1000"}
    ).respond_with_json(
        feed(recall("93012", code_info="nothing of ours")),
        headers={"Link": f'<{second}>; rel="next"'},
    )
    watcher.expect_request("/page2").respond_with_json(feed(recall("93099")))
    assert recalls.poll() == recalls.PollResult(recalls=2, notices_created=1)
    assert RecallNotice.objects.get().source_id == "93099"


@pytest.mark.django_db
def test_the_watcher_is_off_without_a_feed_url(settings, httpserver, held_lot):
    settings.RECALL_FEED_URL = ""
    assert recalls.poll() is None
    assert httpserver.log == []


@pytest.mark.django_db
def test_the_task_polls(watcher, held_lot):
    from treatments.tasks import poll_recall_feed

    watcher.expect_request(FEED_PATH).respond_with_json(feed(recall()))
    assert poll_recall_feed.apply().get() == {"recalls": 1, "notices_created": 1}


# --- Whole tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lot_number", "code_info", "named"),
    [
        ("SP2401", "Lot Numbers: SP2401, SP2402", True),
        ("SP2401", "lot sp2401.", True),
        ("SP2401", "Lots SP2400-SP2409", False),  # a range is not a token of the lot
        ("SP24", "Lot Numbers: SP2401, SP2402", False),
        ("2401", "Lot#2401; Exp 2027-01", True),
        ("2401", "Model SP2401", False),
        ("SP-2401", "Lot SP-2401 (UDI 00850012345671)", True),
        ("2401", "Lot SP-2401", False),
        ("2401", "Lots 2401/2402", True),
        ("AB/1", "Lots AB/1 and AB/2", True),
        ("24.01", "Lot 24.01.", True),
        ("SP2401", "", False),
        ("SP2401", "UDI-DI: 00850012345671; Lot: SP2401; Expiration Date: 2027-12-31", True),
    ],
)
def test_lots_are_matched_as_whole_tokens(lot_number, code_info, named):
    assert rules.lot_named_in(lot_number, code_info) is named


# --- The API ----------------------------------------------------------------------------------


def open_notice(lot: TipLot, source_id: str = "93012") -> RecallNotice:
    return recalls.record_recall(
        recalls.recall_feed.FeedRecall(
            source_id=source_id,
            code_info=lot.lot_number,
            reason="Sterility",
            product_description="Cartridge",
            record={},
        )
    )[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.ADMIN, 200), (Role.PROVIDER, 200), (Role.AUDITOR, 200), (Role.FRONT_DESK, 403)],
)
def test_who_may_read_notices(staff_by_role, held_lot, api, role, status):
    open_notice(held_lot)
    response = api(staff_by_role[role]).get(NOTICES)
    assert response.status_code == status
    if status == 200:
        assert [n["lot_number"] for n in response.json()["results"]] == ["SP2401"]


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["confirm", "dismiss"])
@pytest.mark.parametrize("role", [Role.PROVIDER, Role.AUDITOR, Role.FRONT_DESK])
def test_only_admins_confirm_or_dismiss(staff_by_role, held_lot, api, role, action):
    notice = open_notice(held_lot)
    response = api(staff_by_role[role]).post(f"{NOTICES}{notice.id}/{action}/", {"reason": "x"})
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    notice.refresh_from_db()
    assert notice.status == "open"


@pytest.mark.django_db
def test_another_clinics_notice_is_404(admin, other_clinic, api):
    notice = open_notice(TipLotFactory(clinic=other_clinic, lot_number="SP2401"))
    client = api(admin)
    assert client.get(NOTICES).json()["results"] == []
    for path in (f"{NOTICES}{notice.id}/", f"{NOTICES}{notice.id}/confirm/"):
        response = client.get(path) if path.endswith(f"{notice.id}/") else client.post(path, {})
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    response = client.post(f"{NOTICES}{notice.id}/dismiss/", {"reason": "x"})
    assert response.status_code == 404


@pytest.mark.django_db
def test_dismiss_needs_a_reason(admin, held_lot, api):
    notice = open_notice(held_lot)
    response = api(admin).post(f"{NOTICES}{notice.id}/dismiss/", {})
    assert (response.status_code, list(response.json()["errors"])) == (400, ["reason"])


@pytest.mark.django_db
def test_notices_filter_by_status(admin, clinic, held_lot, api):
    dismissed = open_notice(TipLotFactory(clinic=clinic, lot_number="SP2402"))
    recalls.dismiss(actor=admin, notice=dismissed, reason="Not ours")
    still_open = open_notice(held_lot)
    client = api(admin)
    ids = {
        status: [n["id"] for n in client.get(NOTICES, {"status": status}).json()["results"]]
        for status in ("open", "dismissed", "confirmed")
    }
    assert ids == {"open": [str(still_open.id)], "dismissed": [str(dismissed.id)], "confirmed": []}
    response = client.get(NOTICES, {"status": "nonsense"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


@pytest.mark.django_db
def test_a_notice_for_an_expired_lot_still_quarantines(clinic, provider, api, admin):
    lot = TipLotFactory(
        clinic=clinic, received_by=provider, expires_on=timezone.localdate() - timedelta(days=3)
    )
    open_notice(lot)
    assert status_of(api, admin, lot) == "quarantined"
