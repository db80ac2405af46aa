"""Scan-to-chart: POST /tip-lots/scan/, receiving by barcode, treating by tip_barcode."""

from datetime import date, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from clinic.models import AuditEvent, Role
from tests.factories.treatments import TipLotFactory
from tests.treatments.conftest import treatment_body
from treatments.models import TipLot, TreatmentRecord

GTIN = "00850012345671"
OTHER_GTIN = "00884567890126"
GS = "\x1d"
SCAN_URL = "/api/v1/tip-lots/scan/"


def expiry() -> date:
    return timezone.localdate() + timedelta(days=400)


def element_string(lot: str, expires_on: date, serial: str | None = None, gtin: str = GTIN) -> str:
    """As a DataMatrix scanner sends it: symbology identifier, GS after variable fields."""
    value = f"]d201{gtin}17{expires_on:%y%m%d}10{lot}"
    return value + (f"{GS}21{serial}" if serial else "")


def hrf(lot: str, expires_on: date, serial: str | None = None, gtin: str = GTIN) -> str:
    value = f"(01){gtin}(17){expires_on:%y%m%d}(10){lot}"
    return value + (f"(21){serial}" if serial else "")


def url(session) -> str:
    return f"/api/v1/sessions/{session.id}/treatment/"


def scan_body(lot: TipLot, barcode: str) -> dict:
    body = treatment_body(lot, tip_barcode=barcode)
    del body["tip_lot"]
    return body


def lot_body(lot: TipLot, status: str = "active") -> dict:
    return {
        "id": str(lot.id),
        "lot_number": lot.lot_number,
        "gtin": lot.gtin,
        "expires_on": lot.expires_on.isoformat(),
        "quantity_received": lot.quantity_received,
        "quantity_used": lot.quantity_used,
        "quantity_remaining": lot.quantity_remaining,
        "status": status,
        "received_at": lot.received_at.isoformat().replace("+00:00", "Z"),
        "recalled_at": None,
    }


@pytest.fixture
def scanned_lot(clinic, provider) -> TipLot:
    return TipLotFactory(
        clinic=clinic, received_by=provider, lot_number="SP2401", gtin=GTIN, expires_on=expiry()
    )


# --- POST /tip-lots/scan/ ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "form",
    [
        lambda e: element_string("SP2401", e, "C0001"),
        lambda e: hrf("SP2401", e, "C0001"),
        lambda e: f"https://id.gs1.org/01/{GTIN}/10/SP2401/21/C0001?17={e:%y%m%d}",
    ],
    ids=["element_string", "hrf", "digital_link"],
)
def test_scan_finds_the_clinics_lot(api, provider, scanned_lot, form):
    response = api(provider).post(SCAN_URL, {"barcode": form(expiry())}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "gtin": GTIN,
        "lot_number": "SP2401",
        "expires_on": expiry().isoformat(),
        "serial_number": "C0001",
        "tip_lot": lot_body(scanned_lot),
    }


@pytest.mark.django_db
def test_scan_of_an_unknown_lot_answers_null(api, admin, other_clinic):
    # Another clinic's lot of that number is not this clinic's.
    TipLotFactory(clinic=other_clinic, lot_number="SP2401", gtin=GTIN, expires_on=expiry())
    response = api(admin).post(SCAN_URL, {"barcode": hrf("SP2401", expiry())}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "gtin": GTIN,
        "lot_number": "SP2401",
        "expires_on": expiry().isoformat(),
        "serial_number": None,
        "tip_lot": None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("barcode", "lot_gtin"),
    [
        (lambda: hrf("SP2401", expiry() + timedelta(days=1)), GTIN),
        (lambda: hrf("SP2401", expiry(), gtin=OTHER_GTIN), GTIN),
    ],
    ids=["expiry_differs", "gtin_differs"],
)
def test_scan_of_a_lot_whose_record_differs_answers_null(api, provider, clinic, barcode, lot_gtin):
    TipLotFactory(clinic=clinic, lot_number="SP2401", gtin=lot_gtin, expires_on=expiry())
    response = api(provider).post(SCAN_URL, {"barcode": barcode()}, format="json")
    assert (response.status_code, response.json()["tip_lot"]) == (200, None)


