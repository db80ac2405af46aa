"""Sign the chains' heads now (beat does it every AUDIT_CHECKPOINT_SECONDS), or make a key."""

from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandParser

from clinic import checkpoints


class Command(BaseCommand):
    help = (
        "Write a signed checkpoint of every audit and treatment chain that moved since its last "
        "one (AUDIT_SIGNING_KEY), or with --generate-key print a new Ed25519 key pair."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", type=UUID, help="Only this clinic (its id).")
        parser.add_argument(
            "--generate-key",
            action="store_true",
            help="Print a new AUDIT_SIGNING_KEY and its public half (for AUDIT_VERIFY_KEYS once "
            "the key is rotated); writes nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate_key"]:
            private, public = checkpoints.generate_key()
            self.stdout.write(f"AUDIT_SIGNING_KEY={private}\n# public half: {public}")
            return
        written = checkpoints.write(clinic_id=options["clinic"], reason=checkpoints.Reason.MANUAL)
        for checkpoint in written:
            self.stdout.write(f"signed  {checkpoint}")
        self.stdout.write(f"{len(written)} checkpoints written")
