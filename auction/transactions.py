"""Decoding signed Ethereum transactions: legacy (EIP-155), EIP-2930 and EIP-1559.

RLP is read by a strict flat decoder here (the tests hold it to the maintained ``rlp`` package's
``decode(strict=True)``, which also encodes a legacy transaction's chain id) and sender recovery
is libsecp256k1 (``coincurve``); the tests cross-check every field against ``eth-account``.
Decoding is strict: anything a node would refuse (bad RLP, high-s signatures, missing chain id)
is refused here too, with ``InvalidTransaction`` / ``UnprotectedTransaction``.
"""

from __future__ import annotations

import rlp
from coincurve import PublicKey

from auction.constants import MAX_TX_NONCE
from auction.errors import InvalidTransaction, UnprotectedTransaction
from auction.hashing import keccak256, to_hex
from auction.types import Tx

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
_MAX_UINT256 = (1 << 256) - 1

TX_LEGACY = 0
TX_ACCESS_LIST = 1
TX_DYNAMIC_FEE = 2

# Lists nest at most this deep in a transaction: the transaction, its access list, an entry,
# the entry's storage keys.
MAX_RLP_DEPTH = 4


def _uint(field: object, what: str) -> int:
    # RLP integers are big-endian byte strings without leading zeros.
    if not isinstance(field, bytes):
        raise InvalidTransaction(f"{what} is not an RLP string")
    if len(field) > 32 or (len(field) > 0 and field[0] == 0):
        raise InvalidTransaction(f"{what} is not a canonical integer")
    return int.from_bytes(field, "big")


def _nonce(field: object) -> int:
    nonce = _uint(field, "nonce")
    # Verify EIP-2681: a nonce at or above 2**64 - 1 can never be valid
    if nonce > MAX_TX_NONCE:
        raise InvalidTransaction("nonce must be below 2**64 - 1 (EIP-2681)")
    return nonce


def _to(field: object) -> str | None:
    if not isinstance(field, bytes) or len(field) not in (0, 20):
        raise InvalidTransaction("to must be empty or 20 bytes")
    return to_hex(field) if field else None


def _access_keys(field: object) -> tuple[str, ...]:
    if not isinstance(field, list):
        raise InvalidTransaction("access list must be an RLP list")
    keys: list[str] = []
    for entry in field:
        if not isinstance(entry, list) or len(entry) != 2:
            raise InvalidTransaction("access list entry must be [address, [slots]]")
        address, slots = entry
        if not isinstance(address, bytes) or len(address) != 20 or not isinstance(slots, list):
            raise InvalidTransaction("access list entry has a bad address or slot list")
        for slot in slots:
            if not isinstance(slot, bytes) or len(slot) != 32:
                raise InvalidTransaction("access list storage key must be 32 bytes")
            keys.append(f"{address.hex()}:{slot.hex()}")
    return tuple(keys)


def _check_signature_values(y_parity: int, r: int, s: int) -> None:
    # Verify the signature values are in range and low-s (EIP-2)
    if not (0 < r < SECP256K1_N) or not (0 < s <= _HALF_N) or y_parity not in (0, 1):
        raise InvalidTransaction("signature values out of range")


def _recover_sender(msg_hash: bytes, y_parity: int, r: int, s: int) -> str:
    _check_signature_values(y_parity, r, s)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y_parity])
    try:
        pub = PublicKey.from_signature_and_message(sig, msg_hash, hasher=None)
    except Exception as exc:  # coincurve raises plain Exception/ValueError subclasses
        raise InvalidTransaction("signature does not recover a sender") from exc
    return to_hex(keccak256(pub.format(compressed=False)[1:])[12:])


def decode_transaction(raw: bytes) -> Tx:
    """Decode and authenticate one raw signed transaction. Cost: one ECDSA recovery (~40 us)."""
    return _decode(raw)


def _decode(raw: bytes) -> Tx:
    if not raw:
        raise InvalidTransaction("empty transaction")
    first = raw[0]
    if first >= 0xC0:
        return _decode_legacy(raw)
    if first == TX_ACCESS_LIST or first == TX_DYNAMIC_FEE:
        return _decode_typed(raw, first)
    raise InvalidTransaction(f"unsupported transaction type {first}")


