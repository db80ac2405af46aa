from rest_framework.routers import SimpleRouter

from scheduling.api import views

router = SimpleRouter()
router.register("series", views.SeriesViewSet, basename="series")
router.register("sessions", views.SessionViewSet, basename="session")

urlpatterns = router.urls
