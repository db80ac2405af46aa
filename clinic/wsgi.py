import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

application = get_wsgi_application()

from clinic import memory  # noqa: E402  (needs the settings get_wsgi_application loaded)

memory.settle()