def _encoded_len(item: bytes) -> int:
    # Length of an RLP string item once encoded (header + payload).
    n = len(item)
    if n == 1 and item[0] < 0x80:
        return 1
    if n <= 55:
        return 1 + n
    return 1 + (n.bit_length() + 7) // 8 + n


def _list_header(length: int) -> bytes:
    if length <= 55:
        return bytes([0xC0 + length])
    size = (length.bit_length() + 7) // 8
    return bytes([0xF7 + size]) + length.to_bytes(size, "big")


def _unsigned_payload(encoded_list: bytes, fields: list) -> bytes:
    """The list's encoded items minus the trailing (v|yParity, r, s), without re-encoding.

    Re-encoding with ``rlp.encode`` costs ~20 us a transaction; slicing the strict-decoded
    (hence canonical) input gives the same bytes.
    """
    b0 = encoded_list[0]
    start = 1 if b0 <= 0xF7 else 1 + (b0 - 0xF7)
    tail = sum(_encoded_len(f) for f in fields[-3:])
    return encoded_list[start : len(encoded_list) - tail]


def _rlp_header(data: bytes, pos: int, end: int) -> tuple[bool, int, int]:
    """Whether the item at ``pos`` is a list, and where its payload starts and stops; refuse
    an item that overruns ``end`` or is not in its one canonical form (RLP's strict rules)."""
    b = data[pos]
    if b < 0x80:
        return False, pos, pos + 1
    if b <= 0xB7:
        is_list, start, length = False, pos + 1, b - 0x80
    elif b <= 0xBF or b >= 0xF8:
        is_list = b >= 0xF8
        size = b - (0xF7 if is_list else 0xB7)
        start = pos + 1 + size
        # Verify the length of the length is itself canonical: no leading zero, above 55
        if start > end or data[pos + 1] == 0:
            raise InvalidTransaction("transaction is not valid RLP")
        length = int.from_bytes(data[pos + 1 : start], "big")
        if length <= 55:
            raise InvalidTransaction("transaction is not valid RLP")
    else:
        is_list, start, length = True, pos + 1, b - 0xC0
    stop = start + length
    if stop > end:
        raise InvalidTransaction("transaction is not valid RLP")
    # Verify a single byte below 0x80 is encoded as itself, never as a one-byte string
    if length == 1 and not is_list and data[start] < 0x80:
        raise InvalidTransaction("transaction is not valid RLP")
    return is_list, start, stop


def _rlp_items(data: bytes, start: int, stop: int, depth: int) -> list:
    """The items of a list payload ``data[start:stop]``, nested lists decoded the same way."""
    items: list = []
    pos = start
    while pos < stop:
        is_list, item_start, item_stop = _rlp_header(data, pos, stop)
        if not is_list:
            items.append(data[item_start:item_stop])
        elif depth >= MAX_RLP_DEPTH:
            # Verify the nesting is no deeper than a transaction's
            raise InvalidTransaction("transaction RLP nests lists too deep")
        else:
            items.append(_rlp_items(data, item_start, item_stop, depth + 1))
        pos = item_stop
    return items


def _rlp_list(data: bytes) -> list:
    """Strictly decode ``data`` as one RLP list (what ``rlp.decode(data, strict=True)`` returns,
    nested at most ``MAX_RLP_DEPTH`` deep).

    A flat decoder over the buffer: ``rlp.decode`` builds a sedes-less tree through several
    Python calls per item (~20 us a transaction, a tenth of an intake under load), and recursed
    once per level copying the rest of the input at each (a 300 kB transaction of nested lists
    cost 29 s to refuse). This one slices only the leaf strings and stops at the depth bound.
    """
    if not data:
        raise InvalidTransaction("transaction is not valid RLP")
    is_list, start, stop = _rlp_header(data, 0, len(data))
    if not is_list:
        raise InvalidTransaction("transaction is not an RLP list")
    # Verify nothing trails the list
    if stop != len(data):
        raise InvalidTransaction("transaction is not valid RLP")
    return _rlp_items(data, start, stop, 1)


