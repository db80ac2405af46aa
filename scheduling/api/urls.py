from django.urls import path
from rest_framework.routers import SimpleRouter

from scheduling.api import timetable, views

router = SimpleRouter()
router.register("series", views.SeriesViewSet, basename="series")
router.register("sessions", views.SessionViewSet, basename="session")
router.register("time-off", timetable.TimeOffViewSet, basename="time-off")

urlpatterns = [
    *router.urls,
    path(
        "staff/<uuid:pk>/working-hours/",
        timetable.WorkingHoursView.as_view(),
        name="staff-working-hours",
    ),
    path(
        "staff/<uuid:pk>/calendar-feed/",
        timetable.CalendarFeedRotateView.as_view(),
        name="staff-calendar-feed",
    ),
    path(
        "calendar-feeds/<str:secret>/",
        timetable.CalendarFeedView.as_view(),
        name="calendar-feed",
    ),
    path("availability/", timetable.AvailabilityView.as_view(), name="availability"),
    path("series/<uuid:pk>/plan/", timetable.SeriesPlanView.as_view(), name="series-plan"),
    path("series/<uuid:pk>/book/", timetable.SeriesBookView.as_view(), name="series-book"),
]
