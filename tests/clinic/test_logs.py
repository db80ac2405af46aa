"""No patient data in logs: the redaction filter on every handler, Patient's str(), and a whole
booking-to-treatment flow over the API whose every log record is read back."""

import logging
import smtplib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import override_settings

from clinic import logs
from patients.models import Patient
from scheduling.channels import SMSBackend
from scheduling.notifications import scans
from tests.factories import PatientFactory
from tests.factories.scheduling import ATTESTATION
from tests.factories.treatments import TipLotFactory


@pytest.fixture(autouse=True)
def _fresh_known_values():
    logs.forget()
    yield
    logs.forget()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "call (202) 555-0143, +44 20 7946 0958, 202-555-0143 or 202.555.0143.",
            "call [phone], [phone], [phone] or [phone].",
        ),
        ("write to jane.doe+x@mail.example.com", "write to [email]"),
        (
            '"GET /api/v1/patients/?search=Quennell&page=2 HTTP/1.1" 200',
            '"GET /api/v1/patients/?[query] HTTP/1.1" 200',
        ),
        ("GET https://api.example/x/?to=jane failed", "GET https://api.example/x/?[query] failed"),
        ("born 1990-05-17, or 05/17/1990", "born [date], or [date]"),
        (
            "DETAIL:  Key (clinic_id, lower(email::text))=(4795485c-dc3b-4488-a6a6-1678337174"
            "81, jane@example.com) already exists.",
            "DETAIL:  Key (clinic_id, lower(email::text))=([redacted]) already exists.",
        ),
        (
            "DETAIL:  Failing row contains (4795485c, Jane, Doe, 1990-05-17, null).",
            "DETAIL:  Failing row contains ([redacted]).",
        ),
        (
            "SMTPRecipientsRefused: {'jane@example.com': (550, b'5.1.1 unknown')}",
            "SMTPRecipientsRefused: {'[email]': (550, b'5.1.1 unknown')}",
        ),
    ],
)
def test_shapes_of_patient_data_are_redacted(text, expected):
    assert logs.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Session 4795485c-dc3b-4488-a6a6-167833717481 at 2026-12-05 10:00",
        "request 4f2c1234567890abcdef1234567890ab took 1234567 us; sent: {'sent': 12}",
        '10.100.200.1 [02/Dec/2026:06:30:47 +0000] "GET /api/v1/patients/ HTTP/1.1" 401 150 862ms',
        "version 1.2.3 of 127.0.0.1, 10 000 000 rows",
        'audit checkpoint {"chain": "audit", "hash": "ab12345678901234ff", "sequence": 12345678,'
        ' "signature": "q83+1234567890/aZ9=", "signed_at": "2026-12-02T06:17:33.123456+00:00"}',
    ],
)
def test_ids_counts_timestamps_and_signatures_are_kept(text):
    assert logs.redact(text) == text


@pytest.mark.django_db
def test_a_patient_loaded_here_is_redacted_by_value_wherever_it_appears():
    patient = PatientFactory(first_name="Philippa", last_name="Quennell", phone="+12025550188")
    logs.forget()
    Patient.objects.get(pk=patient.pk)  # loading is what makes it known
    assert logs.redact("patient Philippa QUENNELL (philippa) +12025550188 ok") == (
        "patient [patient] ([patient]) [phone] ok"
    )
    assert logs.redact("Philippas") == "Philippas"  # whole words only
    assert logs.redact("texted 2025550188 and 12025550188") == "texted [patient] and [patient]"


@pytest.mark.django_db
def test_a_patient_prints_as_its_id_never_its_name():
    patient = PatientFactory(first_name="Philippa", last_name="Quennell")
    assert str(patient) == f"Patient {patient.pk}"
    assert repr(patient) == f"<Patient: Patient {patient.pk}>"


@pytest.mark.django_db
@pytest.mark.parametrize("header", [{}, {"HTTP_X_REQUEST_ID": "0123456789abcdef0123456789abcdef"}])
def test_a_request_writes_no_line_about_its_request_id(api, admin, caplog, header):
    """django_guid's INFO line per request (whether X-Request-ID came) is left out; the id is
    still answered, and INFO lines of ours are still written (so the check can fail)."""
    with caplog.at_level(logging.DEBUG):
        response = api(admin).get("/api/v1/clinic/", **header)
        logging.getLogger("clinic").info("a line of ours")
    assert response.status_code == 200
    guid = response["X-Request-ID"]
    assert guid == header.get("HTTP_X_REQUEST_ID", guid) and len(guid) == 32
    assert [r.name for r in caplog.records if r.name.startswith("django_guid")] == []
    ours = [r for r in caplog.records if r.getMessage() == "a line of ours"]
    assert len(ours) == 1