def _decode_legacy(raw: bytes) -> Tx:
    fields = _rlp_list(raw)
    if len(fields) != 9:
        raise InvalidTransaction("legacy transaction must have 9 fields")
    nonce = _nonce(fields[0])
    gas_price = _uint(fields[1], "gasPrice")
    gas = _uint(fields[2], "gas")
    to = _to(fields[3])
    _uint(fields[4], "value")
    if not isinstance(fields[5], bytes):
        raise InvalidTransaction("data must be an RLP string")
    v = _uint(fields[6], "v")
    r = _uint(fields[7], "r")
    s = _uint(fields[8], "s")
    if v in (27, 28):
        # Verify replay protection: a pre-EIP-155 tx is valid on every chain
        raise UnprotectedTransaction("legacy transaction without an EIP-155 chain id")
    if v < 37:
        raise InvalidTransaction("legacy transaction has an invalid v")
    chain_id = (v - 35) // 2
    y_parity = (v - 35) % 2
    body = _unsigned_payload(raw, fields) + rlp.encode(chain_id) + b"\x80\x80"
    unsigned = _list_header(len(body)) + body
    sender = _recover_sender(keccak256(unsigned), y_parity, r, s)
    return Tx(
        raw=raw,
        hash=to_hex(keccak256(raw)),
        tx_type=TX_LEGACY,
        chain_id=chain_id,
        sender=sender,
        nonce=nonce,
        gas_limit=gas,
        priority_fee_wei=gas_price,
        max_fee_wei=gas_price,
        to=to,
    )


def _decode_typed(raw: bytes, tx_type: int) -> Tx:
    fields = _rlp_list(raw[1:])
    expected = 11 if tx_type == TX_ACCESS_LIST else 12
    if len(fields) != expected:
        raise InvalidTransaction(f"type-{tx_type} transaction must have {expected} fields")
    chain_id = _uint(fields[0], "chainId")
    nonce = _nonce(fields[1])
    if tx_type == TX_ACCESS_LIST:
        priority = max_fee = _uint(fields[2], "gasPrice")
        rest = fields[3:]
    else:
        priority = _uint(fields[2], "maxPriorityFeePerGas")
        max_fee = _uint(fields[3], "maxFeePerGas")
        if priority > max_fee:
            raise InvalidTransaction("maxPriorityFeePerGas exceeds maxFeePerGas")
        rest = fields[4:]
    gas = _uint(rest[0], "gas")
    to = _to(rest[1])
    _uint(rest[2], "value")
    if not isinstance(rest[3], bytes):
        raise InvalidTransaction("data must be an RLP string")
    access_keys = _access_keys(rest[4])
    y_parity = _uint(rest[5], "yParity")
    r = _uint(rest[6], "r")
    s = _uint(rest[7], "s")
    body = _unsigned_payload(raw[1:], fields)
    unsigned = bytes([tx_type]) + _list_header(len(body)) + body
    sender = _recover_sender(keccak256(unsigned), y_parity, r, s)
    return Tx(
        raw=raw,
        hash=to_hex(keccak256(raw)),
        tx_type=tx_type,
        chain_id=chain_id,
        sender=sender,
        nonce=nonce,
        gas_limit=gas,
        priority_fee_wei=priority,
        max_fee_wei=max_fee,
        to=to,
        access_keys=access_keys,
    )


def compute_bundle_hash(tx_hashes: list[str] | tuple[str, ...]) -> str:
    """keccak256 of the concatenated tx hashes: what Flashbots clients return as bundleHash."""
    return to_hex(keccak256(b"".join(bytes.fromhex(h[2:]) for h in tx_hashes)))


def compute_priority_fee_wei(tx: Tx) -> int:
    """The priority fee per gas a transaction pays at most: min(priority fee, max fee).

    Without the rollup's base fee this is an upper bound (the node pays min(priority fee,
    max fee - base fee)); bids and the public pool's order use the same bound."""
    return min(tx.priority_fee_wei, tx.max_fee_wei)


def compute_tip_wei(tx: Tx) -> int:
    """The priority tip a transaction pays at most: gas limit x effective priority fee."""
    return tx.gas_limit * compute_priority_fee_wei(tx)
