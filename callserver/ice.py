"""Which host addresses the server offers as ICE candidates.

aioice gathers from every interface but skips loopback, and aiortc has no option for it. The
server sets the list once at start (a process-wide choice, like the port it binds), so a
single-machine or test deployment can offer 127.0.0.1 and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import aioice.ice

log = logging.getLogger(__name__)

_ORIGINAL: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly ``addresses`` as host candidates; an empty list restores aioice's choice."""
    if not addresses:
        aioice.ice.get_host_addresses = _ORIGINAL  # type: ignore[assignment]
        return
    chosen = list(addresses)

    def fixed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = fixed
    log.info("ICE host addresses fixed", extra={"addresses": ",".join(chosen)})
