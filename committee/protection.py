"""A member's durable slashing protection: what it signed, and its heads (per rollup, the newest
block it signed or adopted: it signs only children of it).

EIP-3076 semantics for slots, keyed by (committee id, slot): a member never signs a second,
different slot root for a slot; asked again for the same root it answers the same partial. A
slot root covers one block per rollup, and signing it moves every one of those rollups' heads,
in the same transaction, only if each head still is that block's parent. The record is
committed (and fsynced) before the partial leaves the process, so a member killed at any
instant and restarted from this file cannot sign twice.

SQLite from the standard library: ``journal_mode=WAL`` with ``synchronous=FULL`` makes every
commit durable (the WAL is fsynced on commit). One connection, used by one thread at a time (the
member serializes signing).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from committee.checks import KnownBlock

# ``signed`` is protocol version 1's table (a block per rollup and slot); it is only read to
# migrate heads of files written before version 2. ``slot_signed`` is what a member signs now.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS slot_signed (
    committee_id BLOB NOT NULL,
    slot INTEGER NOT NULL,
    slot_root BLOB NOT NULL,
    signing_root BLOB NOT NULL,
    partial BLOB NOT NULL,
    signed_ms INTEGER NOT NULL,
    PRIMARY KEY (committee_id, slot)
);
CREATE TABLE IF NOT EXISTS signed (
    committee_id BLOB NOT NULL,
    rollup INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    signing_root BLOB NOT NULL,
    partial BLOB NOT NULL,
    signed_ms INTEGER NOT NULL,
    PRIMARY KEY (committee_id, rollup, slot)
);
CREATE TABLE IF NOT EXISTS ciphertext_commitments (
    committee_id BLOB NOT NULL,
    slot INTEGER NOT NULL,
    ciphertext_root BLOB NOT NULL,
    entries_digest BLOB NOT NULL,
    committed_ms INTEGER NOT NULL,
    PRIMARY KEY (committee_id, slot)
);
CREATE TABLE IF NOT EXISTS heads (
    committee_id BLOB NOT NULL,
    rollup INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    pending_root TEXT NOT NULL,
    PRIMARY KEY (committee_id, rollup)
);
"""


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """One partial a member released (for a slot root)."""

    slot_root: bytes
    signing_root: bytes
    partial: bytes
    signed_ms: int


@dataclass(frozen=True, slots=True)
class CommitmentRecord:
    """The ciphertext set a member committed to for a slot (before releasing its key share):
    the set's root and the digest of the sealed bids it checked (committee/sealing.py)."""

    ciphertext_root: bytes
    entries_digest: bytes
    committed_ms: int


@dataclass(frozen=True, slots=True)
class HeadMove:
    """Signing a slot moves a rollup's head from ``parent`` (as the checks saw it; None for the
    rollup's first block) to ``head`` (the block being signed)."""

    rollup: int
    head: KnownBlock
    parent: KnownBlock | None


