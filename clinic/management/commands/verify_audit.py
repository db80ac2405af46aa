"""Walk every hash chain (audit events, treatment records) and name the first broken link,
checking each chain against its signed checkpoints (clinic/checkpoints.py) too."""

from pathlib import Path
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinic import audit, checkpoints
from clinic.models import AuditCheckpoint, Clinic


class Command(BaseCommand):
    help = (
        "Verify the tamper-evident hash chains of the audit trail and the treatment records, "
        "per clinic, against their signed checkpoints. Exits 1 naming the first broken link "
        "(table, id, sequence) of each chain, a rewrite that re-hashed a chain consistently, and "
        "any checkpoint whose signature does not hold."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", type=UUID, help="Only this clinic (its id).")
        parser.add_argument(
            "--checkpoints",
            type=Path,
            help="Also check against a copy of the checkpoints kept outside the database: the "
            "JSON lines logged by `clinic.checkpoints` (catches checkpoints deleted from the "
            "table).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        clinic_id = options["clinic"]
        if clinic_id is not None and not Clinic.objects.filter(pk=clinic_id).exists():
            raise CommandError(f"No clinic {clinic_id}.")
        problems: list[str] = []

        rows = AuditCheckpoint.objects.all()
        if clinic_id is not None:
            rows = rows.filter(clinic_id=clinic_id)
        in_table = [checkpoints.SignedHead.from_model(row) for row in rows]
        heads = list(in_table)
        if options["checkpoints"] is not None:
            copy = checkpoints.read_copy(options["checkpoints"].read_text().splitlines())
            if clinic_id is not None:
                copy = [head for head in copy if head.clinic_id == str(clinic_id)]
            kept = {(h.chain, h.clinic_id, h.sequence, h.signature) for h in in_table}
            for head in copy:
                if (head.chain, head.clinic_id, head.sequence, head.signature) not in kept:
                    problems.append(
                        f"checkpoint {head.chain} clinic={head.clinic_id or '(no clinic)'} "
                        f"sequence={head.sequence} signed at {head.signed_at} is in the copy but "
                        "not in the table: checkpoints were deleted"
                    )
            heads += copy
        keys = checkpoints.verify_keys()
        if heads and not keys:
            raise CommandError(
                "Checkpoints exist but no key to verify them: set AUDIT_SIGNING_KEY or "
                "AUDIT_VERIFY_KEYS.",
                returncode=1,
            )
        anchors, refused = checkpoints.anchors_by_chain(heads, keys)
        for head, why in refused:
            problems.append(
                f"checkpoint {head.chain} clinic={head.clinic_id or '(no clinic)'} "
                f"sequence={head.sequence}: {why}"
            )

        for report in audit.verify(
            clinic_id,
            anchors=lambda table, each: anchors.get(
                (table, None if each is None else str(each)), []
            ),
        ):
            clinic = report.clinic_id or "(no clinic)"
            held = len(
                anchors.get(
                    (report.table, None if report.clinic_id is None else str(report.clinic_id)), []
                )
            )
            if report.broken is None:
                signed = f"; {held} signed checkpoints hold" if held else ""
                self.stdout.write(
                    f"ok      {report.table} clinic={clinic}: {report.length} linked{signed}"
                )
            else:
                problems.append(str(report.broken))
                self.stdout.write(
                    f"BROKEN  {report.table} clinic={clinic}: first broken link "
                    f"{report.broken} ({report.length} linked before it)"
                )
        for problem in problems:
            if problem.startswith("checkpoint "):
                self.stdout.write(f"BROKEN  {problem}")
        if not keys:
            self.stdout.write(
                "warning: no AUDIT_SIGNING_KEY: chains are checked for internal consistency only"
            )
        if problems:
            raise CommandError("Broken hash chain: " + "; ".join(problems), returncode=1)
