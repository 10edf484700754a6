"""Canonical bytes, hashes and Ed25519 keys: the bottom layer every other module uses.

Messages are deterministic CBOR (RFC 8949 section 4.2.1, via ``cbor2`` with
``canonical=True``). Decoding untrusted bytes is strict: only the CBOR types the protocol
uses are allowed, and the input must re-encode to exactly the same bytes, so one message
has one encoding and hashes and signatures over it are unambiguous.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# Frames larger than this are refused before any decoding.
MAX_FRAME_BYTES = 4 * 1024 * 1024
# Nesting deeper than this is refused (a wrapped block is 5 levels deep, a run's
# result frame 8); it bounds the decoder's recursion on hostile input.
MAX_DEPTH = 16


class DecodeError(ValueError):
    """Untrusted bytes that are not a well-formed canonical frame; the text is the reason."""


def encode(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True)


def _check_types(value: Any, depth: int, allow_float: bool) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError("nested too deeply")
    if isinstance(value, bool) or value is None:
        return
    if allow_float and isinstance(value, float):
        return
    if isinstance(value, (int, bytes, str)):
        return
    if isinstance(value, list):
        for item in value:
            _check_types(item, depth + 1, allow_float)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DecodeError("map key is not text")
            _check_types(item, depth + 1, allow_float)
        return
    raise DecodeError(f"CBOR type {type(value).__name__} is not allowed")


def _refuse_tag(*args: Any) -> Any:
    # cbor2's hook signature changed across versions; find the tag among the arguments.
    tag = next((a for a in args if isinstance(a, cbor2.CBORTag)), None)
    raise DecodeError(f"CBOR tag {getattr(tag, 'tag', '?')} is not allowed")


def decode(data: bytes, max_bytes: int = MAX_FRAME_BYTES, allow_float: bool = False) -> Any:
    """Decode untrusted bytes, or raise DecodeError with the reason. Protocol messages
    have no floats; control frames between processes may (timings, accuracy)."""
    if not isinstance(data, (bytes, bytearray)):
        raise DecodeError("frame is not bytes")
    if len(data) > max_bytes:
        raise DecodeError(f"frame of {len(data)} bytes exceeds {max_bytes}")
    if not data:
        raise DecodeError("empty frame")
    try:
        value = cbor2.loads(bytes(data), tag_hook=_refuse_tag)
    except DecodeError:
        raise
    except Exception as exc:  # cbor2 raises several types for malformed input
        if isinstance(exc.__cause__, DecodeError):  # our tag hook, wrapped by cbor2
            raise exc.__cause__ from None
        raise DecodeError(f"malformed CBOR ({type(exc).__name__})") from None
    _check_types(value, 0, allow_float)
    if encode(value) != bytes(data):
        raise DecodeError("not in canonical CBOR form")
    return value


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class KeyPair:
    """An Ed25519 key pair derived deterministically from a 32-byte seed."""

    def __init__(self, seed32: bytes):
        self._private = Ed25519PrivateKey.from_private_bytes(seed32)
        self.public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)


@lru_cache(maxsize=1 << 14)  # a lockstep run builds each party's keys in several places
def derive_keypair(scenario_seed: int, role: str, index: int) -> KeyPair:
    """Keys of employee or user ``index``: a function of the scenario seed only."""
    material = encode(["PoT-key", scenario_seed, role, index])
    return KeyPair(sha256(material))


class Memo:
    """The last ``size`` results of a pure function, by key (least recently used out).

    Where several employees share one process (the lockstep and Ray backends) each of
    them checks every message it receives, so the same signature is checked by every
    recipient; a result depends on its inputs only, so one check per process gives the
    same answers in a fraction of the time. In the process backend every employee has
    a process, and so a memo, of its own."""

    def __init__(self, size: int):
        self.size = size
        self.results: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        """The result stored under ``key``, or None."""
        result = self.results.get(key)
        if result is not None:
            self.results.move_to_end(key)
        return result

    def put(self, key: Any, result: Any) -> None:
        self.results[key] = result
        if len(self.results) > self.size:
            self.results.popitem(last=False)


_VERIFIED = Memo(1 << 16)


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    key = (bytes(public_key), bytes(signature), sha256(data))
    known = _VERIFIED.get(key)
    if known is None:
        known = _check_signature(public_key, signature, data)
        _VERIFIED.put(key, known)
    return bool(known)


def _check_signature(public_key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
