"""Walk every hash chain (audit events, treatment records) and name the first broken link."""

from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinic import audit
from clinic.models import Clinic


class Command(BaseCommand):
    help = (
        "Verify the tamper-evident hash chains of the audit trail and the treatment records, "
        "per clinic. Exits 1 naming the first broken link (table, id, sequence) of each chain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", type=UUID, help="Only this clinic (its id).")

    def handle(self, *args: Any, **options: Any) -> None:
        clinic_id = options["clinic"]
        if clinic_id is not None and not Clinic.objects.filter(pk=clinic_id).exists():
            raise CommandError(f"No clinic {clinic_id}.")
        broken = []
        for report in audit.verify(clinic_id):
            clinic = report.clinic_id or "(no clinic)"
            if report.broken is None:
                self.stdout.write(f"ok      {report.table} clinic={clinic}: {report.length} linked")
            else:
                broken.append(report.broken)
                self.stdout.write(
                    f"BROKEN  {report.table} clinic={clinic}: first broken link "
                    f"{report.broken} ({report.length} linked before it)"
                )
        if broken:
            raise CommandError(
                "Broken hash chain: " + "; ".join(str(link) for link in broken), returncode=1
            )
