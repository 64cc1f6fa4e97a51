"""Errors of threshold encryption (committee.encryption): bad ciphertexts, bad key shares.

Each class carries a stable ``code`` and puts its details in ``data``, like every
``BlockspaceError``; all are input errors about one ciphertext or one key, never system faults,
so one bad bid never stops the others from opening (docs/encryption.md, "Errors").
"""

from __future__ import annotations

from committee.errors import CommitteeError


class CiphertextError(CommitteeError):
    """Base of every refusal of an encrypted bid."""

    code = "ciphertext_error"


class MalformedCiphertext(CiphertextError):
    """Bytes that are not a ciphertext: not bytes or hex, a bad point, a bad length field."""

    code = "malformed_ciphertext"


class UnsupportedCiphertextVersion(CiphertextError):
    """The version byte names a format this code does not know."""

    code = "unsupported_ciphertext_version"


class CiphertextTooShort(CiphertextError):
    """Shorter than the fixed header plus the AEAD tag and one payload byte."""

    code = "ciphertext_too_short"


class CiphertextTooLarge(CiphertextError):
    """The payload or the public fields exceed their bounds (MAX_PAYLOAD_BYTES,
    MAX_PUBLIC_BYTES)."""

    code = "ciphertext_too_large"


class WrongCommittee(CiphertextError):
    """Encrypted to another committee's identity."""

    code = "ciphertext_wrong_committee"


class WrongSlot(CiphertextError):
    """Encrypted to another slot's identity."""

    code = "ciphertext_wrong_slot"


class InvalidEncapsulation(CiphertextError):
    """The encapsulation fails the Fujisaki-Okamoto re-encryption check (C1 != H_r(sigma) * G1):
    it was not made by an honest encryptor, or was altered."""

    code = "invalid_encapsulation"


class PayloadAuthFailed(CiphertextError):
    """The AEAD refuses the payload: the body, nonce, public fields or header were altered."""

    code = "payload_auth_failed"


class InvalidKeyShare(CommitteeError):
    """A member's key share for a slot that does not verify against its public key share."""

    code = "invalid_key_share"


class InvalidSlotKey(CommitteeError):
    """A combined slot key that does not verify as the group's signature on the identity."""

    code = "invalid_slot_key"


class NoCommittee(CommitteeError):
    """The server has no committee, so there is no key to encrypt bids to."""

    code = "no_committee"
