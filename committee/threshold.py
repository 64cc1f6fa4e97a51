"""t-of-n threshold BLS: trusted-dealer keygen with Feldman commitments, partials, combine.

The dealer picks a random polynomial f of degree t-1 over Z/rZ. Member i (1..n) holds the share
f(i); the group secret is f(0) and never exists anywhere after ``deal`` returns. The dealer
publishes Feldman commitments C_j = a_j * G1 to the coefficients a_j, so each member can check its
share (``verify_share``) and anyone can derive member i's public key sum_j C_j * i^j. The group
public key is C_0.

A partial signature is an ordinary BLS signature by a share: sigma_i = f(i) * H(m). Any t of them
combine by Lagrange interpolation at 0, in the exponent: sigma = sum_i lambda_i * sigma_i =
f(0) * H(m), which is exactly the signature the group secret would have made. So the result is
deterministic (any t-subset gives the same bytes) and verifies under the group public key with
any standard Ethereum BLS library.

Everything here is pure: randomness comes in as a seed, nothing reads clocks, files or sockets.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from py_arkworks_bls12381 import G1Point, Scalar

from committee import bls
from committee.errors import (
    CommitteeMismatch,
    DuplicatePartial,
    InvalidCommitteeParams,
    InvalidMemberIndex,
    InvalidPoint,
    NotEnoughPartials,
)

# Sanity bound on committee size: deal/derivation cost grows as n * t group operations.
MAX_COMMITTEE_SIZE: Final[int] = 1024
COMMITTEE_ID_LENGTH: Final[int] = 32
MIN_SEED_LENGTH: Final[int] = 32

# Domain tags: a committee id or a dealt coefficient can never be confused with another hash.
_COMMITTEE_ID_TAG: Final[bytes] = b"blockspace/committee-id/v1\x00"
_DEAL_SALT: Final[bytes] = b"blockspace/committee-deal/v1"


# --- types ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyShare:
    """One member's secret share f(index) of the group key; only that member ever holds it."""

    index: int
    # repr=False: a share must never end up in a log line or a traceback by accident.
    secret: int = field(repr=False)
    committee_id: bytes

    def __post_init__(self) -> None:
        check_member_index(self.index, MAX_COMMITTEE_SIZE)
        bls.check_secret(self.secret)
        _check_committee_id(self.committee_id)

    @property
    def public_key(self) -> bytes:
        """The member's public key share, f(index) * G1."""
        return bls.secret_to_public_key(self.secret)


@dataclass(frozen=True)
class CommitteeInfo:
    """Everything public about a committee; ``compute_committee_info`` is the way to build one.

    ``member_public_keys[i - 1]`` belongs to member ``i``; ``commitments[0]`` is the group key.
    The constructor checks shapes only; ``check_committee_info`` re-derives the keys and id.
    """

    committee_id: bytes
    n: int
    t: int
    group_public_key: bytes
    member_public_keys: tuple[bytes, ...]
    commitments: tuple[bytes, ...]

    def __post_init__(self) -> None:
        check_params(self.n, self.t)
        _check_committee_id(self.committee_id)
        # Verify the counts: one key per member, one commitment per coefficient.
        if len(self.member_public_keys) != self.n:
            raise CommitteeMismatch(
                "need one public key per member", n=self.n, got=len(self.member_public_keys)
            )
        if len(self.commitments) != self.t:
            raise CommitteeMismatch(
                "need t commitments (one per coefficient)", t=self.t, got=len(self.commitments)
            )
        for key in (self.group_public_key, *self.member_public_keys, *self.commitments):
            if not isinstance(key, bytes) or len(key) != bls.PUBLIC_KEY_LENGTH:
                raise CommitteeMismatch("public keys and commitments must be 48 bytes")

    def member_public_key(self, index: int) -> bytes:
        """Return member ``index``'s public key share (indices are 1..n)."""
        check_member_index(index, self.n)
        return self.member_public_keys[index - 1]


# --- parameters -------------------------------------------------------------------------------


