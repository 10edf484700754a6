"""The five message kinds: wire round trip, schema check, signatures and hashes."""

from __future__ import annotations

import functools

import pytest

from simulation.protocol.encoding import DecodeError, encode, sha256, verify
from simulation.protocol.messages import (
    MAX_LOCATOR,
    BlockHeader,
    BlockRequest,
    StakeholderSignature,
    TrainingDeclaration,
    Transaction,
    WrappedBlock,
    commitment_bytes,
    message_from_wire,
    parse_message,
    signing_bytes,
    stakeholder_bytes,
)
from tests.helpers import OTHER_SECRET, World, altered, resign

KINDS = ["TX", "TD", "BH", "SS", "WB", "RQ"]
CLASSES = {"TX": Transaction, "TD": TrainingDeclaration, "BH": BlockHeader,
           "SS": StakeholderSignature, "WB": WrappedBlock, "RQ": BlockRequest}


@functools.lru_cache(maxsize=1)
def samples():
    world = World()
    tx = world.tx(0, 1, 7, 0)
    header = world.bh(0)
    signatures = world.ss(header)
    block = world.wrap(header, [tx, world.tx(2, 3, 1, 0)], keep_order=True)
    request = BlockRequest.create(world.employees[1], want=block.hash,
                                  locator=[header.parent, sha256(b"older")], tick=9)
    return world, {"TX": tx, "TD": header.declarations[0], "BH": header,
                   "SS": signatures[0], "WB": block, "RQ": request}


def sample(kind):
    return samples()[1][kind]


def wire_bytes(wire) -> bytes:
    return encode(wire)


# --- Round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_through_bytes(kind):
    message = sample(kind)
    parsed = parse_message(message.to_bytes())
    assert type(parsed) is CLASSES[kind]
    assert parsed == message
    assert parsed.hash == message.hash == sha256(message.to_bytes())
    assert parsed.kind == kind
    assert parsed.wire == message.wire


def test_accessors_after_parsing():
    world, messages = samples()
    tx = parse_message(messages["TX"].to_bytes())
    assert (tx.sender, tx.receiver, tx.amount, tx.nonce) == (
        world.users[0].public, world.users[1].public, 7, 0)
    block = parse_message(messages["WB"].to_bytes())
    assert block.header == messages["BH"]
    assert block.stakeholder_signatures == tuple(world.ss(messages["BH"]))
    assert [t.amount for t in block.transactions] == [7, 1]
    assert block.parent == world.genesis.hash and block.height == 1
    assert list(block.payouts) == world.payouts(messages["BH"])
    header = block.header
    assert [td.author for td in header.declarations] == sorted(
        td.author for td in header.declarations)
    assert header.secret == world.own(0).secret


def test_equal_messages_hash_equal_and_differ_otherwise():
    world, messages = samples()
    again = world.tx(0, 1, 7, 0)
    assert again == messages["TX"] and hash(again) == hash(messages["TX"])
    other = world.tx(0, 1, 8, 0)
    assert other != messages["TX"] and other.hash != messages["TX"].hash
    assert len({m.hash for m in messages.values()}) == len(messages)


def test_hash_covers_the_signature():
    message = sample("TX")
    other_sig = altered(message, sig=bytes(64))
    assert other_sig.hash != message.hash


def test_declarations_in_a_header_are_sorted_by_author():
    world = World()
    tds = world.declarations([2, 0, 1])
    header = world.bh(0, tds=tds)
    assert [td.author for td in header.declarations] == sorted(td.author for td in tds)


# --- Schema check -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_missing_field_is_rejected(kind):
    message = sample(kind)
    for name in message.wire:
        wire = {k: v for k, v in message.wire.items() if k != name}
        if name in OPTIONAL_FIELDS.get(kind, ()):
            # Optional in the schema: the receiver's rules decide (chain-id,
            # personal-secrets; test_hardening.py), so it still parses.
            assert parse_message(wire_bytes(wire)).kind == kind
            continue
        with pytest.raises(DecodeError) as info:
            parse_message(wire_bytes(wire))
        reason = str(info.value)
        assert (f"missing fields ['{name}']" in reason if name != "kind"
                else "unknown message kind" in reason), reason


OPTIONAL_FIELDS = {"TX": ("chain",), "BH": ("pts",)}


def test_the_samples_carry_the_optional_fields():
    """So that the schema tests above and below exercise them."""
    for kind, names in OPTIONAL_FIELDS.items():
        assert all(name in sample(kind).wire for name in names), kind


