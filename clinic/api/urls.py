from django.urls import path
from rest_framework.routers import SimpleRouter

from clinic.api import views
from clinic.api.audit_views import AuditEventViewSet

router = SimpleRouter()
router.register("staff", views.StaffViewSet, basename="staff")
router.register("rooms", views.RoomViewSet, basename="room")
router.register("handpieces", views.HandpieceViewSet, basename="handpiece")
router.register("audit-events", AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("auth/logout/", views.LogoutView.as_view(), name="auth-logout"),
    path("clinic/", views.ClinicView.as_view(), name="clinic"),
    *router.urls,
]
