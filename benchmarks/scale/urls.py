from clinic.urls import urlpatterns

# The floor's views are reached through FloorMiddleware (before every other middleware), so
# the API's URLs are all there is here.
__all__ = ["urlpatterns"]
