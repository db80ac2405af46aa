from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinic import services
from clinic.errors import InvalidInput

VIA = "manage.py enroll_totp"


class Command(BaseCommand):
    help = (
        "Enrol a user's TOTP authenticator. Without --code: start (prints the otpauth:// URI to "
        "add to an authenticator app); with --code: confirm with the app's current code. "
        "--remove deletes the user's devices."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--code", help="the authenticator's current code, to confirm")
        action.add_argument("--remove", action="store_true", help="remove the user's devices")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        try:
            if options["remove"]:
                count = services.remove_totp(username=username, via=VIA)
                self.stdout.write(f"Removed {count} TOTP device(s) of {username}.")
            elif options["code"]:
                services.confirm_totp_enrolment(username=username, code=options["code"], via=VIA)
                self.stdout.write(
                    f"TOTP confirmed for {username}: its code is now required at every login."
                )
            else:
                device = services.start_totp_enrolment(username=username, via=VIA)
                self.stdout.write(device.config_url)
                self.stderr.write(
                    "Add this URI to an authenticator app (or as a QR code), then run: "
                    f"manage.py enroll_totp --username {username} --code <current code>"
                )
        except InvalidInput as exc:
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in exc.extra["errors"].items()
            )
            raise CommandError(problems) from exc
