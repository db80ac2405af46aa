"""Black-box checks of v1.1 "Point of care → Consent": versioned consent forms (never edited,
revised into a new version with its own sha256), patients' signed consents pinned to one exact
version and revocable, consent required at treatment (422 consent_required), and a FHIR
`Consent` per signed consent in `$everything` (revoked: `inactive`), validated with
fhir.resources like the rest of the Bundle."""

from __future__ import annotations

import base64
import hashlib
import itertools
from datetime import timedelta
from unittest.mock import ANY

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from clinic.models import AuditEvent, Role
from scheduling.models import Series, SessionStatus
from tests.factories import SessionFactory
from tests.factories.scheduling import ATTESTATION, starts_today
from tests.helpers import assert_ok, assert_problem, assert_uuid
from treatments.models import ConsentForm

FORMS = "/api/v1/consent-forms/"
PATIENTS = "/api/v1/patients/"
SESSIONS = "/api/v1/sessions/"
BODY = "I understand microneedling may cause redness for 1-3 days. I consent."

pytestmark = pytest.mark.django_db
_serial = itertools.count(900)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_form(client, **overrides):
    return client.post(
        FORMS, {"title": "Microneedling consent", "body": BODY, **overrides}, format="json"
    )


def created_form(client, **overrides) -> dict:
    return assert_ok(new_form(client, **overrides), 201)


def revise(client, form_id: str, body: str):
    return client.post(f"{FORMS}{form_id}/revise/", {"body": body}, format="json")


def consents_path(patient_id: str) -> str:
    return f"{PATIENTS}{patient_id}/consents/"


def sign(client, patient_id: str, form_id: str, **overrides):
    body = {"consent_form": form_id, "signature_name": "Ana Ruiz", **overrides}
    return client.post(consents_path(patient_id), body, format="json")


def signed(client, patient_id: str, form_id: str, **overrides) -> dict:
    return assert_ok(sign(client, patient_id, form_id, **overrides), 201)


def listed(client, path: str, **params) -> list[dict]:
    body = assert_ok(client.get(path, {"page_size": 200, **params}))
    assert body["next"] is None
    return body["results"]


@pytest.fixture
def adm(api, admin):
    return api(admin)


@pytest.fixture
def fd(api, front_desk):
    return api(front_desk)


@pytest.fixture
def prov(api, provider):
    return api(provider)


@pytest.fixture
def make_patient(fd):
    def make() -> dict:
        n = next(_serial)
        body = {
            "first_name": f"Ana{n}",
            "last_name": f"Ruiz{n}",
            "date_of_birth": "1989-09-09",
            "fitzpatrick_type": 3,
        }
        patient = assert_ok(fd.post(PATIENTS, body, format="json"), 201)
        assert_ok(fd.post(f"{PATIENTS}{patient['id']}/screenings/", {}, format="json"), 201)
        return patient

    return make


@pytest.fixture
def patient(make_patient) -> dict:
    return make_patient()


@pytest.fixture
def lot(prov) -> dict:
    expires_on = (timezone.localdate() + timedelta(days=365)).isoformat()
    body = {"lot_number": "CONSENT-1", "expires_on": expires_on, "quantity_received": 20}
    return assert_ok(prov.post("/api/v1/tip-lots/", body, format="json"), 201)


@pytest.fixture
def in_chair(fd, clinic, provider):
    """in_chair(patient, indication="acne_scars"): a session of a new series of the patient,
    today, checked in with a clear attestation."""
    starts = starts_today(clinic)

    def make(patient: dict, indication: str = "acne_scars") -> str:
        series = assert_ok(
            fd.post(
                "/api/v1/series/",
                {"patient": patient["id"], "indication": indication, "planned_sessions": 3},
                format="json",
            ),
            201,
        )
        starts_at = next(starts)
        session = SessionFactory(
            series=Series.objects.get(pk=series["id"]),
            provider=provider,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            status=SessionStatus.BOOKED,
            created_by=provider,
        )
        assert_ok(fd.post(f"{SESSIONS}{session.id}/check-in/", ATTESTATION, format="json"))
        return str(session.id)

    return make