def default_threshold(n: int) -> int:
    """Return t = n - floor((n - 1) / 3): the most a BFT committee can demand and still sign."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_COMMITTEE_SIZE:
        raise InvalidCommitteeParams(f"n must be 1..{MAX_COMMITTEE_SIZE}", n=n)
    return n - (n - 1) // 3


def check_signing_threshold(n: int, t: int) -> None:
    """Raise ``InvalidCommitteeParams`` unless t > 2n/3, which a committee that signs blocks
    needs: two signer sets of t then share at least 2t - n >= n - t + 1 members, so with at most
    n - t lying members an honest one is in both, and its lock keeps the chain from forking
    (docs/committee.md, "Safety and liveness"). The crypto itself works for any t."""
    check_params(n, t)
    if 3 * t <= 2 * n:
        raise InvalidCommitteeParams(
            f"a signing committee needs t > 2n/3 (here {t} of {n}; the default is "
            f"{default_threshold(n)}): with fewer, {n - t} lying members could sign two branches",
            n=n,
            t=t,
        )


def check_params(n: int, t: int) -> None:
    """Raise ``InvalidCommitteeParams`` unless 1 <= t <= n <= MAX_COMMITTEE_SIZE."""
    for name, value in (("n", n), ("t", t)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidCommitteeParams(f"{name} must be an int", **{name: repr(value)})
    if not 1 <= n <= MAX_COMMITTEE_SIZE:
        raise InvalidCommitteeParams(f"n must be 1..{MAX_COMMITTEE_SIZE}", n=n, t=t)
    if not 1 <= t <= n:
        raise InvalidCommitteeParams("t must be 1..n", n=n, t=t)


def check_member_index(index: int, n: int) -> int:
    """Return ``index`` if it is an int in 1..n, else raise ``InvalidMemberIndex``."""
    # Reject bool explicitly: True would pass as member 1.
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidMemberIndex("member index must be an int", index=repr(index))
    # Index 0 would be the group secret itself; above n there is no such member.
    if not 1 <= index <= n:
        raise InvalidMemberIndex(f"member index must be 1..{n}", index=index, n=n)
    return index


def _check_committee_id(committee_id: bytes) -> None:
    if not isinstance(committee_id, bytes) or len(committee_id) != COMMITTEE_ID_LENGTH:
        raise CommitteeMismatch(f"committee id must be {COMMITTEE_ID_LENGTH} bytes")


# --- derivations from public data -------------------------------------------------------------


def compute_committee_id(n: int, t: int, commitments: Sequence[bytes]) -> bytes:
    """Return SHA-256 over the ciphersuite, n, t and the commitments (everything else derives)."""
    check_params(n, t)
    h = hashlib.sha256(_COMMITTEE_ID_TAG)
    h.update(bls.CIPHERSUITE.encode("ascii") + b"\x00")
    h.update(n.to_bytes(4, "big") + t.to_bytes(4, "big"))
    for commitment in commitments:
        h.update(commitment)
    return h.digest()


def _decode_commitments(commitments: Sequence[bytes]) -> list[G1Point]:
    return [bls.decode_g1(c, what=f"commitments[{j}]") for j, c in enumerate(commitments)]


def _evaluate_commitments(points: Sequence[G1Point], index: int) -> G1Point:
    """Return sum_j points[j] * index^j, i.e. f(index) * G1 without knowing f."""
    powers: list[Scalar] = []
    power = 1
    for _ in points:
        powers.append(bls.field_element(power))
        power = power * index % bls.CURVE_ORDER
    return bls.multiexp_g1(points, powers)


def compute_member_public_key(commitments: Sequence[bytes], index: int) -> bytes:
    """Derive member ``index``'s public key share from the Feldman commitments."""
    check_member_index(index, MAX_COMMITTEE_SIZE)
    return bls.encode_g1(_evaluate_commitments(_decode_commitments(commitments), index))


