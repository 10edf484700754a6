"""The six protocol messages, their canonical wire form and their schema check.

A message travels as the canonical CBOR encoding of a map (its wire form) that holds a
``kind``, its fields and ``sig``. The signature covers ``"PoT-msg" || canonical(map
without sig)``, except the stakeholder signature, which the protocol defines as a
signature over ``"PoT-ss" || header hash``. A message's hash is SHA-256 of its whole
canonical encoding, signature included. Messages nest as wire maps (a wrapped block
holds its header's map), so an outer hash covers the inner messages byte for byte.

``parse_message`` turns untrusted bytes into a typed message or raises ``DecodeError``
with the reason; it checks structure only. Signatures, lottery and chain rules are the
receiver's business (see ``validation``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from simulation.protocol.encoding import (
    DecodeError,
    KeyPair,
    Memo,
    decode,
    encode,
    sha256,
    verify,
)

TX, TD, BH, SS, WB, RQ = "TX", "TD", "BH", "SS", "WB", "RQ"
KINDS = (TX, TD, BH, SS, WB, RQ)
# A block request's locator names at most this many of the requester's blocks.
MAX_LOCATOR = 64

MAX_TEXT = 256
MAX_LIST = 10_000
UINT_LIMIT = 2**256  # every integer field is below this


def signing_bytes(wire: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in wire.items() if k != "sig"}
    return b"PoT-msg" + encode(unsigned)


def commitment_bytes(sid: str, secret: bytes) -> bytes:
    return b"PoT-commit" + sid.encode() + secret


def stakeholder_bytes(header_hash: bytes) -> bytes:
    return b"PoT-ss" + header_hash


class Message:
    """Common behaviour: the wire map is kept so bytes and hash are computed once.

    Messages are treated as immutable: nothing changes ``wire`` after construction.
    """

    def __init__(self, wire: dict[str, Any]):
        self.wire = wire

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hash.hex()[:12]})"

    @property
    def kind(self) -> str:
        return str(self.wire["kind"])

    @property
    def author(self) -> bytes:
        return bytes(self.wire["author"])

    @property
    def signature(self) -> bytes:
        return bytes(self.wire["sig"])

    @cached_property
    def encoded(self) -> bytes:
        """The canonical bytes (for a parsed message: the bytes it arrived as)."""
        return encode(self.wire)

    def to_bytes(self) -> bytes:
        return self.encoded

    @cached_property
    def hash(self) -> bytes:
        return sha256(self.encoded)

    def signature_valid(self) -> bool:
        return self._valid

    @cached_property
    def _valid(self) -> bool:  # once per message object: it never changes
        return verify(self.author, self.signature, signing_bytes(self.wire))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.hash)


def _sign(keys: KeyPair, wire: dict[str, Any]) -> dict[str, Any]:
    wire = dict(wire)
    wire["sig"] = keys.sign(signing_bytes(wire))
    return wire


class Transaction(Message):
    @property
    def author(self) -> bytes:
        return bytes(self.wire["sender"])

    sender = author

    @property
    def receiver(self) -> bytes:
        return bytes(self.wire["receiver"])

    @property
    def amount(self) -> int:
        return int(self.wire["amount"])

    @property
    def nonce(self) -> int:
        return int(self.wire["nonce"])

    @property
    def chain(self) -> bytes | None:
        """The genesis hash of the chain it is for (rule chain-id), or None."""
        value = self.wire.get("chain")
        return None if value is None else bytes(value)

    @classmethod
    def create(cls, keys: KeyPair, receiver: bytes, amount: int, nonce: int,
               chain: bytes | None = None) -> Transaction:
        wire = {
            "kind": TX,
            "sender": keys.public,
            "receiver": receiver,
            "amount": amount,
            "nonce": nonce,
        }
        if chain is not None:
            wire["chain"] = chain
        return cls(_sign(keys, wire))


class RoundMessage(Message):
    """Fields a declaration and a header share: the round (model, stage, parent block),
    the lottery tick and the coinstake."""

    @property
    def model_id(self) -> str:
        return str(self.wire["id_m"])

    @property
    def stage_id(self) -> str:
        return str(self.wire["id_s"])

    @property
    def parent(self) -> bytes:
        return bytes(self.wire["parent"])

    @property
    def tick(self) -> int:
        return int(self.wire["tick"])

    @property
    def coinstake(self) -> int:
        return int(self.wire["coinstake"])


class TrainingDeclaration(RoundMessage):

    @property
    def model_hash(self) -> bytes:
        return bytes(self.wire["model_hash"])

    @property
    def commitment(self) -> bytes:
        return bytes(self.wire["commitment"])

    @classmethod
    def create(
        cls,
        keys: KeyPair,
        *,
        model_id: str,
        stage_id: str,
        parent: bytes,
        tick: int,
        model_hash: bytes,
        secret: bytes,
        coinstake: int,
        commitment: bytes | None = None,
    ) -> TrainingDeclaration:
        if commitment is None:
            commitment = keys.sign(commitment_bytes(stage_id, secret))
        wire = {
            "kind": TD,
            "author": keys.public,
            "id_m": model_id,
            "id_s": stage_id,
            "parent": parent,
            "tick": tick,
            "model_hash": model_hash,
            "commitment": commitment,
            "coinstake": coinstake,
        }
        return cls(_sign(keys, wire))

    def commitment_valid(self, secret: bytes) -> bool:
        return verify(self.author, self.commitment, commitment_bytes(self.stage_id, secret))


class BlockHeader(RoundMessage):
    @property
    def height(self) -> int:
        return int(self.wire["height"])

    @property
    def secret(self) -> bytes:
        return bytes(self.wire["ts"])

    @cached_property
    def declarations(self) -> tuple[TrainingDeclaration, ...]:
        return tuple(TrainingDeclaration(w) for w in self.wire["tds"])

    @property
    def personal_secrets(self) -> tuple[bytes, ...] | None:
        """Rule personal-secrets: each declarer's personal secret, in declaration order
        (None without the rule)."""
        value = self.wire.get("pts")
        return None if value is None else tuple(bytes(v) for v in value)

    @classmethod
    def create(
        cls,
        keys: KeyPair,
        *,
        model_id: str,
        stage_id: str,
        height: int,
        parent: bytes,
        tick: int,
        secret: bytes,
        declarations: list[TrainingDeclaration],
        coinstake: int,
        personal_secrets: dict[bytes, bytes] | None = None,
    ) -> BlockHeader:
        """``personal_secrets``: declarer -> its personal secret (rule personal-secrets),
        revealed in the order of the (sorted) declarations."""
        ordered = sorted(declarations, key=lambda td: td.author)
        wire = {
            "kind": BH,
            "author": keys.public,
            "id_m": model_id,
            "id_s": stage_id,
            "height": height,
            "parent": parent,
            "tick": tick,
            "ts": secret,
            "tds": [td.wire for td in ordered],
            "coinstake": coinstake,
        }
        if personal_secrets is not None:
            wire["pts"] = [personal_secrets[td.author] for td in ordered]
        return cls(_sign(keys, wire))


class StakeholderSignature(Message):
    @property
    def header_hash(self) -> bytes:
        return bytes(self.wire["bh"])

    @classmethod
    def create(cls, keys: KeyPair, header_hash: bytes) -> StakeholderSignature:
        wire = {
            "kind": SS,
            "author": keys.public,
            "bh": header_hash,
            "sig": keys.sign(stakeholder_bytes(header_hash)),
        }
        return cls(wire)

    @cached_property
    def _valid(self) -> bool:
        return verify(self.author, self.signature, stakeholder_bytes(self.header_hash))


class WrappedBlock(Message):
    @cached_property
    def header(self) -> BlockHeader:
        return BlockHeader(self.wire["bh"])

    @cached_property
    def stakeholder_signatures(self) -> tuple[StakeholderSignature, ...]:
        return tuple(StakeholderSignature(w) for w in self.wire["ss"])

    @cached_property
    def transactions(self) -> tuple[Transaction, ...]:
        return tuple(Transaction(w) for w in self.wire["txs"])

    @property
    def payouts(self) -> tuple[tuple[bytes, int], ...]:
        return tuple((bytes(a), int(n)) for a, n in self.wire["payouts"])

    @property
    def tick(self) -> int:
        return int(self.wire["tick"])

    @property
    def parent(self) -> bytes:
        return self.header.parent

    @property
    def height(self) -> int:
        return self.header.height

    @classmethod
    def create(
        cls,
        keys: KeyPair,
        *,
        header: BlockHeader,
        signatures: list[StakeholderSignature],
        transactions: list[Transaction],
        payouts: list[tuple[bytes, int]],
        tick: int,
    ) -> WrappedBlock:
        wire = {
            "kind": WB,
            "author": keys.public,
            "bh": header.wire,
            "ss": [s.wire for s in signatures],
            "txs": [t.wire for t in transactions],
            "payouts": [[account, amount] for account, amount in payouts],
            "tick": tick,
        }
        return cls(_sign(keys, wire))


class BlockRequest(Message):
    """Catch-up: "send me the blocks from where our chains part up to ``want``". Sent to
    one peer only (the author of a message that built on ``want``), which answers with
    those wrapped blocks, oldest first, sent to the requester alone."""

    @property
    def want(self) -> bytes:
        return bytes(self.wire["want"])

    @property
    def locator(self) -> tuple[bytes, ...]:
        """Hashes of the requester's canonical chain: its tip and a few back, then
        exponentially sparser, genesis last (as Bitcoin's block locator)."""
        return tuple(bytes(h) for h in self.wire["locator"])

    @property
    def tick(self) -> int:
        return int(self.wire["tick"])

    @classmethod
    def create(cls, keys: KeyPair, *, want: bytes, locator: list[bytes], tick: int
               ) -> BlockRequest:
        wire = {"kind": RQ, "author": keys.public, "want": want, "locator": list(locator),
                "tick": tick}
        return cls(_sign(keys, wire))


AnyMessage = (
    Transaction | TrainingDeclaration | BlockHeader | StakeholderSignature | WrappedBlock
    | BlockRequest
)

# --- Schema check of untrusted input ----------------------------------------------------


def _expect_map(value: Any, kind: str, keys: frozenset[str],
                optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{kind}: not a map")
    if value.get("kind") != kind:
        raise DecodeError(f"{kind}: kind field is {value.get('kind')!r}")
    present = frozenset(value)
    if present - optional != keys:
        missing = sorted(keys - present)
        extra = sorted(present - keys - optional)
        raise DecodeError(f"{kind}: missing fields {missing}, unknown fields {extra}")
    return value


def _bytes_field(m: dict[str, Any], name: str, size: int, kind: str) -> None:
    value = m[name]
    if not isinstance(value, bytes) or len(value) != size:
        raise DecodeError(f"{kind}: {name} must be {size} bytes")


def _uint_field(m: dict[str, Any], name: str, kind: str) -> None:
    value = m[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < UINT_LIMIT:
        raise DecodeError(f"{kind}: {name} must be an unsigned integer below 2**256")


def _text_field(m: dict[str, Any], name: str, kind: str) -> None:
    value = m[name]
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise DecodeError(f"{kind}: {name} must be text of at most {MAX_TEXT} characters")


def _list_field(m: dict[str, Any], name: str, kind: str) -> list[Any]:
    value = m[name]
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise DecodeError(f"{kind}: {name} must be a list of at most {MAX_LIST} items")
    return value


_TX_KEYS = frozenset({"kind", "sender", "receiver", "amount", "nonce", "sig"})
_TD_KEYS = frozenset(
    {"kind", "author", "id_m", "id_s", "parent", "tick", "model_hash", "commitment",
     "coinstake", "sig"}
)
_BH_KEYS = frozenset(
    {"kind", "author", "id_m", "id_s", "height", "parent", "tick", "ts", "tds", "coinstake",
     "sig"}
)
_SS_KEYS = frozenset({"kind", "author", "bh", "sig"})
_WB_KEYS = frozenset({"kind", "author", "bh", "ss", "txs", "payouts", "tick", "sig"})
_RQ_KEYS = frozenset({"kind", "author", "want", "locator", "tick", "sig"})


def _check_tx(value: Any) -> Transaction:
    m = _expect_map(value, TX, _TX_KEYS, frozenset({"chain"}))
    _bytes_field(m, "sender", 32, TX)
    _bytes_field(m, "receiver", 32, TX)
    if "chain" in m:
        _bytes_field(m, "chain", 32, TX)
    _uint_field(m, "amount", TX)
    _uint_field(m, "nonce", TX)
    _bytes_field(m, "sig", 64, TX)
    return Transaction(m)


def _check_td(value: Any) -> TrainingDeclaration:
    m = _expect_map(value, TD, _TD_KEYS)
    _bytes_field(m, "author", 32, TD)
    _text_field(m, "id_m", TD)
    _text_field(m, "id_s", TD)
    _bytes_field(m, "parent", 32, TD)
    _uint_field(m, "tick", TD)
    _bytes_field(m, "model_hash", 32, TD)
    _bytes_field(m, "commitment", 64, TD)
    _uint_field(m, "coinstake", TD)
    _bytes_field(m, "sig", 64, TD)
    return TrainingDeclaration(m)


def _check_bh(value: Any) -> BlockHeader:
    m = _expect_map(value, BH, _BH_KEYS, frozenset({"pts"}))
    _bytes_field(m, "author", 32, BH)
    _text_field(m, "id_m", BH)
    _text_field(m, "id_s", BH)
    _uint_field(m, "height", BH)
    _bytes_field(m, "parent", 32, BH)
    _uint_field(m, "tick", BH)
    _bytes_field(m, "ts", 32, BH)
    tds = _list_field(m, "tds", BH)
    for td in tds:
        _check_td(td)
    if "pts" in m:
        secrets = _list_field(m, "pts", BH)
        if len(secrets) != len(tds):
            raise DecodeError("BH: pts must hold one secret per declaration")
        for secret in secrets:
            _bytes_field({"pts": secret}, "pts", 32, BH)
    _uint_field(m, "coinstake", BH)
    _bytes_field(m, "sig", 64, BH)
    return BlockHeader(m)


def _check_ss(value: Any) -> StakeholderSignature:
    m = _expect_map(value, SS, _SS_KEYS)
    _bytes_field(m, "author", 32, SS)
    _bytes_field(m, "bh", 32, SS)
    _bytes_field(m, "sig", 64, SS)
    return StakeholderSignature(m)


def _check_wb(value: Any) -> WrappedBlock:
    m = _expect_map(value, WB, _WB_KEYS)
    _bytes_field(m, "author", 32, WB)
    _check_bh(m["bh"])
    for ss in _list_field(m, "ss", WB):
        _check_ss(ss)
    for tx in _list_field(m, "txs", WB):
        _check_tx(tx)
    for payout in _list_field(m, "payouts", WB):
        if not (isinstance(payout, list) and len(payout) == 2):
            raise DecodeError("WB: a payout must be [account, amount]")
        _bytes_field({"account": payout[0]}, "account", 32, WB)
        _uint_field({"amount": payout[1]}, "amount", WB)
    _uint_field(m, "tick", WB)
    _bytes_field(m, "sig", 64, WB)
    return WrappedBlock(m)


def _check_rq(value: Any) -> BlockRequest:
    m = _expect_map(value, RQ, _RQ_KEYS)
    _bytes_field(m, "author", 32, RQ)
    _bytes_field(m, "want", 32, RQ)
    locator = m["locator"]
    if not isinstance(locator, list) or not 1 <= len(locator) <= MAX_LOCATOR:
        raise DecodeError(f"RQ: locator must be a list of 1 to {MAX_LOCATOR} hashes")
    for h in locator:
        _bytes_field({"locator": h}, "locator", 32, RQ)
    _uint_field(m, "tick", RQ)
    _bytes_field(m, "sig", 64, RQ)
    return BlockRequest(m)


_CHECKERS: dict[str, Callable[[Any], AnyMessage]] = {
    TX: _check_tx, TD: _check_td, BH: _check_bh, SS: _check_ss, WB: _check_wb, RQ: _check_rq,
}


def message_from_wire(value: Any) -> AnyMessage:
    if not isinstance(value, dict):
        raise DecodeError("message is not a map")
    kind = value.get("kind")
    checker = _CHECKERS.get(kind) if isinstance(kind, str) else None
    if checker is None:
        raise DecodeError(f"unknown message kind {kind!r}"[:80])
    return checker(value)


# Frames up to this size are parsed once per process (every recipient in a shared process
# gets the same immutable message object); larger ones are parsed on each arrival, so a
# flood of big frames cannot fill the memory.
MEMO_FRAME_BYTES = 64 * 1024
_PARSED = Memo(1 << 13)


def parse_message(data: bytes) -> AnyMessage:
    """Untrusted bytes -> typed message, or DecodeError with the reason."""
    data = bytes(data)
    small = len(data) <= MEMO_FRAME_BYTES
    message = _PARSED.get(data) if small else None
    if message is None:
        message = message_from_wire(decode(data))
        # The wire map came from these exact bytes (decode checked canonical form).
        message.__dict__["encoded"] = data
        if small:
            _PARSED.put(data, message)
    return message