def treat(client, session_id: str, lot: dict):
    body = {"tip_lot": lot["id"], "depths": [{"area": "cheeks", "depth_mm": "1.00"}]}
    return client.post(f"{SESSIONS}{session_id}/treatment/", body, format="json")


# --- consent forms -----------------------------------------------------------------------------


def test_an_admin_creates_a_form_with_the_contract_fields(adm, api, staff_by_role):
    before = timezone.now()
    body = created_form(adm, indications=["neck_wrinkles", "acne_scars"])
    assert_uuid(body["id"])
    assert body == {
        "id": body["id"],
        "title": "Microneedling consent",
        "version": 1,
        "body": BODY,
        "sha256": sha256(BODY),
        "indications": ["acne_scars", "neck_wrinkles"],
        "required": True,
        "active": True,
        "created_at": body["created_at"],
    }
    assert timezone.datetime.fromisoformat(body["created_at"]) >= before - timedelta(seconds=1)
    for role in (Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR):
        client = api(staff_by_role[role])
        assert listed(client, FORMS) == [body]
        assert assert_ok(client.get(f"{FORMS}{body['id']}/")) == body


def test_indications_default_to_every_one_and_required_to_true(adm):
    body = created_form(adm, body="Short.", required=False)
    assert (body["indications"], body["required"], body["sha256"]) == ([], False, sha256("Short."))


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR])
def test_only_an_admin_writes_forms(api, staff_by_role, adm, role):
    client = api(staff_by_role[role])
    assert_problem(new_form(client), 403, "permission_denied")
    form = created_form(adm)
    assert_problem(revise(client, form["id"], "Other."), 403, "permission_denied")
    assert listed(adm, FORMS) == [form]


@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_forms_are_never_edited_405(adm, method):
    form = created_form(adm)
    response = getattr(adm, method)(f"{FORMS}{form['id']}/", {"body": "Edited."}, format="json")
    assert_problem(response, 405, "method_not_allowed")
    assert assert_ok(adm.get(f"{FORMS}{form['id']}/")) == form


def test_revise_makes_the_next_version_and_retires_the_previous(adm):
    first = created_form(adm, indications=["acne_scars"], required=True)
    second = assert_ok(revise(adm, first["id"], "Revised text."), 201)
    assert second == {
        **first,
        "id": second["id"],
        "version": 2,
        "body": "Revised text.",
        "sha256": sha256("Revised text."),
        "created_at": second["created_at"],
    }
    assert second["id"] != first["id"]
    third = assert_ok(revise(adm, second["id"], "Third text."), 201)
    assert [(f["version"], f["active"]) for f in listed(adm, FORMS)] == [
        (3, True),
        (2, False),
        (1, False),
    ]
    assert [f["id"] for f in listed(adm, FORMS, active="true")] == [third["id"]]
    assert [f["id"] for f in listed(adm, FORMS, active="false")] == [second["id"], first["id"]]
    assert assert_ok(adm.get(f"{FORMS}{first['id']}/"))["body"] == BODY


def test_revising_a_retired_version_is_409(adm):
    first = created_form(adm)
    assert_ok(revise(adm, first["id"], "New."), 201)
    assert_problem(revise(adm, first["id"], "Newer."), 409, "invalid_state")
    assert len(listed(adm, FORMS)) == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "title"),
        ({"body": ""}, "body"),
        ({"indications": ["eyelids"]}, "indications.0"),
        ({"required": "perhaps"}, "required"),
    ],
)
def test_a_bad_form_is_400(adm, changes, field):
    body = assert_problem(new_form(adm, **changes), 400, "invalid", errors=ANY)
    assert list(body["errors"]) == [field]
    assert listed(adm, FORMS) == []


def test_a_title_already_used_is_revised_not_created_again(adm):
    created_form(adm)
    body = assert_problem(new_form(adm, body="Other."), 400, "invalid", errors=ANY)
    assert body["errors"] == {
        "title": ["A consent form with this title exists: revise it instead."]
    }