@pytest.mark.django_db
def test_a_lot_received_without_gtin_matches_on_lot_number(api, provider, clinic):
    lot = TipLotFactory(clinic=clinic, lot_number="SP2401", gtin="", expires_on=expiry())
    response = api(provider).post(SCAN_URL, {"barcode": hrf("SP2401", expiry())}, format="json")
    assert response.json()["tip_lot"] == lot_body(lot)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("barcode", "message"),
    [
        (
            f"(01){GTIN}(10)SP2401",
            "Missing expiry date (17): a cartridge UDI carries GTIN (01), expiry (17) and lot "
            "(10).",
        ),
        (
            "(01)00850012345672(17)280300(10)SP2401",
            "GTIN (01) 00850012345672: Invalid GTIN check digit for '00850012345672': "
            "Expected 1, got 2.",
        ),
    ],
)
def test_a_bad_barcode_is_400_naming_what_is_wrong(api, provider, barcode, message):
    response = api(provider).post(SCAN_URL, {"barcode": barcode}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["errors"]) == ("invalid", {"barcode": [message]})


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"barcode": None}, {"barcode": 12}, {"barcode": ""}])
def test_a_missing_barcode_is_400(api, provider, body):
    response = api(provider).post(SCAN_URL, body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert list(response.json()["errors"]) == ["barcode"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.ADMIN, 200), (Role.PROVIDER, 200), (Role.FRONT_DESK, 403), (Role.AUDITOR, 403)],
)
def test_who_may_scan(api, staff_by_role, role, status):
    response = api(staff_by_role[role]).post(
        SCAN_URL, {"barcode": hrf("SP2401", expiry())}, format="json"
    )
    assert response.status_code == status


# --- Receiving by barcode ------------------------------------------------------------------


@pytest.mark.django_db
def test_receive_a_lot_by_scanning_its_box(api, provider):
    # Day 00: the box says "March 2028", the lot expires on the month's last day.
    barcode = f"]d201{GTIN}1728030010SP2401"
    response = api(provider).post(
        "/api/v1/tip-lots/", {"barcode": barcode, "quantity_received": 20}, format="json"
    )
    assert response.status_code == 201, response.content
    lot = TipLot.objects.get()
    assert response.json() == {**lot_body(lot), "quantity_received": 20, "quantity_remaining": 20}
    assert (lot.lot_number, lot.gtin, lot.expires_on) == ("SP2401", GTIN, date(2028, 3, 31))
    assert lot.udi_carrier == f"(01){GTIN}(17)280300(10)SP2401"
    assert AuditEvent.objects.get(action="tip_lot.receive").detail == {
        "lot_number": "SP2401",
        "quantity": 20,
        "scanned": True,
    }


@pytest.mark.django_db
def test_receiving_by_barcode_agrees_with_fields_given_too(api, provider):
    client = api(provider)
    response = client.post(
        "/api/v1/tip-lots/",
        {"barcode": hrf("SP2401", expiry()), "lot_number": "SP9999", "quantity_received": 5},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"lot_number": ["Differs from the barcode's SP2401."]}
    response = client.post(
        "/api/v1/tip-lots/",
        {"barcode": hrf("SP2401", expiry()), "lot_number": "SP2401", "quantity_received": 5},
        format="json",
    )
    assert response.status_code == 201


@pytest.mark.django_db
def test_receiving_needs_a_barcode_or_the_lots_fields(api, provider):
    response = api(provider).post("/api/v1/tip-lots/", {"quantity_received": 5}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "lot_number": ["This field is required (or give barcode)."],
        "expires_on": ["This field is required (or give barcode)."],
    }


@pytest.mark.django_db
def test_receiving_a_bad_barcode_is_400(api, provider):
    response = api(provider).post(
        "/api/v1/tip-lots/",
        {"barcode": f"(01){GTIN}(17)280300", "quantity_received": 5},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "barcode": [
            "Missing lot number (10): a cartridge UDI carries GTIN (01), expiry (17) and lot (10)."
        ]
    }
    assert not TipLot.objects.exists()


# --- Treating by tip_barcode ---------------------------------------------------------------


@pytest.mark.django_db
def test_treat_by_scanning_the_cartridge(api, provider, session, scanned_lot):
    response = api(provider).post(
        url(session), scan_body(scanned_lot, element_string("SP2401", expiry(), "C0001"))
    )
    assert response.status_code == 201, response.content
    body = response.json()
    record = TreatmentRecord.objects.get()
    assert (body["tip_lot"], body["lot_number"], body["serial_number"]) == (
        str(scanned_lot.id),
        "SP2401",
        "C0001",
    )
    assert record.serial_number == "C0001"
    scanned_lot.refresh_from_db()
    assert scanned_lot.quantity_used == 1