def compute_committee_info(n: int, t: int, commitments: Sequence[bytes]) -> CommitteeInfo:
    """Build the public committee record from n, t and the commitments alone."""
    check_params(n, t)
    if len(commitments) != t:
        raise CommitteeMismatch(
            "need t commitments (one per coefficient)", t=t, got=len(commitments)
        )
    points = _decode_commitments(commitments)
    member_keys = tuple(bls.encode_g1(_evaluate_commitments(points, i)) for i in range(1, n + 1))
    return CommitteeInfo(
        committee_id=compute_committee_id(n, t, commitments),
        n=n,
        t=t,
        group_public_key=bytes(commitments[0]),
        member_public_keys=member_keys,
        commitments=tuple(bytes(c) for c in commitments),
    )


def check_committee_info(committee: CommitteeInfo) -> None:
    """Raise ``CommitteeMismatch`` unless the keys and id follow from the commitments."""
    expected = compute_committee_info(committee.n, committee.t, committee.commitments)
    # Verify the id: it is what shares and signed blocks refer to.
    if committee.committee_id != expected.committee_id:
        raise CommitteeMismatch(
            "committee id does not match the committee data", field="committee_id"
        )
    # Verify the group key is C_0, the commitment to the constant coefficient.
    if committee.group_public_key != expected.group_public_key:
        raise CommitteeMismatch(
            "group public key does not match the commitments", field="group_public_key"
        )
    # Verify each member key, naming the first wrong one.
    for i, (got, want) in enumerate(
        zip(committee.member_public_keys, expected.member_public_keys, strict=True), start=1
    ):
        if got != want:
            raise CommitteeMismatch(
                f"public key of member {i} does not match the commitments",
                field=f"member_public_keys[{i - 1}]",
                index=i,
            )


# --- dealing ----------------------------------------------------------------------------------


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-SHA256 (extract then expand); stdlib has no HKDF of its own."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def _derive_coefficients(seed: bytes, n: int, t: int, attempt: int) -> list[int]:
    """Derive t nonzero coefficients from the seed, like IETF KeyGen (48 bytes, mod r).

    n, t and the attempt number go into ``info`` so that one seed never yields related
    polynomials for different committee shapes. 48 bytes reduced mod r have bias below 2^-128.
    """
    coefficients: list[int] = []
    j = 0
    while len(coefficients) < t:
        info = b"".join(x.to_bytes(4, "big") for x in (n, t, attempt, j))
        value = int.from_bytes(_hkdf_sha256(seed, _DEAL_SALT, info, 48), "big") % bls.CURVE_ORDER
        j += 1
        # Skip zero: a zero coefficient would make an identity commitment, which decoding
        # rightly refuses. It happens with probability 2^-255, so this is never a real loop.
        if value != 0:
            coefficients.append(value)
    return coefficients


def deal(n: int, t: int, seed: bytes) -> tuple[CommitteeInfo, list[KeyShare]]:
    """Deal a t-of-n committee from a secret seed; return the public record and the n shares.

    ``seed`` must be at least 32 bytes of secret randomness (``secrets.token_bytes(32)``); the
    same seed and shape always deal the same committee, which is what makes tests reproducible.
    The dealer must forget the seed and every share but the ones it hands out.
    """
    check_params(n, t)
    if not isinstance(seed, bytes) or len(seed) < MIN_SEED_LENGTH:
        raise ValueError(f"seed must be at least {MIN_SEED_LENGTH} bytes of secret randomness")
    attempt = 0
    while True:
        coefficients = _derive_coefficients(seed, n, t, attempt)
        secrets_by_index = [_evaluate_polynomial(coefficients, i) for i in range(1, n + 1)]
        # Redraw if some member's share is zero (probability about n / r): a zero share has
        # the identity as public key and could never sign.
        if all(secrets_by_index):
            break
        attempt += 1
    commitments = [bls.secret_to_public_key(a) for a in coefficients]
    committee = compute_committee_info(n, t, commitments)
    shares = [
        KeyShare(index=i, secret=s, committee_id=committee.committee_id)
        for i, s in enumerate(secrets_by_index, start=1)
    ]
    return committee, shares


