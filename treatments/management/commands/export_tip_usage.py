"""`manage.py export_tip_usage`: the tip-usage CSV of the API, written to a file."""

import sys
from datetime import date
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from clinic import audit
from clinic.models import Clinic
from treatments import exports
from treatments.integrity import TREATMENT_CHAIN


class Command(BaseCommand):
    help = (
        "Export every cartridge (tip) used by a clinic as CSV, exactly as "
        "GET /api/v1/exports/tip-usage.csv does, with a progress bar on stderr. "
        "Then check the clinic's treatment-record hash chain and name its first broken link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", type=UUID, required=True, help="The clinic's id.")
        parser.add_argument(
            "--from", dest="used_from", type=date.fromisoformat, help="First day, YYYY-MM-DD."
        )
        parser.add_argument(
            "--to", dest="used_to", type=date.fromisoformat, help="Last day (inclusive)."
        )
        parser.add_argument("--lot", help="A tip lot's id or lot number.")
        parser.add_argument("--output", required=True, help="The CSV file to write ('-': stdout).")
        parser.add_argument(
            "--no-verify", action="store_true", help="Skip the hash-chain check after the export."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        clinic = Clinic.objects.filter(pk=options["clinic"]).first()
        if clinic is None:
            raise CommandError(f"No clinic {options['clinic']}.")
        used_from, used_to = options["used_from"], options["used_to"]
        if used_from and used_to and used_from > used_to:
            raise CommandError("--to must not be before --from.")
        query = exports.tip_usage_query(
            clinic, used_from=used_from, used_to=used_to, lot=options["lot"]
        )
        audit.record(
            actor=None,
            actor_label="manage.py export_tip_usage",
            clinic_id=clinic.id,
            action="export.tip_usage",
            object_type="export",
            object_id="tip-usage.csv",
            detail={"from": used_from, "to": used_to, "lot": options["lot"]},
        )
        quiet = options["verbosity"] == 0
        total = None if quiet else exports.count_tip_usage(query)
        with (
            tqdm(total=total, unit=" rows", unit_scale=True, disable=quiet, file=sys.stderr) as bar,
            _open(options["output"]) as out,
        ):
            rows = exports.write_tip_usage_csv(query, out, on_rows=bar.update)
        if not quiet:
            self.stderr.write(f"{rows} rows written to {options['output']}")
        if options["no_verify"]:
            return
        report = audit.verify_chain(TREATMENT_CHAIN, clinic.id)
        if report.broken is not None:
            raise CommandError(f"Treatment records' hash chain is broken: {report.broken}")
        if not quiet:
            self.stderr.write(f"Treatment records' hash chain: ok ({report.length} linked)")


class _Stdout:
    def __enter__(self) -> Any:
        return sys.stdout.buffer

    def __exit__(self, *exc: object) -> None:
        sys.stdout.buffer.flush()


def _open(path: str) -> Any:
    return _Stdout() if path == "-" else open(path, "wb")
