from django.urls import path
from rest_framework.routers import SimpleRouter

from scheduling.api.inbound import InboundMessageViewSet, InboundSMSView
from scheduling.api.webhooks import WebhookViewSet

router = SimpleRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("inbound-messages", InboundMessageViewSet, basename="inbound-message")

urlpatterns = [
    *router.urls,
    path("inbound/sms/", InboundSMSView.as_view(), name="inbound-sms"),
]