def test_the_database_holds_the_form_rules(adm, admin):
    form = ConsentForm.objects.get(pk=created_form(adm)["id"])
    with pytest.raises(IntegrityError, match="never edited"), transaction.atomic():
        ConsentForm.objects.filter(pk=form.pk).update(body="Rewritten.")
    with pytest.raises(IntegrityError, match="never edited"), transaction.atomic():
        ConsentForm.objects.filter(pk=form.pk).update(active=False)
        ConsentForm.objects.filter(pk=form.pk).update(active=True)
    with pytest.raises(IntegrityError, match="never deleted"), transaction.atomic():
        ConsentForm.objects.filter(pk=form.pk).delete()
    with (
        pytest.raises(IntegrityError, match="treatments_consentform_sha256_of_body"),
        transaction.atomic(),
    ):
        ConsentForm.objects.create(
            clinic=form.clinic, title="Other", body="B", sha256="0" * 64, created_by=admin
        )
    with (
        pytest.raises(IntegrityError, match="treatments_consentform_one_active"),
        transaction.atomic(),
    ):
        ConsentForm.objects.create(
            clinic=form.clinic,
            title=form.title,
            version=2,
            body="B",
            sha256=sha256("B"),
            created_by=admin,
        )


# --- signed consents ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER])
def test_staff_record_a_signature_they_witness(api, staff_by_role, adm, patient, role):
    form = created_form(adm)
    user = staff_by_role[role]
    before = timezone.now()
    body = signed(api(user), patient["id"], form["id"])
    assert body == {
        "id": body["id"],
        "patient": patient["id"],
        "consent_form": form["id"],
        "title": form["title"],
        "version": 1,
        "sha256": form["sha256"],
        "signature_name": "Ana Ruiz",
        "signed_at": body["signed_at"],
        "witnessed_by": str(user.id),
        "revoked_at": None,
    }
    signed_at = timezone.datetime.fromisoformat(body["signed_at"])
    assert before - timedelta(seconds=1) <= signed_at <= timezone.now()
    assert listed(api(user), consents_path(patient["id"])) == [body]
    assert assert_ok(api(user).get(f"{consents_path(patient['id'])}{body['id']}/")) == body


def test_the_auditor_reads_consents_never_signs_and_each_read_is_audited(
    api, auditor, adm, fd, patient
):
    form = created_form(adm)
    consent = signed(fd, patient["id"], form["id"])
    client = api(auditor)
    assert_problem(sign(client, patient["id"], form["id"]), 403, "permission_denied")
    assert_problem(
        client.post(f"{consents_path(patient['id'])}{consent['id']}/revoke/"),
        403,
        "permission_denied",
    )
    response = client.get(consents_path(patient["id"]))
    assert [c["id"] for c in response.json()["results"]] == [consent["id"]]
    events = AuditEvent.objects.filter(request_id=response["X-Request-ID"])
    assert list(events.values_list("action", "object_id", "patient_id", "actor_id")) == [
        ("consent.list", consent["id"], _uuid(patient["id"]), auditor.id)
    ]
    denied = AuditEvent.objects.filter(actor=auditor, outcome="denied")
    assert sorted(denied.values_list("action", flat=True)) == ["consent.create", "consent.revoke"]


def _uuid(value: str):
    import uuid

    return uuid.UUID(value)


def test_signed_at_may_be_given_but_not_in_the_future(fd, adm, patient):
    form = created_form(adm)
    earlier = (timezone.now() - timedelta(minutes=5)).replace(microsecond=0)
    body = signed(fd, patient["id"], form["id"], signed_at=earlier.isoformat())
    assert timezone.datetime.fromisoformat(body["signed_at"]) == earlier
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    problem = assert_problem(
        sign(fd, patient["id"], form["id"], signed_at=future), 400, "invalid", errors=ANY
    )
    assert problem["errors"] == {"signed_at": ["Must not be in the future."]}
    assert len(listed(fd, consents_path(patient["id"]))) == 1


def test_a_retired_version_cannot_be_signed_400(fd, adm, patient):
    first = created_form(adm)
    assert_ok(revise(adm, first["id"], "New text."), 201)
    problem = assert_problem(sign(fd, patient["id"], first["id"]), 400, "invalid", errors=ANY)
    assert list(problem["errors"]) == ["consent_form"]
    assert listed(fd, consents_path(patient["id"])) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"signature_name": ""}, "signature_name"), ({"consent_form": "nope"}, "consent_form")],
)
def test_a_bad_signature_is_400(fd, adm, patient, changes, field):
    form = created_form(adm)
    problem = assert_problem(
        sign(fd, patient["id"], form["id"], **changes), 400, "invalid", errors=ANY
    )
    assert list(problem["errors"]) == [field]


