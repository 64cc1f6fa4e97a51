"""Errors of threshold encryption (committee.encryption): bad ciphertexts, bad key shares.

Each class carries a stable ``code`` and puts its details in ``data``, like every
``BlockspaceError``; all are input errors about one ciphertext or one key, never system faults,
so one bad bid never stops the others from opening (docs/encryption.md, "Errors").
"""

from __future__ import annotations

# The refusals of one ciphertext are the intake's too: they live in auction.ciphertext (the pure
# layer intake can import) and are re-exported here.
from auction.ciphertext import CiphertextError as CiphertextError
from auction.ciphertext import CiphertextTooLarge as CiphertextTooLarge
from auction.ciphertext import CiphertextTooShort as CiphertextTooShort
from auction.ciphertext import InvalidEncapsulation as InvalidEncapsulation
from auction.ciphertext import MalformedCiphertext as MalformedCiphertext
from auction.ciphertext import PayloadAuthFailed as PayloadAuthFailed
from auction.ciphertext import (
    UnsupportedCiphertextVersion as UnsupportedCiphertextVersion,
)
from auction.ciphertext import WrongCommittee as WrongCommittee
from auction.ciphertext import WrongSlot as WrongSlot
from committee.errors import CommitteeError


class InvalidKeyShare(CommitteeError):
    """A member's key share for a slot that does not verify against its public key share."""

    code = "invalid_key_share"


class InvalidSlotKey(CommitteeError):
    """A combined slot key that does not verify as the group's signature on the identity."""

    code = "invalid_slot_key"


class NoCommittee(CommitteeError):
    """The server has no committee, so there is no key to encrypt bids to."""

    code = "no_committee"
