"""The root URL conf: every app's API under /api/v1/, plus schema, docs, health and admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from clinic.api.views import HealthView

handler400 = "clinic.api.problems.handler400"
handler403 = "clinic.api.problems.handler403"
handler404 = "clinic.api.problems.handler404"
handler500 = "clinic.api.problems.handler500"

# Included by dotted path (a string, not an import): the project package never imports upwards.
api_v1 = [
    path("", include("clinic.api.urls")),
    path("", include("patients.api.urls")),
    path("", include("scheduling.api.urls")),
    path("", include("scheduling.api.notification_urls")),
    path("", include("scheduling.api.integration_urls")),
    path("", include("treatments.api.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz/", HealthView.as_view(), name="healthz"),
    path("admin/", admin.site.urls),
]
