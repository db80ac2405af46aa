"""Reads of treatment records that views and exports reuse, with constant query counts."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Prefetch, QuerySet

from treatments.models import AftercarePlan, TreatmentAmendment, TreatmentDepth, TreatmentRecord


def treatment_records() -> QuerySet[TreatmentRecord]:
    """Records with their depths and amendments, in three queries however many."""
    return TreatmentRecord.objects.prefetch_related(
        Prefetch("depths", queryset=TreatmentDepth.objects.order_by("id")),
        Prefetch("amendments", queryset=TreatmentAmendment.objects.order_by("amended_at", "id")),
    )


def record_of_session(clinic_id: UUID, session_id: UUID) -> TreatmentRecord | None:
    return treatment_records().filter(clinic_id=clinic_id, session_id=session_id).first()


def lot_usage(clinic_id: UUID, lot_id: UUID) -> QuerySet[TreatmentRecord]:
    return treatment_records().filter(clinic_id=clinic_id, tip_lot_id=lot_id)


def aftercare_of_session(clinic_id: UUID, session_id: UUID) -> AftercarePlan | None:
    return AftercarePlan.objects.filter(clinic_id=clinic_id, session_id=session_id).first()
