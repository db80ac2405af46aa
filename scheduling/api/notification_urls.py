from rest_framework.routers import SimpleRouter

from scheduling.api.notification_views import NotificationViewSet

router = SimpleRouter()
router.register("notifications", NotificationViewSet, basename="notification")

urlpatterns = router.urls
