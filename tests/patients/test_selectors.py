"""The patient reads compiled once (patients.selectors over clinic.plain_sql.CompiledQuery)
answer as the ORM does, and scope to the clinic asked for."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from patients import selectors
from patients.models import Screening
from tests.factories import PatientFactory, ScreeningFactory

pytestmark = pytest.mark.django_db


def test_the_latest_screening_is_the_newest_and_the_orms(clinic, front_desk):
    patient = PatientFactory(clinic=clinic)
    assert selectors.latest_screening(patient.id) is None
    now = timezone.now()
    older = ScreeningFactory(
        patient=patient, screened_by=front_desk, screened_at=now - timedelta(days=3)
    )
    newer = ScreeningFactory(patient=patient, screened_by=front_desk, screened_at=now)
    ScreeningFactory(patient=PatientFactory(clinic=clinic), screened_by=front_desk)  # another's
    found = selectors.latest_screening(patient.id)
    assert found == newer != older
    expected = Screening.objects.get(pk=newer.pk)
    assert {f.attname: getattr(found, f.attname) for f in Screening._meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in Screening._meta.concrete_fields
    }


def test_a_patient_is_found_in_their_clinic_only(clinic, other_clinic):
    patient = PatientFactory(clinic=clinic)
    assert selectors.patient_of_clinic(clinic.id, str(patient.id)) == patient
    assert selectors.patient_of_clinic(clinic.id, patient.id) == patient
    assert selectors.patient_of_clinic(other_clinic.id, patient.id) is None
    assert selectors.patient_of_clinic(clinic.id, uuid.uuid4()) is None
    assert selectors.patient_of_clinic(clinic.id, "-" * 36) is None
