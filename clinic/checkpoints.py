"""Signed checkpoints: each clinic's chain heads, signed with a key kept outside the database.

A hash chain (clinic/audit.py) shows that a row was changed behind the application's back, but
anyone who can write to the database can also re-hash every row after the one they changed and
leave a chain that is consistent again. A checkpoint closes that gap the way certificate
transparency's signed tree heads do: now and then (beat, AUDIT_CHECKPOINT_SECONDS) and on every
export, the head of each chain, (chain, clinic, sequence, hash), is signed with an Ed25519 key
from the environment (AUDIT_SIGNING_KEY) and stored. A later rewrite cannot produce the old
signature, so `verify_audit` finds the chain's row at a checkpointed sequence with another hash
and names the rewrite; a chain cut short of a checkpoint is named too.

Each checkpoint is also logged (logger `clinic.checkpoints`, one JSON line) so that a copy lives
outside the database with the logs; `verify_audit --checkpoints FILE` checks against such a copy,
which catches checkpoints deleted from the table as well.

Keys rotate: the signing key's public half is always trusted; AUDIT_VERIFY_KEYS lists the public
halves of earlier keys (base64 of the 32 raw bytes), so older checkpoints keep verifying.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from clinic.audit import Anchor, HashChain, registered_chains, utc_text
from clinic.models import AuditCheckpoint, Clinic

logger = logging.getLogger(__name__)

MESSAGE_PREFIX = "skinpen-audit-checkpoint/v1"


class Reason:
    PERIODIC = "periodic"
    EXPORT = "export"
    MANUAL = "manual"


def _decode_key_bytes(text: str, setting: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImproperlyConfigured(f"{setting} is not base64: {error}") from error
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{setting} must be 32 bytes (base64), not {len(raw)}")
    return raw


def signing_key() -> Ed25519PrivateKey | None:
    """The key checkpoints are signed with, or None when none is configured (no checkpoints)."""
    text = settings.AUDIT_SIGNING_KEY
    if not text:
        return None
    return Ed25519PrivateKey.from_private_bytes(_decode_key_bytes(text, "AUDIT_SIGNING_KEY"))


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_bytes(key)).hexdigest()[:16]


def verify_keys() -> dict[str, Ed25519PublicKey]:
    """Every public key a checkpoint may be signed with, by key id."""
    keys: list[Ed25519PublicKey] = [
        Ed25519PublicKey.from_public_bytes(_decode_key_bytes(text, "AUDIT_VERIFY_KEYS"))
        for text in settings.AUDIT_VERIFY_KEYS
    ]
    private = signing_key()
    if private is not None:
        keys.append(private.public_key())
    return {key_id(key): key for key in keys}


def generate_key() -> tuple[str, str]:
    """A new signing key and its public half, both base64 (for AUDIT_SIGNING_KEY and
    AUDIT_VERIFY_KEYS)."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(seed).decode(), base64.b64encode(
        public_bytes(private.public_key())
    ).decode()


def message(
    chain: str, clinic_id: UUID | str | None, sequence: int, hash_: str, signed_at: str
) -> bytes:
    """What is signed: every field of the checkpoint, one per line."""
    clinic = "-" if clinic_id is None else str(clinic_id)
    return f"{MESSAGE_PREFIX}\n{chain}\n{clinic}\n{sequence}\n{hash_}\n{signed_at}".encode()


