"""Seeding a benchmark database at scale with COPY.

A dataset is `clinics` clinics and `sessions` sessions. The first clinic is the one measured
("the large clinic"): 20 providers, 100 sessions a day, 10 sessions per patient (two series of
five, about 100 days apart), one tip lot per 1,000 treatments. With more than one clinic it
holds a tenth of the sessions and the others share the rest (3 providers each), so at 1,000,000
sessions the large clinic has 100,000 sessions over 1,000 days and 10,000 patients, and the
dataset 100,000 patients and 1,000 lots. At 10,000 sessions and one clinic the same clinic
shape covers 100 days: the requests measured return the same number of rows on both.

Past sessions are completed, with a treatment record and two depths; the next 30 days are
booked. Every session has its `session.book` audit event and every record its
`treatment.record` one. Both hash chains are computed here in Python with the verifier's own
canonical functions (`clinic.audit.audit_canonical`, `treatments.integrity.record_canonical`),
continuing the chain each clinic already has from its creation, so `verify_audit` passes on the
seeded data. Rows go in with `session_replication_role = replica` (no per-row FK or chain
triggers, every constraint and index still applies).

Today is kept for the measured writes: `targets` fresh patients of the large clinic (screened
today, each with a new series) and, for half of them, a checked-in session today to treat.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from clinic import audit
from clinic import services as clinic_services
from clinic.models import AuditEvent, Clinic, Handpiece, Role, User
from scheduling.models import WorkingInterval
from treatments.integrity import record_canonical
from treatments.models import TipLot

MAIN_PROVIDERS = 20
OTHER_PROVIDERS = 3
MAIN_PER_DAY = 100
SESSIONS_PER_PATIENT = 10
SERIES_SIZE = 5
USES_PER_LOT = 1000
FUTURE_DAYS = 30
SESSION_MINUTES = 30
ZONE = "America/New_York"
SURNAME_SYLLABLES = ("ba", "ce", "di", "fo", "gu", "ha", "je", "ki", "lo", "mu")
FIRST_NAMES = ("Ann", "Bea", "Cal", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Joy")
PASSWORD = "bench-Password-0000"


def surname(n: int) -> str:
    """The n-th of 1,000 distinct seven-letter surnames (none a substring of another)."""
    a, b, c = n // 100 % 10, n // 10 % 10, n % 10
    return (SURNAME_SYLLABLES[a] + SURNAME_SYLLABLES[b] + SURNAME_SYLLABLES[c] + "n").capitalize()


def key(*parts: Any) -> uuid.UUID:
    """A deterministic random-looking id (so the same dataset is the same on every run)."""
    return uuid.UUID(bytes=hashlib.blake2b(repr(parts).encode(), digest_size=16).digest())


@dataclass(frozen=True)
class ClinicShape:
    index: int
    sessions: int
    providers: int
    days: int

    @property
    def patients(self) -> int:
        return max(1, self.sessions // SESSIONS_PER_PATIENT)

    @property
    def per_day(self) -> int:
        return -(-self.sessions // self.days)

    @property
    def lots(self) -> int:
        return max(1, -(-self.sessions // USES_PER_LOT))


def shapes(sessions: int, clinics: int) -> list[ClinicShape]:
    main = sessions if clinics == 1 else sessions // 10
    # A patient's ten sessions fall on ten different days, however small the dataset.
    days = max(SESSIONS_PER_PATIENT, main // MAIN_PER_DAY)
    result = [ClinicShape(0, main, MAIN_PROVIDERS, days)]
    rest = sessions - main
    for n in range(1, clinics):
        share = rest // (clinics - 1) + (1 if n <= rest % (clinics - 1) else 0)
        # At most ten sessions a day per provider (08:00 to 18:00, one an hour).
        own_days = max(days, -(-share // (OTHER_PROVIDERS * 10)), SESSIONS_PER_PATIENT)
        result.append(ClinicShape(n, share, OTHER_PROVIDERS, own_days))
    return result


@dataclass
class Seeded:
    """What the measurement needs to know about the large clinic (looked up, not kept)."""

    clinic: Clinic


def clinic_name(index: int) -> str:
    return f"Bench clinic {index:03d}"


def seeded(sessions: int, clinics: int) -> int | None:
    """The number of write targets of the dataset already seeded, None if there is none."""
    marker = Clinic.objects.filter(name=clinic_name(0)).first()
    if marker is None:
        return None
    expected = f"{sessions} sessions, {clinics} clinics"
    found = AuditEvent.objects.filter(clinic=marker, action="bench.seeded").first()
    if found is None or found.detail.get("dataset") != expected:
        raise SystemExit(
            f"the benchmark database holds another dataset ({found and found.detail}); "
            "drop it (or pass --reseed) to seed " + expected
        )
    return int(found.detail["targets"])


def seed(sessions: int, clinics: int, targets: int, log=print, analyze: bool = True) -> None:
    started = time.perf_counter()
    today = timezone.localdate(timezone=ZoneInfo(ZONE))
    plan = shapes(sessions, clinics)
    with transaction.atomic():
        made = [_clinic(shape) for shape in plan]
    log(f"  clinics, staff, lots: {time.perf_counter() - started:.0f} s")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        raw = cursor.connection
        _copy_patients(raw, plan, made, today, targets)
        _copy_series(raw, plan, made, targets)
        _copy_sessions(raw, plan, made, today, targets)
        log(f"  patients, screenings, series, sessions: {time.perf_counter() - started:.0f} s")
        _copy_records(raw, plan, made, today)
        log(f"  treatment records and depths: {time.perf_counter() - started:.0f} s")
        _copy_audit(raw, plan, made, today)
        log(f"  audit events: {time.perf_counter() - started:.0f} s")
    audit.record(
        actor=None,
        actor_label="benchmark",
        clinic_id=made[0]["clinic"].id,
        action="bench.seeded",
        detail={"dataset": f"{sessions} sessions, {clinics} clinics", "targets": targets},
    )
    if not analyze:  # inside a transaction (the smoke test): no VACUUM
        return
    with connection.cursor() as cursor:
        for table in (
            "patients_patient",
            "patients_screening",
            "scheduling_series",
            "scheduling_session",
            "treatments_treatmentrecord",
            "treatments_treatmentdepth",
            "clinic_auditevent",
            "treatments_tiplot",
            "clinic_user",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    log(f"  seeded {sessions} sessions in {clinics} clinics: {time.perf_counter() - started:.0f} s")


# --- Clinics, staff, lots (the ORM: a few thousand rows) ---------------------------------------


def _clinic(shape: ClinicShape) -> dict[str, Any]:
    clinic, admin = clinic_services.create_clinic(
        name=clinic_name(shape.index),
        timezone_name=ZONE,
        admin_username=f"bench{shape.index}_admin",
        admin_password=PASSWORD,
        via="benchmark",
    )
    # The measured treatments are recorded without the day-of questions (a clinic setting).
    Clinic.objects.filter(pk=clinic.pk).update(day_of_attestation_required=False)
    staff = User.objects.bulk_create(
        [
            User(clinic=clinic, username=f"bench{shape.index}_{role}", role=role, password="!")
            for role in (Role.FRONT_DESK, Role.AUDITOR)
        ]
        + [
            User(
                clinic=clinic,
                username=f"bench{shape.index}_provider{n}",
                full_name=f"Dr Bench {n}",
                role=Role.PROVIDER,
                password="!",
            )
            for n in range(shape.providers)
        ]
    )
    providers = staff[2:]
    WorkingInterval.objects.bulk_create(
        WorkingInterval(
            clinic=clinic, provider=p, weekday=d, starts_minute=8 * 60, ends_minute=20 * 60
        )
        for p in providers
        for d in range(7)
    )
    handpieces = Handpiece.objects.bulk_create(
        Handpiece(clinic=clinic, serial_number=f"SP-{shape.index:03d}-{n:02d}")
        for n in range(shape.providers)
    )
    lots = TipLot.objects.bulk_create(
        TipLot(
            clinic=clinic,
            lot_number=f"L{shape.index:03d}-{n:05d}",
            gtin="00812345000019",
            expires_on=date(2030, 1, 1) + timedelta(days=n),
            # The last lot is the one the measured treatments take from.
            quantity_received=USES_PER_LOT * (100 if n == shape.lots - 1 else 1),
            quantity_used=0,
            received_by=providers[0],
        )
        for n in range(shape.lots)
    )
    return {
        "clinic": clinic,
        "admin": admin,
        "front_desk": staff[0],
        "providers": providers,
        "handpieces": handpieces,
        "lots": lots,
    }


# --- The generated history ---------------------------------------------------------------------


def _day(shape: ClinicShape, day_index: int, today: date) -> date:
    """Day `day_index` of the clinic's history: the last FUTURE_DAYS are after today, and today
    itself is skipped (it is the measured writes')."""
    future = min(FUTURE_DAYS, shape.days // 4)
    day = today - timedelta(days=shape.days - future) + timedelta(days=day_index)
    return day + timedelta(days=1) if day >= today else day


def _slot(shape: ClinicShape, i: int, today: date, zone) -> tuple[date, int, datetime]:
    """Session i: its day, provider number and start (08:00 local, one per hour per provider)."""
    day_index, within = divmod(i, shape.per_day)
    provider, slot = divmod(within, -(-shape.per_day // shape.providers))
    provider %= shape.providers
    day = _day(shape, day_index, today)
    start = datetime.combine(day, clock(8, 0), zone) + timedelta(hours=slot)
    return day, provider, start


def _sessions(shape: ClinicShape, today: date, zone) -> Iterator[tuple]:
    """(i, session id, patient number, series id, provider number, starts_at, completed)."""
    patients = shape.patients
    for i in range(shape.sessions):
        day, provider, starts_at = _slot(shape, i, today, zone)
        patient = i % patients
        nth = i // patients
        series = key("series", shape.index, patient, nth // SERIES_SIZE)
        yield i, key("session", shape.index, i), patient, series, provider, starts_at, day < today


def _copy_patients(raw, plan, made, today: date, targets: int) -> None:
    now = timezone.now()
    with raw.cursor().copy(
        "COPY patients_patient (id, clinic_id, first_name, last_name, date_of_birth, email,"
        " phone, fitzpatrick_type, sms_opt_in, email_opt_in, created_at, updated_at) FROM STDIN"
    ) as copy:
        for shape in plan:
            clinic = made[shape.index]["clinic"]
            pool = max(1, shape.patients // 10)  # ten patients share each surname
            for n in range(shape.patients + (targets if shape.index == 0 else 0)):
                copy.write_row(
                    (
                        key("patient", shape.index, n),
                        clinic.id,
                        FIRST_NAMES[n % 10],
                        surname(n % pool) if n < shape.patients else f"Target{n}",
                        date(1960 + n % 40, 1 + n % 12, 1 + n % 28),
                        "",
                        "",
                        1 + n % 4,
                        False,
                        False,
                        now,
                        now,
                    )
                )
    with raw.cursor().copy(
        "COPY patients_screening (id, clinic_id, patient_id, screened_by_id, screened_at,"
        " screened_on, pregnant_or_nursing, active_skin_cancer_in_area, open_wounds_in_area,"
        " bleeding_disorder, metal_or_anesthetic_allergy, active_skin_infection, anticoagulants,"
        " keloid_history, herpes_simplex_history, eczema_or_psoriasis_in_area, recent_scars,"
        " scleroderma, immunosuppressed, diabetes, eligible, contraindications, warnings,"
        " valid_until, eligible_from) FROM STDIN"
    ) as copy:
        for shape in plan:
            clinic = made[shape.index]["clinic"]
            by = made[shape.index]["front_desk"].id
            for n in range(shape.patients + (targets if shape.index == 0 else 0)):
                on = today - timedelta(days=n % 60) if n < shape.patients else today
                copy.write_row(
                    (
                        key("screening", shape.index, n),
                        clinic.id,
                        key("patient", shape.index, n),
                        by,
                        datetime.combine(on, clock(12), UTC),
                        on,
                        *([False] * 14),
                        True,
                        [],
                        [],
                        on + timedelta(days=90),
                        on,
                    )
                )


def _copy_series(raw, plan, made, targets: int) -> None:
    now = timezone.now()
    with raw.cursor().copy(
        "COPY scheduling_series (id, clinic_id, patient_id, indication, planned_sessions,"
        " interval_days, status, created_by_id, created_at, updated_at) FROM STDIN"
    ) as copy:
        for shape in plan:
            clinic = made[shape.index]["clinic"]
            by = made[shape.index]["front_desk"].id
            per_patient = -(-shape.sessions // shape.patients)
            for n in range(shape.patients):
                for s in range(-(-per_patient // SERIES_SIZE)):
                    copy.write_row(
                        (
                            key("series", shape.index, n, s),
                            clinic.id,
                            key("patient", shape.index, n),
                            "acne_scars",
                            SERIES_SIZE,
                            30,
                            "active",
                            by,
                            now,
                            now,
                        )
                    )
            if shape.index == 0:
                for n in range(shape.patients, shape.patients + targets):
                    copy.write_row(
                        (
                            key("series", 0, n, 0),
                            clinic.id,
                            key("patient", 0, n),
                            "acne_scars",
                            6,
                            30,
                            "active",
                            by,
                            now,
                            now,
                        )
                    )


def _copy_sessions(raw, plan, made, today: date, targets: int) -> None:
    now = timezone.now()
    with raw.cursor().copy(
        "COPY scheduling_session (id, clinic_id, series_id, patient_id, provider_id, starts_at,"
        " ends_at, status, flags, cancel_reason, checked_in_at, completed_at, created_by_id,"
        " created_at, updated_at) FROM STDIN"
    ) as copy:
        for shape in plan:
            clinic = made[shape.index]["clinic"]
            providers = made[shape.index]["providers"]
            by = made[shape.index]["front_desk"].id
            for _i, session, patient, series, p, starts_at, done in _sessions(
                shape, today, clinic.zone
            ):
                ends_at = starts_at + timedelta(minutes=SESSION_MINUTES)
                copy.write_row(
                    (
                        session,
                        clinic.id,
                        series,
                        key("patient", shape.index, patient),
                        providers[p].id,
                        starts_at,
                        ends_at,
                        "completed" if done else "booked",
                        [],
                        "",
                        starts_at if done else None,
                        ends_at if done else None,
                        by,
                        now,
                        now,
                    )
                )
            if shape.index == 0:
                # Half the targets are in the chair today: one 15-minute session each, from
                # local midnight, provider after provider.
                midnight = datetime.combine(today, clock(0), clinic.zone)
                for t in range(targets // 2):
                    n = shape.patients + t
                    slot, p = divmod(t, len(providers))
                    starts_at = midnight + timedelta(minutes=15 * slot)
                    copy.write_row(
                        (
                            key("session", 0, "today", t),
                            clinic.id,
                            key("series", 0, n, 0),
                            key("patient", 0, n),
                            providers[p].id,
                            starts_at,
                            starts_at + timedelta(minutes=15),
                            "checked_in",
                            [],
                            "",
                            starts_at,
                            None,
                            by,
                            now,
                            now,
                        )
                    )


def _copy_records(raw, plan, made, today: date) -> None:
    depth_rows: list[tuple] = []
    with raw.cursor().copy(
        "COPY treatments_treatmentrecord (id, clinic_id, session_id, patient_id, provider_id,"
        " tip_lot_id, lot_number, lot_expires_on, handpiece_id, handpiece_serial, performed_at,"
        " notes, depth_override_reason, recorded_at, acknowledged_warnings, sequence,"
        " previous_hash, hash) FROM STDIN"
    ) as copy:
        for shape in plan:
            got = made[shape.index]
            clinic, providers, lots, handpieces = (
                got["clinic"],
                got["providers"],
                got["lots"],
                got["handpieces"],
            )
            previous, sequence = audit.GENESIS_HASH, 0
            used = [0] * len(lots)
            for i, session, patient, _series, p, starts_at, done in _sessions(
                shape, today, clinic.zone
            ):
                if not done:
                    continue
                lot_n = min(sequence // USES_PER_LOT, len(lots) - 2 if len(lots) > 1 else 0)
                lot, handpiece = lots[lot_n], handpieces[p]
                used[lot_n] += 1
                sequence += 1
                depths = [["cheeks", ("0.50", "1.00", "1.25", "1.50")[i % 4]], ["forehead", "0.50"]]
                columns = (
                    key("record", shape.index, i),
                    clinic.id,
                    session,
                    key("patient", shape.index, patient),
                    providers[p].id,
                    lot.id,
                    lot.lot_number,
                    lot.expires_on,
                    handpiece.id,
                    handpiece.serial_number,
                    starts_at + timedelta(minutes=5),
                    "",
                    "",
                    starts_at + timedelta(minutes=20),
                )
                digest = audit.chain_hash(
                    previous, record_canonical((*columns, depths), sequence=sequence)
                )
                copy.write_row((*columns, [], sequence, previous, digest))
                previous = digest
                depth_rows.extend((columns[0], area, mm) for area, mm in depths)
            got["lot_used"] = used
    with raw.cursor().copy(
        "COPY treatments_treatmentdepth (record_id, area, depth_mm) FROM STDIN"
    ) as copy:
        for row in depth_rows:
            copy.write_row(row)
    with raw.cursor() as cursor:
        for shape in plan:
            got = made[shape.index]
            cursor.executemany(
                "UPDATE treatments_tiplot SET quantity_received = greatest(quantity_received, %s),"
                " quantity_used = %s WHERE id = %s",
                [(n, n, lot.id) for n, lot in zip(got["lot_used"], got["lots"], strict=True) if n],
            )


def _copy_audit(raw, plan, made, today: date) -> None:
    """session.book for every session, treatment.record for every record, in time order."""
    now = timezone.now() - timedelta(hours=1)
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (clinic_id) clinic_id, sequence, hash FROM clinic_auditevent"
            " WHERE clinic_id IS NOT NULL ORDER BY clinic_id, sequence DESC"
        )
        heads = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    with raw.cursor().copy(
        "COPY clinic_auditevent (id, clinic_id, at, actor_id, actor_label, action, object_type,"
        " object_id, patient_id, request_id, outcome, detail, sequence, previous_hash, hash)"
        " FROM STDIN"
    ) as copy:
        for shape in plan:
            got = made[shape.index]
            clinic, desk = got["clinic"], got["front_desk"]
            sequence, previous = heads[clinic.id]
            events = []
            for i, session, patient, series, p, starts_at, done in _sessions(
                shape, today, clinic.zone
            ):
                patient_id = key("patient", shape.index, patient)
                booked_at = min(starts_at - timedelta(days=20), now) - timedelta(minutes=i % 600)
                detail = (
                    '{"series": "'
                    + str(series)
                    + '", "starts_at": "'
                    + starts_at.astimezone(UTC).isoformat()
                    + '"}'
                )
                events.append(
                    (
                        booked_at,
                        key("audit", shape.index, i, 0),
                        desk.id,
                        desk.username,
                        "session.book",
                        "session",
                        str(session),
                        patient_id,
                        detail,
                    )
                )
                if done:
                    provider = got["providers"][p]
                    events.append(
                        (
                            starts_at + timedelta(minutes=20),
                            key("audit", shape.index, i, 1),
                            provider.id,
                            provider.username,
                            "treatment.record",
                            "treatment_record",
                            str(key("record", shape.index, i)),
                            patient_id,
                            '{"session": "' + str(session) + '"}',
                        )
                    )
            events.sort(key=lambda event: event[0])
            for (
                at,
                event_id,
                actor_id,
                label,
                action,
                object_type,
                object_id,
                pid,
                detail,
            ) in events:
                sequence += 1
                columns = (
                    event_id,
                    clinic.id,
                    at,
                    actor_id,
                    label,
                    action,
                    object_type,
                    object_id,
                    pid,
                    "",
                    "success",
                    audit.RawJSON(detail),
                )
                digest = audit.chain_hash(
                    previous, audit.audit_canonical(columns, sequence=sequence)
                )
                copy.write_row((*columns[:11], detail, sequence, previous, digest))
                previous = digest
