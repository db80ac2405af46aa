"""`manage.py export_tip_usage`: the tip-usage CSV of the API, written to a file."""

import sys
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from clinic import audit
from clinic.errors import InvalidInput
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
        parser.add_argument("--from", dest="used_from", help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="used_to", help="Last day (inclusive), YYYY-MM-DD.")
        parser.add_argument("--lot", help="A tip lot's id or lot number.")
        parser.add_argument("--output", required=True, help="The CSV file to write ('-': stdout).")
        parser.add_argument(
            "--no-verify", action="store_true", help="Skip the hash-chain check after the export."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        clinic = Clinic.objects.filter(pk=options["clinic"]).first()
        if clinic is None:
            raise CommandError(f"No clinic {options['clinic']}.")
        params = {"from": options["used_from"], "to": options["used_to"], "lot": options["lot"]}
        try:
            exporter = exports.TipUsageExporter(clinic, params, parameter_name=_option)
        except InvalidInput as exc:
            raise CommandError(
                " ".join(
                    f"{_option(name)} {message[0].lower()}{message[1:]}"
                    for name, messages in exc.extra["errors"].items()
                    for message in messages
                )
            ) from exc
        quiet = options["verbosity"] == 0
        total = None if quiet else exporter.count()
        rows = 0
        with (
            tqdm(total=total, unit=" rows", unit_scale=True, disable=quiet, file=sys.stderr) as bar,
            _open(options["output"]) as out,
        ):

            def progress(written: int) -> None:
                nonlocal rows
                rows += written
                bar.update(written)

            for chunk in exporter.render(
                actor=None, via="manage.py export_tip_usage", progress=progress
            ):
                out.write(chunk)
        if not quiet:
            self.stderr.write(f"{rows} rows written to {options['output']}")
        if options["no_verify"]:
            return
        report = audit.verify_chain(TREATMENT_CHAIN, clinic.id)
        if report.broken is not None:
            raise CommandError(f"Treatment records' hash chain is broken: {report.broken}")
        if not quiet:
            self.stderr.write(f"Treatment records' hash chain: ok ({report.length} linked)")


def _option(parameter: str) -> str:
    return f"--{parameter}"


class _Stdout:
    def __enter__(self) -> Any:
        return sys.stdout.buffer

    def __exit__(self, *exc: object) -> None:
        sys.stdout.buffer.flush()


def _open(path: str) -> Any:
    return _Stdout() if path == "-" else open(path, "wb")
