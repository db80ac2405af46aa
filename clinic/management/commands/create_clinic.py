import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinic import services
from clinic.errors import InvalidInput


class Command(BaseCommand):
    help = 'Create a clinic and its first admin; prints {"clinic_id": "..."}.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--timezone", required=True, help="IANA name, e.g. Europe/London")
        parser.add_argument("--admin-username", required=True)
        parser.add_argument("--admin-password", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            clinic, _admin = services.create_clinic(
                name=options["name"],
                timezone_name=options["timezone"],
                admin_username=options["admin_username"],
                admin_password=options["admin_password"],
                via="manage.py create_clinic",
            )
        except InvalidInput as exc:
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in exc.extra["errors"].items()
            )
            raise CommandError(problems) from exc
        self.stdout.write(json.dumps({"clinic_id": str(clinic.id)}))
