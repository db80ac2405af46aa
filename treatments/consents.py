"""Every write of consent forms (versioned, never edited) and of patients' signed consents.

A form's versions share its title: the first is version 1, `revise` adds the next one and
retires the previous, in one transaction under the previous version's row lock, so two
revisions of one form are decided one at a time (and `treatments_consentform_one_active` /
`_version_unique` refuse whatever slipped past). A signature is pinned to one exact version;
signing locks that version's row too, so a signature and a revision of the same version are
strictly ordered: a signature never lands on a version already retired. Revoking locks the
patient first (the one lock order, as recording a treatment does), so a treatment sees a
consent either wholly valid or revoked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from clinic import audit
from clinic.errors import InvalidInput, InvalidState
from clinic.models import Clinic, User
from patients.models import Patient
from treatments import rules
from treatments.errors import consent_title_taken
from treatments.models import Consent, ConsentForm


def _indications(given: Iterable[str]) -> list[str]:
    listed = set(given)
    return [code for code in rules.CONSENT_INDICATIONS if code in listed]


def _check_text(title: str | None, body: str) -> None:
    errors: dict[str, list[str]] = {}
    if title is not None and not title.strip():
        errors["title"] = ["Give the form a title."]
    if not body.strip():
        errors["body"] = ["The form needs its text."]
    if errors:
        raise InvalidInput(errors)


@transaction.atomic
def create_consent_form(
    *, actor: User, title: str, body: str, indications: Iterable[str] = (), required: bool = True
) -> ConsentForm:
    """Version 1 of a new form. A title the clinic already uses is revised, not created again."""
    _check_text(title, body)
    clinic_id = actor.clinic_uuid
    # One clinic's new forms go one at a time, so a taken title is answered by the check.
    Clinic.objects.select_for_update(no_key=True).get(pk=clinic_id)
    if ConsentForm.objects.filter(clinic_id=clinic_id, title=title).exists():
        raise consent_title_taken()
    form = ConsentForm.objects.create(
        clinic_id=clinic_id,
        title=title,
        version=1,
        body=body,
        sha256=rules.consent_sha256(body),
        indications=_indications(indications),
        required=required,
        created_by=actor,
    )
    _audit_form(actor, "consent_form.create", form)
    return form


@transaction.atomic
def revise_consent_form(*, actor: User, form: ConsentForm, body: str) -> ConsentForm:
    """The form's next version, with a new body; the version revised becomes inactive."""
    _check_text(None, body)
    form = ConsentForm.objects.select_for_update().get(pk=form.pk)
    if not form.active:
        raise InvalidState(
            f"Version {form.version} of {form.title!r} is no longer active: revise the current one."
        )
    ConsentForm.objects.filter(pk=form.pk).update(active=False)
    revised = ConsentForm.objects.create(
        clinic_id=form.clinic_id,
        title=form.title,
        version=form.version + 1,
        body=body,
        sha256=rules.consent_sha256(body),
        indications=form.indications,
        required=form.required,
        created_by=actor,
        revision_of=form,
    )
    _audit_form(actor, "consent_form.revise", revised, previous=form)
    return revised


def _audit_form(
    actor: User, action: str, form: ConsentForm, previous: ConsentForm | None = None
) -> None:
    detail = {"title": form.title, "version": form.version, "sha256": form.sha256}
    if previous is not None:
        detail["previous"] = str(previous.id)
    audit.record(
        actor=actor,
        action=action,
        object_type="consent_form",
        object_id=form.id,
        detail=detail,
    )


@transaction.atomic
def sign_consent(
    *,
    actor: User,
    patient: Patient,
    consent_form: ConsentForm,
    signature_name: str,
    signed_at: datetime | None = None,
) -> Consent:
    """The patient signs one exact, active version; the signed-in staff member witnesses."""
    patient = Patient.objects.select_for_update(no_key=True).get(pk=patient.pk)
    form = ConsentForm.objects.select_for_update(no_key=True).get(pk=consent_form.pk)
    if patient.is_archived:
        raise InvalidState("The patient is archived.")
    now = timezone.now()
    signed_at = signed_at or now
    errors: dict[str, list[str]] = {}
    if not form.active:
        errors["consent_form"] = [
            f"Version {form.version} of {form.title!r} is no longer active: sign the current one."
        ]
    if not signature_name.strip():
        errors["signature_name"] = ["The name the patient signed with."]
    # A paper signature may be entered later, even before the form was typed in: only the
    # future is refused.
    if signed_at > now + rules.CLOCK_SKEW:
        errors["signed_at"] = ["Must not be in the future."]
    if errors:
        raise InvalidInput(errors)
    consent = Consent.objects.create(
        clinic_id=patient.clinic_id,
        patient=patient,
        consent_form=form,
        signature_name=signature_name,
        signed_at=signed_at,
        witnessed_by=actor,
    )
    audit.record(
        actor=actor,
        action="consent.sign",
        object_type="consent",
        object_id=consent.id,
        patient_id=patient.id,
        detail={"consent_form": str(form.id), "version": form.version, "sha256": form.sha256},
    )
    return consent


@transaction.atomic
def revoke_consent(*, actor: User, consent: Consent) -> Consent:
    Patient.objects.select_for_update(no_key=True).get(pk=consent.patient_id)
    consent = Consent.objects.select_for_update().get(pk=consent.pk)
    if consent.revoked_at is not None:
        raise InvalidState("The consent is already revoked.")
    # Never before the signature (treatments_consent_revoked_after_signed), clocks allowing.
    consent.revoked_at = max(timezone.now(), consent.signed_at)
    consent.revoked_by = actor
    consent.save(update_fields=["revoked_at", "revoked_by"])
    audit.record(
        actor=actor,
        action="consent.revoke",
        object_type="consent",
        object_id=consent.id,
        patient_id=consent.patient_id,
    )
    return consent
