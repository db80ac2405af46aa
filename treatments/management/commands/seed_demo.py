"""Create the demo clinic once (idempotent) and print one login per role.

Demo data reaches into every app, so this command lives in the top layer.
"""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from clinic import services as clinic_services
from clinic.models import Clinic, Role, User
from scheduling import slots, timetable_services
from treatments import consents
from treatments import services as treatment_services
from treatments.models import ConsentForm

DEMO_CLINIC = "Demo Clinic"
DEMO_PASSWORD = "demo-Sk1nPen!"  # noqa: S105 - printed for the demo on purpose
DEMO_CONSENT = (
    "I consent to a series of SkinPen microneedling treatments. I have been told that redness "
    "and swelling may last a few days, that results vary, and that I must follow the aftercare "
    "plan. I will tell the clinic before each session if I am pregnant or nursing, have an "
    "active skin infection or cold sore, or open wounds in the treatment area."
)
DEMO_USERS = [
    ("demo_admin", "Dana Admin", Role.ADMIN),
    ("demo_front_desk", "Frankie Front", Role.FRONT_DESK),
    ("demo_provider", "Dr Pat Provider", Role.PROVIDER),
    ("demo_auditor", "Alex Auditor", Role.AUDITOR),
]


class Command(BaseCommand):
    help = "Create the demo clinic with one login per role (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            clinic = Clinic.objects.filter(name=DEMO_CLINIC).order_by("created_at").first()
            if clinic is None:
                username, _name, _role = DEMO_USERS[0]
                clinic, _admin = clinic_services.create_clinic(
                    name=DEMO_CLINIC,
                    timezone_name="America/New_York",
                    admin_username=username,
                    admin_password=DEMO_PASSWORD,
                    via="manage.py seed_demo",
                )
            admin = User.objects.get(username=DEMO_USERS[0][0])
            for username, full_name, role in DEMO_USERS[1:]:
                if not User.objects.filter(username=username).exists():
                    clinic_services.create_staff(
                        actor=admin,
                        username=username,
                        password=DEMO_PASSWORD,
                        full_name=full_name,
                        role=role,
                    )
            provider = User.objects.get(username="demo_provider")
            if not timetable_services.working_hours_of(provider):
                # Monday to Friday, 09:00-17:00 clinic time, so availability has a shape.
                timetable_services.set_working_hours(
                    actor=admin,
                    provider=provider,
                    intervals=[slots.WeeklyInterval(day, 9 * 60, 17 * 60) for day in range(5)],
                )
            if not clinic.rooms.exists():
                clinic_services.create_room(actor=admin, name="Room 1")
                clinic_services.create_room(actor=admin, name="Room 2")
            if not clinic.handpieces.exists():
                clinic_services.create_handpiece(actor=admin, serial_number="SP-DEMO-0001")
            treatment_services.seed_default_aftercare_template(clinic)
            if not clinic.tip_lots.exists():
                treatment_services.receive_tip_lot(
                    actor=admin,
                    lot_number="DEMO-LOT-001",
                    expires_on=timezone.localdate() + timedelta(days=365),
                    quantity_received=20,
                )
            if not ConsentForm.objects.filter(clinic=clinic).exists():
                # The point of care asks for it (README, "Point of care").
                consents.create_consent_form(
                    actor=admin, title="SkinPen microneedling consent", body=DEMO_CONSENT
                )

        self.stdout.write(f"Demo clinic: {clinic.name} ({clinic.id}), timezone {clinic.timezone}")
        self.stdout.write("Demo logins (POST /api/v1/auth/token/):")
        for username, _full_name, role in DEMO_USERS:
            self.stdout.write(f"  {role:<11} username={username:<16} password={DEMO_PASSWORD}")