@pytest.mark.django_db
def test_a_record_without_a_scanned_serial_says_null(api, provider, session, scanned_lot):
    response = api(provider).post(url(session), scan_body(scanned_lot, hrf("SP2401", expiry())))
    assert (response.status_code, response.json()["serial_number"]) == (201, None)


@pytest.mark.django_db
def test_a_serial_is_used_once_per_clinic(api, provider, make_session, scanned_lot, clinic):
    client = api(provider)
    first, second = make_session(), make_session()
    barcode = element_string("SP2401", expiry(), "C0001")
    assert client.post(url(first), scan_body(scanned_lot, barcode)).status_code == 201
    response = client.post(url(second), scan_body(scanned_lot, barcode))
    assert (response.status_code, response.json()["code"]) == (409, "tip_already_used")
    scanned_lot.refresh_from_db()
    assert scanned_lot.quantity_used == 1
    # Another serial of the same lot is another cartridge.
    response = client.post(
        url(second), scan_body(scanned_lot, element_string("SP2401", expiry(), "C0002"))
    )
    assert response.status_code == 201


@pytest.mark.django_db
def test_the_serial_constraint_holds_without_the_service(provider, make_session, scanned_lot):
    """The named constraint stands behind the check (a race the check cannot see)."""
    first, second = make_session(), make_session()
    values = {
        "clinic": scanned_lot.clinic,
        "patient_id": first.patient_id,
        "provider": provider,
        "tip_lot": scanned_lot,
        "lot_number": "SP2401",
        "lot_expires_on": scanned_lot.expires_on,
        "performed_at": timezone.now(),
        "serial_number": "C0001",
    }
    TreatmentRecord.objects.create(session=first, **values)
    with (
        pytest.raises(IntegrityError, match="treatments_treatmentrecord_serial_once"),
        transaction.atomic(),
    ):
        TreatmentRecord.objects.create(
            session=second, **{**values, "patient_id": second.patient_id}
        )


@pytest.mark.django_db
def test_an_unknown_lot_is_422(api, provider, session, scanned_lot):
    response = api(provider).post(url(session), scan_body(scanned_lot, hrf("SP9999", expiry())))
    assert (response.status_code, response.json()["code"]) == (422, "tip_lot_unknown")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "barcode",
    [
        lambda: hrf("SP2401", expiry() - timedelta(days=30)),
        lambda: hrf("SP2401", expiry(), gtin=OTHER_GTIN),
    ],
    ids=["expiry_differs", "gtin_differs"],
)
def test_a_lot_whose_record_differs_is_422_mismatch(api, provider, session, scanned_lot, barcode):
    response = api(provider).post(url(session), scan_body(scanned_lot, barcode()))
    assert (response.status_code, response.json()["code"]) == (422, "tip_lot_mismatch")
    scanned_lot.refresh_from_db()
    assert scanned_lot.quantity_used == 0


@pytest.mark.django_db
def test_a_gtin_14_matches_a_lot_received_with_gtin_13(api, provider, session, clinic):
    lot = TipLotFactory(clinic=clinic, lot_number="SP2401", gtin=GTIN[1:], expires_on=expiry())
    response = api(provider).post(url(session), scan_body(lot, hrf("SP2401", expiry())))
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_every_other_treatment_rule_still_applies(api, provider, session, clinic):
    lot = TipLotFactory(
        clinic=clinic,
        lot_number="SP2401",
        gtin=GTIN,
        expires_on=clinic.today() - timedelta(days=1),
    )
    response = api(provider).post(url(session), scan_body(lot, hrf("SP2401", lot.expires_on)))
    assert (response.status_code, response.json()["code"]) == (422, "tip_lot_expired")


@pytest.mark.django_db
@pytest.mark.parametrize("both", [True, False])
def test_tip_lot_or_tip_barcode_exactly_one(api, provider, session, scanned_lot, both):
    body = treatment_body(scanned_lot, tip_barcode=hrf("SP2401", expiry()))
    if not both:
        del body["tip_lot"], body["tip_barcode"]
    response = api(provider).post(url(session), body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "tip_lot": ["Give the cartridge's tip_lot or its tip_barcode (one of them)."]
    }


@pytest.mark.django_db
def test_a_bad_tip_barcode_is_400(api, provider, session, scanned_lot):
    response = api(provider).post(url(session), scan_body(scanned_lot, "(01)00850012345672"))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["tip_barcode"]
