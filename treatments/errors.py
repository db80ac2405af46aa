"""The treatment errors of the contract, and the database constraints that stand for them."""

from __future__ import annotations

from collections.abc import Sequence

from clinic.errors import (
    Conflict,
    InvalidState,
    Unprocessable,
    invalid_field,
    register_constraint_error,
)


class SessionAlreadyRecorded(Conflict):
    code = "session_already_recorded"
    default_detail = "This session's treatment is already recorded (a tip is used once)."


class TipLotExhausted(Conflict):
    code = "tip_lot_exhausted"
    default_detail = "The lot has no cartridge left."


class TipLotExpired(Unprocessable):
    code = "tip_lot_expired"
    default_detail = "The lot's expiry date is before the treatment date."


class TipLotRecalled(Unprocessable):
    code = "tip_lot_recalled"
    default_detail = "The lot is recalled."


class TipLotQuarantined(Unprocessable):
    code = "tip_lot_quarantined"
    default_detail = "The lot is held by an open recall notice."


class TipAlreadyUsed(Conflict):
    code = "tip_already_used"
    default_detail = "This cartridge (its scanned serial) was already used on a treatment."


class TipLotUnknown(Unprocessable):
    code = "tip_lot_unknown"
    default_detail = "The scanned cartridge matches no lot of this clinic."


class TipLotMismatch(Unprocessable):
    code = "tip_lot_mismatch"
    default_detail = "The scanned cartridge's expiry or GTIN differs from the lot's record."


class DepthNotAllowed(Unprocessable):
    code = "depth_not_allowed"
    default_detail = (
        "Depths above 1.5 mm have not been evaluated for SkinPen; give depth_override_reason."
    )


register_constraint_error("treatments_treatmentrecord_one_per_session", SessionAlreadyRecorded)
register_constraint_error("treatments_aftercareplan_one_per_session", SessionAlreadyRecorded)
register_constraint_error("treatments_tiplot_used_within_received", TipLotExhausted)
lot_number_in_stock = register_constraint_error(
    "treatments_tiplot_lot_number_unique",
    invalid_field("lot_number", "This lot number is already in stock."),
)
template_name_taken = register_constraint_error(
    "treatments_aftercaretemplate_name_unique",
    invalid_field("name", "A template with this name exists."),
)
register_constraint_error("treatments_treatmentrecord_serial_once", TipAlreadyUsed)


class AttestationRequired(Unprocessable):
    code = "attestation_required"
    default_detail = (
        "The clinic requires a day-of attestation at check-in, and this session has none."
    )


class WarningsNotAcknowledged(Unprocessable):
    code = "warnings_not_acknowledged"
    default_detail = "Acknowledge every warning of the patient's screening (acknowledged_warnings)."

    def __init__(self, warnings: Sequence[str]) -> None:
        super().__init__(f"Not acknowledged: {', '.join(warnings)}.", warnings=list(warnings))


class ConsentRequired(Unprocessable):
    code = "consent_required"
    default_detail = "The patient has not signed the current version of a required consent form."

    def __init__(self, consent_form_ids: Sequence[object]) -> None:
        super().__init__(None, consent_forms=[str(i) for i in consent_form_ids])


consent_title_taken = register_constraint_error(
    "treatments_consentform_version_unique",
    invalid_field("title", "A consent form with this title exists: revise it instead."),
)
register_constraint_error(
    "treatments_consentform_one_active",
    lambda: InvalidState("Another version of this form was made active at the same moment."),
)
