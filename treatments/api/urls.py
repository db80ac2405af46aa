from django.urls import path
from rest_framework.routers import SimpleRouter

from treatments.api import consents, export_views, views

router = SimpleRouter()
router.register("tip-lots", views.TipLotViewSet, basename="tip-lot")
router.register("recall-notices", views.RecallNoticeViewSet, basename="recall-notice")
router.register(
    "aftercare-templates", views.AftercareTemplateViewSet, basename="aftercare-template"
)
router.register("consent-forms", consents.ConsentFormViewSet, basename="consent-form")

UUID = "<uuid:pk>"
lot = views.TipLotActionsViewSet
treatment = views.SessionTreatmentViewSet
usage_csv = export_views.TipUsageExportView
everything = export_views.PatientEverythingView
patient_consents = consents.PatientConsentViewSet
CONSENT = "<uuid:consent_id>"

urlpatterns = [
    *router.urls,
    path(f"tip-lots/{UUID}/recall/", lot.as_view({"post": "recall"}), name="tip-lot-recall"),
    path(f"tip-lots/{UUID}/usage/", lot.as_view({"get": "usage"}), name="tip-lot-usage"),
    path(
        f"sessions/{UUID}/treatment/",
        treatment.as_view({"get": "retrieve", "post": "create"}),
        name="session-treatment",
    ),
    path(
        f"sessions/{UUID}/treatment/amendments/",
        treatment.as_view({"get": "amendments", "post": "amend"}),
        name="session-treatment-amendments",
    ),
    path(
        f"sessions/{UUID}/aftercare/",
        treatment.as_view({"get": "aftercare"}),
        name="session-aftercare",
    ),
    path(
        f"patients/{UUID}/consents/",
        patient_consents.as_view({"get": "list", "post": "create"}),
        name="patient-consents",
    ),
    path(
        f"patients/{UUID}/consents/{CONSENT}/",
        patient_consents.as_view({"get": "retrieve"}),
        name="patient-consent",
    ),
    path(
        f"patients/{UUID}/consents/{CONSENT}/revoke/",
        patient_consents.as_view({"post": "revoke"}),
        name="patient-consent-revoke",
    ),
    # The contract's paths have no trailing slash; the slashed forms answer too (not in the
    # schema, so each operation is documented once).
    path("exports/tip-usage.csv", usage_csv.as_view(), name="export-tip-usage"),
    path("exports/tip-usage.csv/", usage_csv.as_view(schema=None)),
    path(f"fhir/Patient/{UUID}/$everything", everything.as_view(), name="fhir-everything"),
    path(f"fhir/Patient/{UUID}/$everything/", everything.as_view(schema=None)),
]
