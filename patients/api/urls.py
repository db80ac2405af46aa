from django.urls import path
from rest_framework.routers import SimpleRouter

from patients.api import views

router = SimpleRouter()
router.register("patients", views.PatientViewSet, basename="patient")

UUID = "<uuid:pk>"
screenings = views.ScreeningViewSet.as_view({"get": "list", "post": "create"})
eligibility = views.ScreeningViewSet.as_view({"get": "eligibility"})

urlpatterns = [
    *router.urls,
    path(f"patients/{UUID}/screenings/", screenings, name="patient-screenings"),
    path(f"patients/{UUID}/eligibility/", eligibility, name="patient-eligibility"),
]
