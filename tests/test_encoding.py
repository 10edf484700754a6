"""Canonical CBOR, strict decoding of untrusted bytes, keys and signatures."""

from __future__ import annotations

import functools

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulation.protocol import encoding
from simulation.protocol.encoding import (
    DecodeError,
    KeyPair,
    decode,
    derive_keypair,
    encode,
    verify,
)
from simulation.protocol.messages import parse_message
from tests.helpers import World, make_employee

# --- Round trip -------------------------------------------------------------------------

VALUES = [
    0, 23, 24, 255, 256, 2**32, 2**64 - 1, 2**64, 2**252, 2**256 - 1, -1, -(2**70),
    b"", b"\x00" * 32, "", "PoT", "ünïcödé", [], [1, [2, [3]]], {}, True, False, None,
    {"kind": "TX", "amount": 5, "nonce": 0, "a": [b"x", "y", {"z": 1}]},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip(value):
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


def test_encoding_is_independent_of_map_insertion_order():
    assert encode({"b": 1, "a": 2, "cc": 3}) == encode({"cc": 3, "a": 2, "b": 1})


def test_bytearray_input_is_accepted():
    assert decode(bytearray(encode([1, "a"]))) == [1, "a"]


# --- Non-canonical forms -----------------------------------------------------------------

NON_CANONICAL = {
    "integer in a longer form (uint8 for 5)": bytes([0x18, 0x05]),
    "integer in a longer form (uint16 for 200)": bytes([0x19, 0x00, 0xC8]),
    "text length in a longer form": bytes([0x78, 0x01]) + b"a",
    "map keys out of canonical order": bytes.fromhex("a2616202616101"),
    "duplicate map keys": bytes.fromhex("a2616101616102"),
    "indefinite-length array": bytes.fromhex("9f0102ff"),
    "indefinite-length map": bytes.fromhex("bf616101ff"),
    "indefinite-length text": bytes.fromhex("7f6161ff"),
    "indefinite-length bytes": bytes.fromhex("5f4101ff"),
    "bignum tag for a small integer": bytes.fromhex("c24105"),
    "bignum with a leading zero byte": bytes.fromhex("c25821" + "00" + "10" + "00" * 31),
    "self-describe tag around a value": bytes.fromhex("d9d9f701"),
    "trailing bytes after the item": bytes.fromhex("0101"),
}


@pytest.mark.parametrize("data", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_non_canonical_forms_are_rejected(data):
    with pytest.raises(DecodeError, match="not in canonical CBOR form"):
        decode(data)


def test_a_canonical_bignum_is_accepted():
    assert encode(2**252) == bytes.fromhex("c25820" + "10" + "00" * 31)
    assert decode(bytes.fromhex("c25820" + "10" + "00" * 31)) == 2**252


# --- Types and tags the protocol does not use ---------------------------------------------

DISALLOWED = {
    "half float": (bytes.fromhex("f93e00"), "float"),
    "double float": (cbor2.dumps(1.5), "float"),
    "float equal to an integer": (bytes.fromhex("f93c00"), "float"),
    "float inside a map": (encode({"a": 0})[:-1] + bytes.fromhex("f93c00"), "float"),
    "epoch datetime tag 1": (bytes.fromhex("c11a514b67b0"), "datetime"),
    "text datetime tag 0": (cbor2.dumps(cbor2.CBORTag(0, "2013-03-21T20:04:00Z")),
                            "datetime"),
    "set tag 258": (bytes.fromhex("d9010281" + "01"), "set"),
    "undefined": (bytes.fromhex("f7"), "not allowed"),
    "simple value": (bytes.fromhex("e0"), "not allowed"),
}


@pytest.mark.parametrize(("data", "word"), DISALLOWED.values(), ids=DISALLOWED.keys())
def test_disallowed_types_are_rejected(data, word):
    with pytest.raises(DecodeError, match="is not allowed") as info:
        decode(data)
    assert word in str(info.value)


def test_unknown_tag_is_rejected():
    with pytest.raises(DecodeError):
        decode(cbor2.dumps(cbor2.CBORTag(1234, 1)))


def test_unknown_tag_reason_names_the_tag():
    with pytest.raises(DecodeError, match="CBOR tag 1234 is not allowed"):
        decode(cbor2.dumps(cbor2.CBORTag(1234, 1)))


@pytest.mark.parametrize("data", [
    bytes.fromhex("a10102"),  # {1: 2}
    bytes.fromhex("a1416101"),  # {b"a": 1}
    bytes.fromhex("a1f501"),  # {true: 1}
    bytes.fromhex("81a10102"),  # [{1: 2}]
    bytes.fromhex("a16161a10102"),  # {"a": {1: 2}}
])
def test_non_text_map_keys_are_rejected(data):
    with pytest.raises(DecodeError, match="map key is not text"):
        decode(data)


def test_nesting_limit():
    deepest_allowed = b"\x81" * encoding.MAX_DEPTH + b"\x01"
    assert decode(deepest_allowed) is not None
    with pytest.raises(DecodeError, match="nested too deeply"):
        decode(b"\x81" + deepest_allowed)
    with pytest.raises(DecodeError, match="nested too deeply"):
        decode(b"\xa1\x61a" * (encoding.MAX_DEPTH + 1) + b"\x01")


def byte_string_frame(total_size: int) -> bytes:
    """A canonical CBOR byte string whose encoding is exactly ``total_size`` bytes."""
    body = b"\x00" * (total_size - 5)
    return bytes([0x5A]) + len(body).to_bytes(4, "big") + body


def test_oversized_frames_are_refused_before_decoding():
    limit = encoding.MAX_FRAME_BYTES
    assert len(decode(byte_string_frame(limit))) == limit - 5
    with pytest.raises(DecodeError, match=f"exceeds {limit}"):
        decode(byte_string_frame(limit + 1))
    # Refused for its size even though it is not CBOR at all.
    with pytest.raises(DecodeError, match="exceeds"):
        decode(b"\xff" * (limit + 1))


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty frame"),
    ("text, not bytes", "frame is not bytes"),
    (None, "frame is not bytes"),
    (b"\xff", "malformed CBOR"),
    (b"\x1c", "malformed CBOR"),  # reserved additional information
    (bytes.fromhex("8201"), "malformed CBOR"),  # truncated array
    (bytes.fromhex("5bffffffffffffffff"), "malformed CBOR"),  # absurd length
    (bytes.fromhex("62c328"), "malformed CBOR"),  # invalid UTF-8
    (b"\x00\x01\x02garbage", "not in canonical CBOR form"),
])
def test_empty_and_garbage_input(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(data)


# --- Keys and signatures --------------------------------------------------------------------


def test_key_derivation_is_deterministic():
    assert derive_keypair(1, "employee", 0).public == derive_keypair(1, "employee", 0).public
    a, b = derive_keypair(7, "user", 3), derive_keypair(7, "user", 3)
    assert a.sign(b"m") == b.sign(b"m")  # Ed25519 signing is deterministic too


def test_keys_are_distinct_per_seed_role_and_index():
    publics = [derive_keypair(seed, role, index).public
               for seed in (1, 2) for role in ("employee", "user") for index in range(5)]
    assert len(set(publics)) == len(publics)
    assert all(len(pk) == 32 for pk in publics)


def test_verify_accepts_the_right_signature_only():
    alice, bob = derive_keypair(1, "employee", 0), derive_keypair(1, "employee", 1)
    sig = alice.sign(b"data")
    assert verify(alice.public, sig, b"data")
    assert not verify(bob.public, sig, b"data")  # wrong key
    assert not verify(alice.public, sig, b"datA")  # wrong data
    assert not verify(alice.public, bob.sign(b"data"), b"data")  # someone else's signature
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify(alice.public, flipped, b"data")


@pytest.mark.parametrize(("key_len", "sig_len"), [(31, 64), (33, 64), (0, 64), (32, 63),
                                                  (32, 65), (32, 0)])
def test_verify_rejects_malformed_lengths(key_len, sig_len):
    alice = derive_keypair(1, "employee", 0)
    sig = alice.sign(b"data")
    key = (alice.public + b"\x00")[:key_len] if key_len <= 33 else alice.public
    signature = (sig + b"\x00")[:sig_len]
    assert not verify(key, signature, b"data")


def test_verify_rejects_a_key_that_is_not_a_curve_point():
    alice = derive_keypair(1, "employee", 0)
    assert not verify(b"\xff" * 32, alice.sign(b"data"), b"data")


def test_verify_checks_each_signature_once_and_remembers_each_answer(monkeypatch):
    checked = []
    real = encoding._check_signature

    def counting(public_key, signature, data):
        checked.append((public_key, signature, data))
        return real(public_key, signature, data)

    monkeypatch.setattr(encoding, "_check_signature", counting)
    monkeypatch.setattr(encoding, "_VERIFIED", encoding.Memo(2))
    alice = derive_keypair(1, "employee", 0)
    good = alice.sign(b"memo")
    bad = bytes([good[0] ^ 1]) + good[1:]
    for _ in range(3):
        assert verify(alice.public, good, b"memo")
        assert not verify(alice.public, bad, b"memo")
    assert len(checked) == 2  # one check per (key, signature, data)
    assert not verify(alice.public, good, b"memO")  # other data: checked, not remembered
    assert len(checked) == 3
    # The memo holds two answers: the oldest (good, b"memo") was dropped, and is checked
    # again with the same result.
    assert verify(alice.public, good, b"memo")
    assert len(checked) == 4


def test_memo_keeps_the_most_recently_used_results():
    memo = encoding.Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # a is now the most recent
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (1, None, 3)
    assert memo.get("missing") is None


def test_a_frame_is_parsed_once_and_a_big_or_bad_one_every_time(monkeypatch):
    from simulation.protocol import messages

    alice = derive_keypair(1, "user", 0)
    tx = messages.Transaction.create(alice, receiver=b"\x02" * 32, amount=1, nonce=0)
    frame = tx.to_bytes()
    monkeypatch.setattr(messages, "_PARSED", encoding.Memo(8))
    monkeypatch.setattr(messages, "MEMO_FRAME_BYTES", len(frame))
    first = parse_message(frame)
    assert parse_message(bytearray(frame)) is first  # the same immutable object
    assert first.signature_valid() and first.to_bytes() == frame
    monkeypatch.setattr(messages, "MEMO_FRAME_BYTES", len(frame) - 1)
    monkeypatch.setattr(messages, "_PARSED", encoding.Memo(8))
    assert parse_message(frame) is not parse_message(frame)
    assert parse_message(frame) == first
    broken = frame[:-1]
    for _ in range(2):
        with pytest.raises(DecodeError):
            parse_message(broken)


def test_keypair_from_seed():
    assert KeyPair(b"\x01" * 32).public == KeyPair(b"\x01" * 32).public
    assert KeyPair(b"\x01" * 32).public != KeyPair(b"\x02" * 32).public


# --- Fuzzing: random bytes and mutated valid frames ------------------------------------------


@functools.lru_cache(maxsize=1)
def sample_world():
    """One valid message of each kind, all acceptable to employee ``bystander`` (the
    one employee that is not a stakeholder of the header) at tick ``now``."""
    world = World()
    tx = world.tx(0, 1, 5, 0)
    header = world.bh(0)
    signatures = world.ss(header)
    block = world.wrap(header, [tx])
    stakeholders = world.stakeholders(header)
    bystander = next(i for i, k in enumerate(world.employees) if k.public not in stakeholders)
    declaration = next(td for td in header.declarations
                       if td.author != world.employees[bystander].public)
    messages = {"TX": tx, "TD": declaration, "BH": header, "SS": signatures[0], "WB": block}
    return world, messages, bystander, block.tick


def snapshot(employee):
    """What an employee has accepted, in a comparable form."""
    return (
        dict(employee.accepted),
        sorted(employee.mempool),
        sorted(employee.tree.records),
        employee.tree.tip_hash,
        sorted(employee.tree.orphans),
        sorted((h, held.stakeholders is not None, sorted(held.signatures))
               for h, held in employee.headers.items()),
        sorted((parent, sorted((a, td.hash) for a, td in r.declarations.items()))
               for parent, r in employee.rounds.items()),
        dict(employee.sent),
    )


def deliver(kind, frame):
    """A fresh bystander at tick now+1 after (for an SS) learning the header; returns
    the employee and what it broadcast."""
    world, messages, bystander, now = sample_world()
    employee = make_employee(world.scenario, bystander, world.genesis)
    employee.step(now, [messages["BH"].to_bytes()] if kind == "SS" else [])
    ready = employee.step(now + 1, [frame] if frame is not None else [])
    return employee, ready.outgoing


@pytest.mark.parametrize("kind", ["TX", "TD", "BH", "SS", "WB"])
def test_the_unmutated_frames_are_accepted(kind):
    """The control for the mutation test: the original frame is accepted."""
    _, messages, _, _ = sample_world()
    employee, _ = deliver(kind, messages[kind].to_bytes())
    twin, _ = deliver(kind, None)
    assert employee.accepted[kind] == twin.accepted[kind] + 1
    assert not employee.rejected


def mutate(data: bytes, operations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, position, value in operations:
        if op == "flip":
            if not out:
                continue
            index = position % len(out)
            out[index] ^= 1 << (value % 8)
        elif op == "insert":
            out.insert(position % (len(out) + 1), value)
        elif op == "delete" and out:
            del out[position % len(out)]
    return bytes(out)


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete"]),
              st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1, max_size=4,
)
KIND = st.sampled_from(["TX", "TD", "BH", "SS", "WB"])


def parse_or_decode_error(data: bytes):
    try:
        return parse_message(data)
    except DecodeError as exc:
        assert str(exc)  # a reason is given
        return None


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_decode_error(data):
    parse_or_decode_error(data)


@settings(max_examples=300, deadline=None, database=None)
@given(KIND, OPERATIONS)
def test_mutated_frames_only_raise_decode_error(kind, operations):
    _, messages, _, _ = sample_world()
    original = messages[kind].to_bytes()
    mutated = mutate(original, operations)
    parsed = parse_or_decode_error(mutated)
    if parsed is not None and mutated != original:
        # One message has one encoding: different bytes are a different message.
        assert parsed.to_bytes() == mutated
        assert parsed.hash != messages[kind].hash


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(KIND, OPERATIONS)
def test_a_mutated_frame_is_never_accepted(kind, operations):
    _, messages, _, _ = sample_world()
    original = messages[kind].to_bytes()
    mutated = mutate(original, operations)
    if mutated == original:  # e.g. an insert undone by a delete
        return
    employee, outgoing = deliver(kind, mutated)
    twin, twin_outgoing = deliver(kind, None)
    assert snapshot(employee) == snapshot(twin)
    assert outgoing == twin_outgoing
    assert sum(sum(c.values()) for c in employee.rejected.values()) == 1