def test_personal_secrets_must_match_the_declarations_one_to_one():
    header = sample("BH")
    for secrets in ([], header.wire["pts"] + [header.wire["pts"][0]]):
        with pytest.raises(DecodeError, match="one secret per declaration"):
            parse_message(wire_bytes({**header.wire, "pts": secrets}))
    with pytest.raises(DecodeError, match="pts must be 32 bytes"):
        parse_message(wire_bytes({**header.wire, "pts": [b"short"] * len(header.wire["tds"])}))


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_are_rejected(kind):
    wire = dict(sample(kind).wire)
    wire["extra"] = 1
    with pytest.raises(DecodeError, match=r"unknown fields \['extra'\]"):
        parse_message(wire_bytes(wire))


BYTES_FIELDS = {
    "TX": {"sender": 32, "receiver": 32, "sig": 64},
    "TD": {"author": 32, "parent": 32, "model_hash": 32, "commitment": 64, "sig": 64},
    "BH": {"author": 32, "parent": 32, "ts": 32, "sig": 64},
    "SS": {"author": 32, "bh": 32, "sig": 64},
    "WB": {"author": 32, "sig": 64},
    "RQ": {"author": 32, "want": 32, "sig": 64},
}
UINT_FIELDS = {
    "TX": ["amount", "nonce"],
    "TD": ["tick", "coinstake"],
    "BH": ["height", "tick", "coinstake"],
    "SS": [],
    "WB": ["tick"],
    "RQ": ["tick"],
}
TEXT_FIELDS = {"TD": ["id_m", "id_s"], "BH": ["id_m", "id_s"]}
LIST_FIELDS = {"BH": ["tds"], "WB": ["ss", "txs", "payouts"]}


def bad_values(kind):
    for name, size in BYTES_FIELDS[kind].items():
        for value in (b"\x01" * (size - 1), b"\x01" * (size + 1), b"", "x" * size, size):
            yield name, value, f"{kind}: {name} must be {size} bytes"
    for name in UINT_FIELDS[kind]:
        for value in (-1, 2**256, True, "5", b"\x05", [5]):
            yield name, value, f"{kind}: {name} must be an unsigned integer"
    for name in TEXT_FIELDS.get(kind, []):
        for value in (b"text", 7, "x" * 257):
            yield name, value, f"{kind}: {name} must be text"
    for name in LIST_FIELDS.get(kind, []):
        for value in ({"a": 1}, b"", 3):
            yield name, value, f"{kind}: {name} must be a list"


CASES = [(kind, name, value, reason) for kind in KINDS
         for name, value, reason in bad_values(kind)]


@pytest.mark.parametrize(("kind", "name", "value", "reason"), CASES,
                         ids=[f"{k}-{n}-{v!r:.20}" for k, n, v, _ in CASES])
def test_wrong_types_and_lengths_are_rejected(kind, name, value, reason):
    wire = dict(sample(kind).wire)
    wire[name] = value
    with pytest.raises(DecodeError, match=reason.replace("*", r"\*")):
        parse_message(wire_bytes(wire))


@pytest.mark.parametrize("kind", ["TX", "TD", "BH", "SS", "WB"])
def test_boundary_values_are_accepted(kind):
    wire = dict(sample(kind).wire)
    for name in UINT_FIELDS[kind]:
        wire[name] = 2**256 - 1
    for name in TEXT_FIELDS.get(kind, []):
        wire[name] = "x" * 256
    assert parse_message(wire_bytes(wire)).wire == wire


@pytest.mark.parametrize("kind", KINDS)
def test_a_wire_map_under_another_kind_is_rejected(kind):
    for other in KINDS:
        if other == kind:
            continue
        wire = dict(sample(kind).wire)
        wire["kind"] = other
        with pytest.raises(DecodeError):
            parse_message(wire_bytes(wire))


@pytest.mark.parametrize("value", ["XX", "tx", "", 3, b"TX", None])
def test_unknown_kind_is_rejected(value):
    wire = dict(sample("TX").wire)
    wire["kind"] = value
    with pytest.raises(DecodeError, match="unknown message kind"):
        parse_message(wire_bytes(wire))


@pytest.mark.parametrize("value", [[1, 2], "TX", 5, b"\x00"])
def test_a_message_must_be_a_map(value):
    with pytest.raises(DecodeError, match="message is not a map"):
        parse_message(wire_bytes(value))