def test_revoke_sets_revoked_at_once(fd, adm, patient):
    form = created_form(adm)
    consent = signed(fd, patient["id"], form["id"])
    path = f"{consents_path(patient['id'])}{consent['id']}/revoke/"
    body = assert_ok(fd.post(path))
    assert body == {**consent, "revoked_at": body["revoked_at"]}
    assert timezone.datetime.fromisoformat(body["revoked_at"]) >= timezone.datetime.fromisoformat(
        consent["signed_at"]
    )
    assert_problem(fd.post(path), 409, "invalid_state")
    assert listed(fd, consents_path(patient["id"])) == [body]


def test_another_patients_consent_is_404_under_this_patient(fd, adm, make_patient):
    form = created_form(adm)
    ana, ben = make_patient(), make_patient()
    consent = signed(fd, ana["id"], form["id"])
    assert_problem(fd.get(f"{consents_path(ben['id'])}{consent['id']}/"), 404, "not_found")
    assert_problem(fd.post(f"{consents_path(ben['id'])}{consent['id']}/revoke/"), 404, "not_found")
    assert listed(fd, consents_path(ben["id"])) == []


def test_another_clinics_forms_patients_and_consents_are_404(
    api, make_user, other_clinic, adm, fd, patient
):
    form = created_form(adm)
    consent = signed(fd, patient["id"], form["id"])
    their_admin = api(make_user(Role.ADMIN, other_clinic))
    assert listed(their_admin, FORMS) == []
    assert_problem(their_admin.get(f"{FORMS}{form['id']}/"), 404, "not_found")
    assert_problem(revise(their_admin, form["id"], "Mine now."), 404, "not_found")
    assert_problem(their_admin.get(consents_path(patient["id"])), 404, "not_found")
    assert_problem(
        their_admin.post(f"{consents_path(patient['id'])}{consent['id']}/revoke/"),
        404,
        "not_found",
    )
    # Their own patient signing our form: the id is unknown in their clinic.
    their_fd = api(make_user(Role.FRONT_DESK, other_clinic))
    theirs = assert_ok(
        their_fd.post(
            PATIENTS,
            {"first_name": "T", "last_name": "Hem", "date_of_birth": "1980-01-01",
             "fitzpatrick_type": 2},
            format="json",
        ),
        201,
    )  # fmt: skip
    problem = assert_problem(sign(their_fd, theirs["id"], form["id"]), 400, "invalid", errors=ANY)
    assert list(problem["errors"]) == ["consent_form"]


# The form and consent lists' query counts are pinned in tests/clinic/test_query_counts.py.


# --- consent at treatment ----------------------------------------------------------------------


def test_treatment_needs_the_current_version_signed(prov, fd, adm, patient, in_chair, lot):
    form = created_form(adm)
    session = in_chair(patient)
    body = assert_problem(treat(prov, session, lot), 422, "consent_required")
    assert body["consent_forms"] == [form["id"]]
    signed(fd, patient["id"], form["id"])
    # A revision makes the old signature insufficient.
    revised = assert_ok(revise(adm, form["id"], "Revised."), 201)
    body = assert_problem(treat(prov, session, lot), 422, "consent_required")
    assert body["consent_forms"] == [revised["id"]]
    signed(fd, patient["id"], revised["id"])
    assert_ok(treat(prov, session, lot), 201)


def test_only_active_required_forms_covering_the_indication_count(
    prov, fd, adm, patient, in_chair, lot
):
    acne = created_form(adm, title="Acne", indications=["acne_scars"])
    every = created_form(adm, title="Every indication")
    created_form(adm, title="Neck", indications=["neck_wrinkles"])
    created_form(adm, title="Optional", required=False)
    session = in_chair(patient)
    body = assert_problem(treat(prov, session, lot), 422, "consent_required")
    assert sorted(body["consent_forms"]) == sorted([acne["id"], every["id"]])
    signed(fd, patient["id"], acne["id"])
    body = assert_problem(treat(prov, session, lot), 422, "consent_required")
    assert body["consent_forms"] == [every["id"]]
    signed(fd, patient["id"], every["id"])
    assert_ok(treat(prov, session, lot), 201)


