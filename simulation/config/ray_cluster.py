"""Whether a RAY_ADDRESS (or a sweep's --ray-address) names a Ray cluster that answers,
asked before ``ray.init``: for "auto" Ray takes the latest cluster this machine started,
also one that has stopped since, and then retries its connection for many minutes (a
test once hung there). Ray is imported only when asked, so config stays light."""

from __future__ import annotations

import socket

REACHABLE_SECONDS = 5.0  # a cluster's GCS port must accept a connection within this


def unreachable(address: str) -> str | None:
    """Why ``address`` ("auto" or HOST:PORT) names no cluster that answers, or None.
    A Ray Client address (ray://) is left to ``ray.init``, which says what is wrong."""
    if address.startswith("ray://"):
        return None
    from ray._private import services  # the pinned Ray's own resolution of "auto"

    try:
        resolved = services.canonicalize_bootstrap_address(address)
    except Exception as exc:  # noqa: BLE001 - Ray's own error, as the reason
        return str(exc)
    if resolved is None:
        return "no running cluster found"
    host, _, port = resolved.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACHABLE_SECONDS).close()
    except (OSError, ValueError) as exc:
        return f"{resolved} does not answer ({exc})"
    return None