def test_nested_messages_are_schema_checked():
    header, block = sample("BH"), sample("WB")
    td_wire = dict(header.wire["tds"][0])
    del td_wire["commitment"]
    with pytest.raises(DecodeError, match=r"TD: missing fields \['commitment'\]"):
        parse_message(wire_bytes({**header.wire, "tds": [td_wire]}))
    bh_wire = {**header.wire, "height": -1}
    with pytest.raises(DecodeError, match="BH: height must be"):
        parse_message(wire_bytes({**block.wire, "bh": bh_wire}))
    with pytest.raises(DecodeError, match="BH: not a map"):
        parse_message(wire_bytes({**block.wire, "bh": [1]}))
    with pytest.raises(DecodeError, match="BH: kind field is 'TD'"):
        parse_message(wire_bytes({**block.wire, "bh": header.wire["tds"][0]}))
    with pytest.raises(DecodeError, match="SS: sig must be 64 bytes"):
        parse_message(wire_bytes({**block.wire,
                                  "ss": [{**block.wire["ss"][0], "sig": b"short"}]}))
    with pytest.raises(DecodeError, match="TX: amount must be"):
        parse_message(wire_bytes({**block.wire,
                                  "txs": [{**block.wire["txs"][0], "amount": "1"}]}))
    # A TD map where a TX is expected.
    with pytest.raises(DecodeError, match="TX: kind field is 'TD'"):
        parse_message(wire_bytes({**block.wire, "txs": [header.wire["tds"][0]]}))


@pytest.mark.parametrize("payout", [
    [b"\x01" * 32], [b"\x01" * 32, 1, 2], {"a": 1}, b"\x01" * 32,
    [b"\x01" * 31, 1], [b"\x01" * 32, -1], ["x" * 32, 1], [b"\x01" * 32, True],
])
def test_malformed_payouts_are_rejected(payout):
    block = sample("WB")
    with pytest.raises(DecodeError, match="WB"):
        parse_message(wire_bytes({**block.wire, "payouts": [payout]}))


def test_message_from_wire_takes_decoded_maps():
    message = sample("BH")
    assert message_from_wire(dict(message.wire)) == message


# --- Signatures -------------------------------------------------------------------------


