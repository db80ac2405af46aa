from rest_framework.routers import SimpleRouter

from treatments.api import views

router = SimpleRouter()
router.register("tip-lots", views.TipLotViewSet, basename="tip-lot")
router.register(
    "aftercare-templates", views.AftercareTemplateViewSet, basename="aftercare-template"
)

urlpatterns = [*router.urls]