def test_every_handler_has_the_filter():
    configured = settings.LOGGING["handlers"]
    assert {name: handler["filters"][-1] for name, handler in configured.items()} == {
        name: "redact_patient_data" for name in configured
    }
    # Every handler of any logger that is not pytest's own (Django's defaults included).
    live = [
        handler
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for handler in getattr(logger, "handlers", [])
        if not type(handler).__module__.startswith("_pytest")
        and not isinstance(handler, logging.NullHandler)
    ]
    assert live
    assert [
        handler
        for handler in live
        if not any(isinstance(f, logs.RedactPatientData) for f in handler.filters)
    ] == []


class RefusingSMS(SMSBackend):
    """A provider whose refusal quotes the number, as real ones do."""

    def send(self, *, to, body, reference):
        raise RuntimeError(f"provider refused {to}: not a mobile number")


class RefusingEmail:
    def __init__(self, **kwargs):
        pass

    def send_messages(self, messages):
        recipients = {to: (550, b"5.1.1 mailbox unavailable") for m in messages for to in m.to}
        raise smtplib.SMTPRecipientsRefused(recipients)


PHILIPPA = {
    "first_name": "Philippa",
    "last_name": "Quennell-Stroud",
    "date_of_birth": "1984-07-23",
    "email": "pq.stroud@example.org",
    "phone": "(202) 555-0188",
    "fitzpatrick_type": 3,
    "sms_opt_in": True,
    "email_opt_in": True,
}
# Every way the patient's data could be written.
SECRETS = [
    "Philippa",
    "Quennell",
    "Stroud",
    "pq.stroud",
    "example.org",
    "555-0188",
    "5550188",
    "1984-07-23",
    "07/23/1984",
    "23/07/1984",
]


@pytest.mark.django_db
@override_settings(
    SMS_BACKEND="tests.clinic.test_logs.RefusingSMS",
    EMAIL_BACKEND="tests.clinic.test_logs.RefusingEmail",
)
def test_a_booking_to_treatment_flow_logs_no_patient_data(
    api, clinic, front_desk, provider, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    desk, doctor = api(front_desk), api(provider)
    lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=5)
    start = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 10:00 in New York
    with time_machine.travel(start, tick=False) as clock:
        patient = desk.post("/api/v1/patients/", PHILIPPA, format="json").json()
        refused = desk.post("/api/v1/patients/", {**PHILIPPA, "email": "x"}, format="json")
        assert refused.status_code == 400
        assert desk.post(f"/api/v1/patients/{patient['id']}/screenings/", {}).status_code == 201
        series = desk.post(
            "/api/v1/series/",
            {"patient": patient["id"], "indication": "acne_scars", "planned_sessions": 3},
        ).json()
        booked = desk.post(
            "/api/v1/sessions/",
            {
                "series": series["id"],
                "provider": str(provider.id),
                "starts_at": (start + timedelta(hours=1)).isoformat(),
            },
        )
        assert booked.status_code == 201, booked.content
        session = booked.json()["id"]
        clock.move_to(start + timedelta(hours=1, minutes=5))
        checked_in = desk.post(f"/api/v1/sessions/{session}/check-in/", ATTESTATION, format="json")
        assert checked_in.status_code == 200, checked_in.content
        treated = doctor.post(
            f"/api/v1/sessions/{session}/treatment/",
            {"tip_lot": str(lot.id), "depths": [{"area": "cheeks", "depth_mm": "1.0"}]},
            format="json",
        )
        assert treated.status_code == 201, treated.content
        assert doctor.get(f"/api/v1/sessions/{session}/aftercare/").status_code == 200
        assert desk.get("/api/v1/patients/", {"search": "Quennell"}).json()["results"]
        fhir = doctor.get(f"/api/v1/fhir/Patient/{patient['id']}/$everything")
        assert fhir.status_code == 200

        # A bug whose message names the patient, as a careless one would.
        from patients import services

        def careless(**kwargs):
            found = Patient.objects.get(pk=patient["id"])
            raise RuntimeError(
                f"cannot archive {found.first_name} {found.last_name}, born "
                f"{found.date_of_birth}, {found.email}"
            )

        monkeypatch.setattr(services, "archive_patient", careless)
        desk.raise_request_exception = False
        assert desk.post(f"/api/v1/patients/{patient['id']}/archive/").status_code == 500

        # Messages to the patient, refused by providers that quote the address.
        # The aftercare check-in, the day after: the beat's scan queues and sends it.
        clock.move_to(start + timedelta(days=1, hours=1))
        result = scans.scan()
        assert (result["aftercare_checkin"], result["send_retry"]) == (2, 2), result

    console = next(h for h in logging.getLogger().handlers if h.name == "console")
    written = []
    for record in caplog.records:
        console.filter(record)
        written.append(console.format(record))
    text = "\n".join(written)
    assert "[email]" in text and "[phone]" in text and "[patient]" in text  # it did try
    assert [secret for secret in SECRETS if secret.lower() in text.lower()] == []