@dataclass(frozen=True)
class SignedHead:
    """A checkpoint as verified: from the table or from an external copy (a log line)."""

    chain: str
    clinic_id: str | None
    sequence: int
    hash: str
    signed_at: str
    key_id: str
    signature: str

    @classmethod
    def from_model(cls, checkpoint: AuditCheckpoint) -> SignedHead:
        return cls(
            chain=checkpoint.chain,
            clinic_id=None if checkpoint.clinic_id is None else str(checkpoint.clinic_id),
            sequence=checkpoint.sequence,
            hash=checkpoint.hash,
            signed_at=utc_text(checkpoint.signed_at),
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )

    @classmethod
    def from_json(cls, line: str) -> SignedHead:
        data = json.loads(line)
        return cls(
            chain=data["chain"],
            clinic_id=data["clinic"],
            sequence=int(data["sequence"]),
            hash=data["hash"],
            signed_at=data["signed_at"],
            key_id=data["key_id"],
            signature=data["signature"],
        )

    def as_json(self) -> str:
        return json.dumps(
            {
                "chain": self.chain,
                "clinic": self.clinic_id,
                "sequence": self.sequence,
                "hash": self.hash,
                "signed_at": self.signed_at,
                "key_id": self.key_id,
                "signature": self.signature,
            },
            sort_keys=True,
        )

    def signature_error(self, keys: dict[str, Ed25519PublicKey]) -> str | None:
        """None when the signature holds, else why not."""
        key = keys.get(self.key_id)
        if key is None:
            return (
                f"signed by unknown key {self.key_id} (not in AUDIT_SIGNING_KEY/AUDIT_VERIFY_KEYS)"
            )
        try:
            key.verify(
                base64.b64decode(self.signature),
                message(self.chain, self.clinic_id, self.sequence, self.hash, self.signed_at),
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return "signature does not verify: the checkpoint was forged or altered"
        return None


def chain_head(chain: HashChain, clinic_id: UUID | None) -> tuple[int, str] | None:
    """The last sealed link of one clinic's chain (sequence, hash), or None for an empty chain."""
    where = "clinic_id IS NULL" if clinic_id is None else "clinic_id = %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT sequence, hash FROM {chain.table} WHERE {where}"  # noqa: S608 - constants only
            " AND sequence IS NOT NULL ORDER BY sequence DESC LIMIT 1",
            [] if clinic_id is None else [clinic_id],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


def _chains_and_clinics(clinic_id: UUID | None) -> Iterator[tuple[HashChain, UUID | None]]:
    clinic_ids: list[UUID | None] = (
        [clinic_id]
        if clinic_id is not None
        else list(Clinic.objects.order_by("created_at", "id").values_list("id", flat=True))
    )
    for chain in registered_chains():
        for each in clinic_ids:
            yield chain, each
        if clinic_id is None and chain.has_clinicless_chain:
            yield chain, None


def write(*, clinic_id: UUID | None = None, reason: str = Reason.PERIODIC) -> list[AuditCheckpoint]:
    """Sign the head of every chain of one clinic (or of all, and the clinic-less one) that moved
    since its last checkpoint. Nothing is written when no signing key is configured."""
    key = signing_key()
    if key is None:
        logger.warning("AUDIT_SIGNING_KEY is not set: no audit checkpoint written")
        return []
    signer_id = key_id(key.public_key())
    written = []
    for chain, each in _chains_and_clinics(clinic_id):
        head = chain_head(chain, each)
        if head is None:
            continue
        sequence, hash_ = head
        signed_at = timezone.now()
        signature = base64.b64encode(
            key.sign(message(chain.table, each, sequence, hash_, utc_text(signed_at)))
        ).decode()
        of_chain = AuditCheckpoint.objects.filter(
            Q(clinic__isnull=True) if each is None else Q(clinic_id=each), chain=chain.table
        )
        latest = of_chain.order_by("-sequence").values_list("sequence", flat=True).first()
        if latest is not None and latest >= sequence:
            continue
        checkpoint = AuditCheckpoint(
            chain=chain.table,
            clinic_id=each,
            sequence=sequence,
            hash=hash_,
            signed_at=signed_at,
            key_id=signer_id,
            signature=signature,
            reason=reason,
        )
        try:
            with transaction.atomic():
                checkpoint.save(force_insert=True)
        except IntegrityError:
            continue  # another writer signed this very head a moment ago (unique constraint)
        written.append(checkpoint)
        logger.info("audit checkpoint %s", SignedHead.from_model(checkpoint).as_json())
    return written


def read_copy(lines: Iterable[str]) -> list[SignedHead]:
    """Checkpoints from an external copy: JSON lines as logged (a log line may carry a prefix
    before the JSON object)."""
    heads = []
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        heads.append(SignedHead.from_json(line[start:]))
    return heads


def anchors_by_chain(
    heads: Iterable[SignedHead], keys: dict[str, Ed25519PublicKey]
) -> tuple[dict[tuple[str, str | None], list[Anchor]], list[tuple[SignedHead, str]]]:
    """The checkpoints whose signature holds, as anchors per (chain, clinic id), and the others
    with why each is refused."""
    anchors: dict[tuple[str, str | None], list[Anchor]] = {}
    refused = []
    seen = set()
    for head in heads:
        if (head.chain, head.clinic_id, head.sequence, head.signature) in seen:
            continue
        seen.add((head.chain, head.clinic_id, head.sequence, head.signature))
        error = head.signature_error(keys)
        if error:
            refused.append((head, error))
            continue
        anchors.setdefault((head.chain, head.clinic_id), []).append(
            Anchor(head.sequence, head.hash, f"checkpoint signed at {head.signed_at}")
        )
    return anchors, refused
