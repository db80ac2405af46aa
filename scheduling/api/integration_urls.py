from rest_framework.routers import SimpleRouter

from scheduling.api.webhooks import WebhookViewSet

router = SimpleRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")

urlpatterns = router.urls