def _evaluate_polynomial(coefficients: Sequence[int], x: int) -> int:
    """Horner's rule for f(x) mod r."""
    acc = 0
    for a in reversed(coefficients):
        acc = (acc * x + a) % bls.CURVE_ORDER
    return acc


def verify_share(share: KeyShare, commitments: Sequence[bytes]) -> bool:
    """Feldman check a member runs on receipt: does share.secret * G1 == sum_j C_j * index^j?"""
    try:
        points = _decode_commitments(commitments)
    except InvalidPoint:
        return False
    if not points:
        return False
    expected = _evaluate_commitments(points, share.index)
    return bool(bls.g1_generator() * bls.secret_scalar(share.secret) == expected)


# --- signing ----------------------------------------------------------------------------------


def partial_sign(share: KeyShare, message: bytes) -> bytes:
    """Return member ``share.index``'s 96-byte partial signature of ``message``."""
    return bls.sign(share.secret, message)


def verify_partial(member_public_key: bytes, message: bytes, partial: bytes) -> bool:
    """Return whether ``partial`` is the signature of ``message`` by that member's share."""
    # A partial is an ordinary BLS signature under the member's public key share.
    return bls.verify(member_public_key, message, partial)


def lagrange_coefficients_at_zero(indices: Sequence[int]) -> list[int]:
    """Return lambda_i = prod_{j != i} x_j / (x_j - x_i) mod r, in the order of ``indices``.

    O(k^2) field multiplications and k inversions for k indices; they must be distinct and in
    1..r-1 (so no denominator is zero).
    """
    r = bls.CURVE_ORDER
    # Verify the x-coordinates: x = 0 (or a multiple of r) is where the secret itself lives.
    for x in indices:
        if isinstance(x, bool) or not isinstance(x, int) or not 0 < x < r:
            raise InvalidMemberIndex("interpolation points must be ints in 1..r-1", index=repr(x))
    if len(set(indices)) != len(indices):
        raise DuplicatePartial("indices must be distinct", indices=list(indices))
    coefficients: list[int] = []
    for i in indices:
        numerator = 1
        denominator = 1
        for j in indices:
            if j != i:
                numerator = numerator * j % r
                denominator = denominator * (j - i) % r
        coefficients.append(numerator * pow(denominator, -1, r) % r)
    return coefficients


def combine(
    partials: Mapping[int, bytes] | Iterable[tuple[int, bytes]],
    t: int,
    n: int | None = None,
) -> bytes:
    """Interpolate at least t partial signatures into the group signature (96 bytes).

    ``partials`` maps member index to partial (or is a sequence of ``(index, partial)`` pairs,
    where a repeated index is rejected). All offered partials are used; with k >= t valid
    partials the result is the same for every subset. Partials are not verified here: a
    wrong one yields a signature that fails ``bls.verify``, so callers either verify each with
    ``verify_partial`` first or verify the result and fall back to per-partial checks.
    Indices must be in 1..n (1..MAX_COMMITTEE_SIZE when n is not given).
    """
    if n is None:
        n_bound = MAX_COMMITTEE_SIZE
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= n_bound:
            raise InvalidCommitteeParams(f"t must be 1..{n_bound}", t=repr(t))
    else:
        check_params(n, t)
        n_bound = n
    pairs = list(partials.items()) if isinstance(partials, Mapping) else list(partials)
    seen: set[int] = set()
    for index, _ in pairs:
        check_member_index(index, n_bound)
        # Verify each member appears once: a repeat would have a zero Lagrange denominator.
        if index in seen:
            raise DuplicatePartial(f"two partials for member {index}", index=index)
        seen.add(index)
    # Verify there are enough: interpolating fewer than t points gives an unrelated value.
    if len(pairs) < t:
        raise NotEnoughPartials(f"need {t} partials, got {len(pairs)}", need=t, got=len(pairs))
    indices = [index for index, _ in pairs]
    points = [bls.decode_g2(p, what=f"partial of member {i}") for i, p in pairs]
    lambdas = [bls.field_element(c) for c in lagrange_coefficients_at_zero(indices)]
    return bls.encode_g2(bls.multiexp_g2(points, lambdas))
