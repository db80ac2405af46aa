"""Which of the world's objects (tests/world.py) a path parameter of the schema names."""

from tests.world import World

# The object a path parameter names, by the path's first word (and the parameter's name).
_BY_PREFIX = {
    "patients": "patient",
    "fhir": "patient",
    "series": "series",
    "sessions": "treated_session",
    "tip-lots": "tip_lot",
    "recall-notices": "recall_notice",
    "rooms": "room",
    "handpieces": "handpiece",
    "time-off": "time_off",
    "consent-forms": "consent_form",
    "webhooks": "webhook",
    "aftercare-templates": "aftercare_template",
    "staff": "provider",
}
_BY_NAME = {"consent_id": "consent", "delivery_id": "delivery"}


def object_id(world: World, path: str, name: str) -> str | None:
    """The seeded object's id for a path parameter, if the world has one."""
    key = _BY_NAME.get(name) or _BY_PREFIX.get(path.removeprefix("/api/v1/").split("/")[0])
    return world.ids.get(key) if key else None
