"""Errors raised by the signing committee's crypto core and key files.

Every class carries a stable ``code`` (clients and operators match on it) and puts its details in
``data`` (``BlockspaceError(message, **data)``), so the transport layer can map them like any
other engine error. Key-file loaders add ``field`` (the JSON field at fault) to ``data`` where one
applies.
"""

from __future__ import annotations

from auction.errors import BlockspaceError


class CommitteeError(BlockspaceError):
    """Base of every committee error: bad keys, bad shares, bad partials, bad key files."""

    code = "committee_error"


class InvalidScalar(CommitteeError):
    """A secret key, share or field element is out of range (0, or >= the curve order r)."""

    code = "invalid_scalar"


class InvalidPoint(CommitteeError):
    """Bytes that are not a canonical, on-curve, in-subgroup, non-identity G1 or G2 point."""

    code = "invalid_point"


class InvalidCommitteeParams(CommitteeError):
    """Committee size n or threshold t out of range (need 1 <= t <= n <= MAX_COMMITTEE_SIZE)."""

    code = "invalid_committee_params"


class InvalidMemberIndex(CommitteeError):
    """A member index outside 1..n, or not an int."""

    code = "invalid_member_index"


class InvalidShare(CommitteeError):
    """A key share that does not match the committee's Feldman commitments."""

    code = "invalid_share"


class DuplicatePartial(CommitteeError):
    """Two partial signatures for the same member index were offered to ``combine``."""

    code = "duplicate_partial"


class NotEnoughPartials(CommitteeError):
    """Fewer than t partial signatures were offered to ``combine``."""

    code = "not_enough_partials"


class CommitteeMismatch(CommitteeError):
    """Public committee data disagrees with itself or with a share (id, keys, n, t)."""

    code = "committee_mismatch"


class InvalidKeyfile(CommitteeError):
    """A key file that is not JSON, or has a missing, unknown or mistyped field, or bad hex."""

    code = "invalid_keyfile"
