"""Every write of the treatments app: tip lots, aftercare templates, treatment records, recalls.

Each service owns its transaction, checks the rules, and writes its audit event.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from clinic import audit
from clinic.errors import InvalidInput, register_constraint_error
from clinic.models import Clinic, User
from treatments import rules
from treatments.models import AftercareTemplate, TipLot

register_constraint_error(
    "treatments_tiplot_lot_number_unique",
    lambda: InvalidInput({"lot_number": ["This lot number is already in stock."]}),
)
register_constraint_error(
    "treatments_aftercaretemplate_name_unique",
    lambda: InvalidInput({"name": ["A template with this name exists."]}),
)


@transaction.atomic
def receive_tip_lot(
    *,
    actor: User,
    lot_number: str,
    expires_on: Any,
    quantity_received: int,
    gtin: str = "",
) -> TipLot:
    """Record stock as it is: a lot already past its expiry is received and shows `expired`."""
    clinic_id = actor.clinic_uuid
    if TipLot.objects.filter(clinic_id=clinic_id, lot_number=lot_number).exists():
        raise InvalidInput({"lot_number": ["This lot number is already in stock."]})
    lot = TipLot.objects.create(
        clinic_id=clinic_id,
        lot_number=lot_number,
        expires_on=expires_on,
        quantity_received=quantity_received,
        gtin=gtin,
        received_by=actor,
    )
    audit.record(
        actor=actor,
        action="tip_lot.receive",
        object_type="tip_lot",
        object_id=lot.id,
        detail={"lot_number": lot_number, "quantity": quantity_received},
    )
    return lot


def seed_default_aftercare_template(clinic: Clinic, admin: User | None = None) -> None:
    """A new clinic starts with domain.md's typical Skinfuse post-care, to edit as it likes."""
    if not AftercareTemplate.objects.filter(clinic=clinic).exists():
        AftercareTemplate.objects.create(
            clinic=clinic,
            name="Standard SkinPen aftercare",
            is_default=True,
            steps=[dict(step) for step in rules.DEFAULT_AFTERCARE_STEPS],
        )


@transaction.atomic
def create_aftercare_template(
    *, actor: User, name: str, steps: list[dict[str, Any]], is_default: bool = False
) -> AftercareTemplate:
    clinic_id = actor.clinic_uuid
    if AftercareTemplate.objects.filter(clinic_id=clinic_id, name=name).exists():
        raise InvalidInput({"name": ["A template with this name exists."]})
    if is_default:
        AftercareTemplate.objects.filter(clinic_id=clinic_id, is_default=True).update(
            is_default=False
        )
    template = AftercareTemplate.objects.create(
        clinic_id=clinic_id, name=name, steps=_ordered_steps(steps), is_default=is_default
    )
    audit.record(
        actor=actor,
        action="aftercare_template.create",
        object_type="aftercare_template",
        object_id=template.id,
    )
    return template


@transaction.atomic
def update_aftercare_template(
    *, actor: User, template: AftercareTemplate, changes: dict[str, Any]
) -> AftercareTemplate:
    template = AftercareTemplate.objects.select_for_update().get(pk=template.pk)
    if changes.get("is_default") is False and template.is_default:
        raise InvalidInput(
            {"is_default": ["Make another template the default instead of unsetting this one."]}
        )
    if changes.get("is_default"):
        AftercareTemplate.objects.filter(clinic_id=template.clinic_id, is_default=True).exclude(
            pk=template.pk
        ).update(is_default=False)
    if "name" in changes and (
        AftercareTemplate.objects.filter(clinic_id=template.clinic_id, name=changes["name"])
        .exclude(pk=template.pk)
        .exists()
    ):
        raise InvalidInput({"name": ["A template with this name exists."]})
    for field in ("name", "is_default"):
        if field in changes:
            setattr(template, field, changes[field])
    if "steps" in changes:
        template.steps = _ordered_steps(changes["steps"])
    template.save()
    audit.record(
        actor=actor,
        action="aftercare_template.update",
        object_type="aftercare_template",
        object_id=template.id,
        detail={"fields": sorted(changes)},
    )
    return template


def _ordered_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "day_offset": int(step["day_offset"]),
            "product": step.get("product") or "",
            "instruction": step["instruction"],
        }
        for step in sorted(steps, key=lambda step: int(step["day_offset"]))
    ]