def same_type_change(value):
    """A different value of the same type (so only the signature can notice)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, bytes):
        return bytes([value[0] ^ 1]) + value[1:] if value else b"\x00"
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value[:-1] if value else [value]
    if isinstance(value, dict):  # a nested message: change one of its fields
        name = next(k for k in value if k != "kind")
        return {**value, name: same_type_change(value[name])}
    raise AssertionError(f"no change for {value!r}")


@pytest.mark.parametrize("kind", KINDS)
def test_signatures_verify(kind):
    assert sample(kind).signature_valid()
    assert parse_message(sample(kind).to_bytes()).signature_valid()


@pytest.mark.parametrize("kind", ["TX", "TD", "BH", "WB"])
def test_altering_any_field_breaks_the_signature(kind):
    message = sample(kind)
    for name, value in message.wire.items():
        if name in ("sig", "kind"):
            continue
        change = same_type_change(value)
        if name in ("pts", "tds"):  # one secret per declaration: keep the count
            change = [same_type_change(value[0]), *value[1:]]
        changed = altered(message, **{name: change})
        assert not changed.signature_valid(), name
        # It still parses: only the signature can tell.
        assert parse_message(changed.to_bytes()) == changed


@pytest.mark.parametrize("kind", ["TX", "TD", "BH", "WB"])
def test_signature_covers_the_kind(kind):
    message = sample(kind)
    changed = altered(message, kind="XX")
    assert not changed.signature_valid()


def test_signature_is_over_the_prefixed_map_without_sig():
    message = sample("TD")
    unsigned = {k: v for k, v in message.wire.items() if k != "sig"}
    assert signing_bytes(message.wire) == b"PoT-msg" + encode(unsigned)
    assert verify(message.author, message.signature, b"PoT-msg" + encode(unsigned))
    assert not verify(message.author, message.signature, encode(unsigned))


def test_a_re_signed_alteration_is_valid_again():
    world = World()
    message = sample("TD")
    changed = resign(message, world.keys(message.author), tick=message.tick + 1)
    assert changed.signature_valid() and changed.tick == message.tick + 1


def test_signature_by_another_key_fails():
    world = World()
    message = sample("TD")
    forged = resign(message, world.employees[3] if message.author != world.employees[3].public
                    else world.employees[2])
    assert forged.author == message.author
    assert not forged.signature_valid()


def test_ss_signature_is_over_the_header_hash():
    world = World()
    header = sample("BH")
    ss = sample("SS")
    assert ss.header_hash == header.hash
    assert verify(ss.author, ss.signature, b"PoT-ss" + header.hash)
    assert stakeholder_bytes(header.hash) == b"PoT-ss" + header.hash
    # Not the generic message signature.
    assert not verify(ss.author, ss.signature, signing_bytes(ss.wire))
    assert not altered(ss, bh=sha256(b"another header")).signature_valid()
    other = next(k for k in world.employees if k.public != ss.author)
    assert not altered(ss, author=other.public).signature_valid()
    assert not altered(ss, sig=bytes(64)).signature_valid()


def test_nested_alterations_break_the_outer_signature():
    world, messages = samples()
    block, header = messages["WB"], messages["BH"]
    # A field of the nested header changed: both the header and the block break.
    bh_wire = {**header.wire, "tick": header.tick + 1}
    changed = altered(block, bh=bh_wire)
    assert not changed.header.signature_valid()
    assert not changed.signature_valid()
    # The header re-signed by its author is valid, but the block still is not.
    good_header = resign(header, world.keys(header.author), tick=header.tick + 1)
    changed = altered(block, bh=good_header.wire)
    assert changed.header.signature_valid()
    assert not changed.signature_valid()
    # A nested transaction or stakeholder signature changed.
    tx_wire = {**block.wire["txs"][0], "amount": 8}
    changed = altered(block, txs=[tx_wire, block.wire["txs"][1]])
    assert not changed.transactions[0].signature_valid()
    assert not changed.signature_valid()
    ss_wire = {**block.wire["ss"][0], "bh": sha256(b"x")}
    assert not altered(block, ss=[ss_wire, *block.wire["ss"][1:]]).signature_valid()
    # A declaration inside a header changed: the header breaks.
    td_wire = {**header.wire["tds"][0], "tick": header.wire["tds"][0]["tick"] + 1}
    changed = altered(header, tds=[td_wire, *header.wire["tds"][1:]])
    assert not changed.declarations[0].signature_valid()
    assert not changed.signature_valid()


def test_commitment_is_a_signature_over_the_stage_and_secret():
    world = World()
    td = world.td(1)
    secret = world.commit_secret(0, td.author)  # rule personal-secrets: its own
    assert secret != world.own(0).secret and not td.commitment_valid(world.own(0).secret)
    assert td.commitment_valid(secret)
    assert not td.commitment_valid(OTHER_SECRET)
    assert verify(td.author, td.commitment, b"PoT-commit" + td.stage_id.encode() + secret)
    assert commitment_bytes(td.stage_id, secret) == (
        b"PoT-commit" + td.stage_id.encode() + secret)
    # The commitment of another stage does not verify for this one.
    other_stage = resign(td, world.employees[1], id_s=world.model_id + ":1")
    assert not other_stage.commitment_valid(secret)


def test_signature_domains_are_separated():
    """A stakeholder signature cannot pass as a commitment or a message signature."""
    world = World()
    header = sample("BH")
    ss = StakeholderSignature.create(world.employees[0], header.hash)
    td = world.td(0)
    assert not verify(td.author, ss.signature, commitment_bytes(td.stage_id, header.hash))
    assert not altered(td, commitment=ss.signature).commitment_valid(world.own(0).secret)
    assert not altered(td, sig=ss.signature).signature_valid()


# --- Block requests ------------------------------------------------------------------------


@pytest.mark.parametrize("locator", [[], [sha256(b"x")] * (MAX_LOCATOR + 1), sha256(b"x"),
                                     "hashes"], ids=["empty", "too-long", "bytes", "text"])
def test_a_request_locator_is_a_list_of_1_to_max_locator_hashes(locator):
    wire = dict(sample("RQ").wire, locator=locator)
    with pytest.raises(DecodeError, match=f"RQ: locator must be a list of 1 to {MAX_LOCATOR} "
                                          "hashes"):
        parse_message(wire_bytes(wire))


@pytest.mark.parametrize("entry", [b"\x01" * 31, b"\x01" * 33, "x" * 32, 5])
def test_each_locator_entry_is_a_hash(entry):
    wire = dict(sample("RQ").wire, locator=[sha256(b"x"), entry])
    with pytest.raises(DecodeError, match="RQ: locator must be 32 bytes"):
        parse_message(wire_bytes(wire))


@pytest.mark.parametrize("length", [1, MAX_LOCATOR])
def test_locators_of_the_boundary_lengths_are_accepted(length):
    wire = dict(sample("RQ").wire, locator=[sha256(bytes([i])) for i in range(length)])
    assert parse_message(wire_bytes(wire)).locator == tuple(wire["locator"])


def test_a_message_shows_its_class_and_hash_prefix():
    """What logs print for a message."""
    for kind in KINDS:
        message = sample(kind)
        assert repr(message) == f"{CLASSES[kind].__name__}({message.hash.hex()[:12]})"