def test_a_revoked_consent_no_longer_counts(prov, fd, adm, patient, in_chair, lot):
    form = created_form(adm)
    consent = signed(fd, patient["id"], form["id"])
    assert_ok(fd.post(f"{consents_path(patient['id'])}{consent['id']}/revoke/"))
    session = in_chair(patient)
    body = assert_problem(treat(prov, session, lot), 422, "consent_required")
    assert body["consent_forms"] == [form["id"]]
    refused = AuditEvent.objects.get(action="treatment.record", outcome="denied")
    assert refused.detail == {"code": "consent_required", "consent_forms": [form["id"]]}


def test_another_patients_signature_does_not_count(prov, fd, adm, make_patient, in_chair, lot):
    form = created_form(adm)
    ana, ben = make_patient(), make_patient()
    signed(fd, ben["id"], form["id"])
    assert_problem(treat(prov, in_chair(ana), lot), 422, "consent_required")


# --- FHIR ------------------------------------------------------------------------------------


def test_everything_has_a_valid_consent_per_signature_revoked_inactive(
    api, auditor, adm, fd, front_desk, patient, clinic
):
    form = created_form(adm)
    kept = signed(fd, patient["id"], form["id"])
    revoked = signed(fd, patient["id"], form["id"], signature_name="A. Ruiz")
    assert_ok(fd.post(f"{consents_path(patient['id'])}{revoked['id']}/revoke/"))
    bundle = assert_ok_fhir(api(auditor).get(f"/api/v1/fhir/Patient/{patient['id']}/$everything"))
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    found = {
        e["resource"]["id"]: e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Consent"
    }
    assert {k: v["status"] for k, v in found.items()} == {
        kept["id"]: "active",
        revoked["id"]: "inactive",
    }
    consent = found[kept["id"]]
    signed_at = clinic.localtime(timezone.datetime.fromisoformat(kept["signed_at"])).isoformat()
    assert consent == {
        "resourceType": "Consent",
        "id": kept["id"],
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "treatment",
                    "display": "Treatment",
                }
            ],
            "text": "Treatment",
        },
        "category": [{"text": "Microneedling consent"}],
        "patient": {"reference": f"Patient/{patient['id']}"},
        "dateTime": signed_at,
        "performer": [{"reference": f"Patient/{patient['id']}", "display": "Ana Ruiz"}],
        "sourceAttachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(BODY.encode("utf-8")).decode("ascii"),
            "title": f"Microneedling consent, version 1 (sha256 {sha256(BODY)})",
            "creation": consent["sourceAttachment"]["creation"],
        },
        "policyRule": {"text": f"{clinic.name}: Microneedling consent, version 1"},
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/consent-Witness",
                "valueReference": {
                    "reference": f"Practitioner/{front_desk.id}",
                    "display": str(front_desk),
                },
            }
        ],
        "verification": [
            {
                "verified": True,
                "verifiedWith": {"reference": f"Patient/{patient['id']}"},
                "verificationDate": signed_at,
            }
        ],
        "provision": {"type": "permit", "period": {"start": signed_at}},
    }
    assert set(found[revoked["id"]]["provision"]["period"]) == {"start", "end"}
    practitioners = {
        e["resource"]["id"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Practitioner"
    }
    assert str(front_desk.id) in practitioners


def assert_ok_fhir(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    return response.json()


def test_everything_costs_the_same_with_more_consents(api, auditor, adm, fd, patient):
    form = created_form(adm)
    client = api(auditor)
    path = f"/api/v1/fhir/Patient/{patient['id']}/$everything"
    signed(fd, patient["id"], form["id"])
    with CaptureQueriesContext(connection) as one:
        assert client.get(path).status_code == 200
    for _ in range(3):
        signed(fd, patient["id"], form["id"])
    with CaptureQueriesContext(connection) as four:
        bundle = client.get(path).json()
    assert sum(e["resource"]["resourceType"] == "Consent" for e in bundle["entry"]) == 4
    assert len(four) == len(one)