class ProtectionStore:
    """The member's SQLite file of signed slots and known heads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a write is one transaction.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, before we answer anyone.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._migrate_heads()

    def _migrate_heads(self) -> None:
        """Files written before the lock kept only adopted blocks as heads: a member upgraded
        mid-chain must also be locked to the newest block it signed (the pending root of such
        a head is unknown; the checks take it from the parent certificate anyway)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO heads (committee_id, rollup, slot, block_hash, pending_root) "
                    "SELECT s.committee_id, s.rollup, s.slot, s.block_hash, '' FROM signed s "
                    "WHERE s.slot = (SELECT MAX(slot) FROM signed x WHERE "
                    "x.committee_id = s.committee_id AND x.rollup = s.rollup) "
                    "ON CONFLICT (committee_id, rollup) DO UPDATE SET slot = excluded.slot, "
                    "block_hash = excluded.block_hash, pending_root = excluded.pending_root "
                    "WHERE excluded.slot > heads.slot"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get_signed(self, committee_id: bytes, slot: int) -> SignedRecord | None:
        """What this member signed for ``slot``, if anything."""
        with self._lock:
            row = self._db.execute(
                "SELECT slot_root, signing_root, partial, signed_ms FROM slot_signed "
                "WHERE committee_id = ? AND slot = ?",
                (committee_id, slot),
            ).fetchone()
        return _record(row) if row else None

    def record_signed(
        self,
        committee_id: bytes,
        slot: int,
        record: SignedRecord,
        moves: Sequence[HeadMove],
    ) -> SignedRecord | None:
        """Durably record a partial before it is released; return the record that stands.

        If a record for ``slot`` already exists (a concurrent request won), it is returned
        unchanged and the caller must answer with it, or refuse if it is for another root.
        Otherwise every move's ``head`` (the slot's block of that rollup) becomes the member's
        head for its rollup in the same transaction, one fsync per signature: from then on it
        signs only children of them.

        If any rollup's head moved since the checks (a concurrent proposal was signed), nothing
        is written and None is returned: the caller must refuse, or it could sign two children
        of one parent.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT slot_root, signing_root, partial, signed_ms FROM slot_signed "
                    "WHERE committee_id = ? AND slot = ?",
                    (committee_id, slot),
                ).fetchone()
                if row is None and not all(
                    self._head_allows(committee_id, m.rollup, m.parent) for m in moves
                ):
                    self._db.execute("ROLLBACK")
                    return None
                if row is None:
                    self._db.execute(
                        "INSERT INTO slot_signed VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            committee_id,
                            slot,
                            record.slot_root,
                            record.signing_root,
                            record.partial,
                            record.signed_ms,
                        ),
                    )
                    for m in moves:
                        self._upsert_head(committee_id, m.rollup, m.head)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return record if row is None else _record(row)

    def _head_allows(self, committee_id: bytes, rollup: int, parent: KnownBlock | None) -> bool:
        """Whether the current head still lets a child of ``parent`` be signed: it is the parent,
        or (the parent being a newer certified block, adopted now) older than it."""
        row = self._db.execute(
            "SELECT slot, block_hash FROM heads WHERE committee_id = ? AND rollup = ?",
            (committee_id, rollup),
        ).fetchone()
        if row is None:
            return True
        if parent is None:
            return False
        return bool(row[0] < parent.slot or (row[0], row[1]) == (parent.slot, parent.block_hash))

    def get_head(self, committee_id: bytes, rollup: int) -> KnownBlock | None:
        """The newest committee-signed block this member knows for the rollup."""
        with self._lock:
            row = self._db.execute(
                "SELECT slot, block_hash, pending_root FROM heads "
                "WHERE committee_id = ? AND rollup = ?",
                (committee_id, rollup),
            ).fetchone()
        return KnownBlock(row[0], row[1], row[2]) if row else None

    def set_head(self, committee_id: bytes, rollup: int, head: KnownBlock) -> None:
        """Adopt a newer signed block as head (never moves backwards)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._upsert_head(committee_id, rollup, head)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _upsert_head(self, committee_id: bytes, rollup: int, head: KnownBlock) -> None:
        self._db.execute(
            "INSERT INTO heads VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (committee_id, rollup) DO UPDATE SET "
            "slot = excluded.slot, block_hash = excluded.block_hash, "
            "pending_root = excluded.pending_root WHERE excluded.slot > heads.slot",
            (committee_id, rollup, head.slot, head.block_hash, head.pending_root),
        )

    def get_commitment(self, committee_id: bytes, slot: int) -> CommitmentRecord | None:
        """The ciphertext set this member committed to for ``slot``, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT ciphertext_root, entries_digest, committed_ms FROM ciphertext_commitments "
                "WHERE committee_id = ? AND slot = ?",
                (committee_id, slot),
            ).fetchone()
        return CommitmentRecord(bytes(row[0]), bytes(row[1]), row[2]) if row else None

    def record_commitment(
        self, committee_id: bytes, slot: int, record: CommitmentRecord
    ) -> CommitmentRecord:
        """Durably record a commitment before any key share leaves; return the one that
        stands (an earlier one, if a concurrent request won: never two per slot)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO ciphertext_commitments VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (committee_id, slot) DO NOTHING",
                    (committee_id, slot, record.ciphertext_root, record.entries_digest,
                     record.committed_ms),
                )  # fmt: skip
                row = self._db.execute(
                    "SELECT ciphertext_root, entries_digest, committed_ms "
                    "FROM ciphertext_commitments WHERE committee_id = ? AND slot = ?",
                    (committee_id, slot),
                ).fetchone()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return CommitmentRecord(bytes(row[0]), bytes(row[1]), row[2])

    def count_signed(self, committee_id: bytes) -> int:
        """Slots this member signed."""
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM slot_signed WHERE committee_id = ?", (committee_id,)
                ).fetchone()[0]
            )


def _record(row: tuple[bytes, bytes, bytes, int]) -> SignedRecord:
    return SignedRecord(bytes(row[0]), bytes(row[1]), bytes(row[2]), row[3])
