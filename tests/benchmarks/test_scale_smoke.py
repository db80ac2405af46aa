"""The scale benchmark (benchmarks/scale) at a very small scale, so a change of the schema or
of an endpoint that breaks it fails here and not in the next `make bench`: its seed makes
chains `verify_audit` accepts, every measured request answers through the API, and every floor
view answers too. The benchmark itself never runs in the suite."""

import json

import pytest
from django.test import RequestFactory

from benchmarks.scale import dataset, floor, seed
from benchmarks.scale.report import READS, WRITES
from clinic import audit
from clinic.models import AuditEvent, Clinic
from scheduling.models import Session, SessionStatus
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from treatments.models import TreatmentRecord

SESSIONS, CLINICS, TARGETS = 400, 2, 24


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_seeds_valid_chains_and_the_api_and_floor_answer_every_request(
    monkeypatch,
):
    monkeypatch.setattr(dataset, "READ_TARGETS", 2)
    seed.seed(SESSIONS, CLINICS, targets=TARGETS, log=lambda *_: None, analyze=False)
    assert seed.seeded(SESSIONS, CLINICS) == TARGETS
    assert Session.objects.count() == SESSIONS + TARGETS // 2
    assert (
        TreatmentRecord.objects.count()
        == Session.objects.filter(status=SessionStatus.COMPLETED).count()
    )
    reports = list(audit.verify())
    assert [r for r in reports if r.broken is not None] == []
    assert [r.length > 0 for r in reports if r.clinic_id is not None] == [True] * 2 * CLINICS

    targets = dataset.api_targets(SESSIONS, CLINICS, TARGETS)
    # Captures each request with the API's own view and fails on any answer but 200/201.
    specs = dataset.floor_specs(targets)
    assert sorted(specs) == sorted(READS + WRITES)
    requests = RequestFactory()
    audited = []
    for name in READS:
        events = AuditEvent.objects.count()
        response = floor.floor(requests.get("/"), name, 0, given=specs)
        assert response.status_code == 200, name
        assert json.loads(response.content)["results"], name
        # The same audit rows as the API's request wrote, one per row captured.
        written = AuditEvent.objects.count() - events
        assert written == len(specs[name]["targets"][0]["audit"]), name
        audited += [name] * (written > 1)
    assert {"patient_search", "day_view", "tip_lot_usage"} <= set(audited)
    for name in WRITES:
        response = floor.floor(requests.get("/"), name, 0, given=specs)
        assert response.status_code == 201, name
    clinic = Clinic.objects.get(name=seed.clinic_name(0))
    assert [r.broken for r in audit.verify(clinic.id)] == [None, None]
