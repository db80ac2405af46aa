from django.urls import path
from rest_framework.routers import SimpleRouter

from treatments.api import views

router = SimpleRouter()
router.register("tip-lots", views.TipLotViewSet, basename="tip-lot")
router.register(
    "aftercare-templates", views.AftercareTemplateViewSet, basename="aftercare-template"
)

UUID = "<uuid:pk>"
lot = views.TipLotActionsViewSet
treatment = views.SessionTreatmentViewSet

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
]
