"""Identity headers from a trusted proxy (the oauth2-proxy convention).

Invariants: ``X-Forwarded-User`` / ``X-Forwarded-Groups`` (comma-separated) name a
principal only when the TCP peer (``scope["client"]``, never a forwarded address) is one of
``RAG_AUTH_TRUSTED_PROXIES`` (addresses or CIDR networks); from anyone else they are ignored
and a warning is logged (at most once a minute per peer). A repeated header is ambiguous and
ignored too. The principal's role is ``auth_proxy_role``; its source is ``proxy``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

from api.auth.errors import AuthConfigError
from rag.access import Principal, Role

log = logging.getLogger(__name__)

USER_HEADER = b"x-forwarded-user"
GROUPS_HEADER = b"x-forwarded-groups"
WARN_EVERY_S = 60.0
_MAX_PEERS_REMEMBERED = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: list[str]) -> list[Network]:
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise AuthConfigError(
                f"RAG_AUTH_TRUSTED_PROXIES: {value!r} is not an address or a network"
            ) from None
    return networks


class ProxyHeaders:
    """The principal a trusted proxy names, or None."""

    def __init__(self, trusted: list[str], role: str) -> None:
        self.networks = parse_networks(trusted)
        try:
            self.role = Role.parse(role)
        except ValueError as exc:
            raise AuthConfigError(f"RAG_AUTH_PROXY_ROLE: {exc}") from None
        self._warned: dict[str, float] = {}

    def trusted(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def principal(self, scope: dict[str, Any]) -> Principal | None:
        users = [v for k, v in scope["headers"] if k.lower() == USER_HEADER]
        if not users:
            return None
        client = scope.get("client")
        peer = str(client[0]) if client else None
        if not self.trusted(peer):
            self._warn(peer, "identity headers from an untrusted peer ignored")
            return None
        groups_values = [v for k, v in scope["headers"] if k.lower() == GROUPS_HEADER]
        if len(users) > 1 or len(groups_values) > 1:
            self._warn(peer, "repeated identity headers from a trusted proxy ignored")
            return None
        name = users[0].decode("latin-1").strip()
        if not name:
            return None
        groups = groups_values[0].decode("latin-1").split(",") if groups_values else []
        return Principal(
            name=name,
            role=self.role,
            groups=frozenset(g.strip() for g in groups if g.strip()),
            source="proxy",
        )

    def _warn(self, peer: str | None, what: str) -> None:
        now = time.monotonic()
        key = peer or "?"
        if now - self._warned.get(key, float("-inf")) < WARN_EVERY_S:
            return
        if len(self._warned) > _MAX_PEERS_REMEMBERED:
            self._warned.clear()
        self._warned[key] = now
        log.warning(
            "%s (peer %s; trusted: RAG_AUTH_TRUSTED_PROXIES); X-Forwarded-User/-Groups "
            "are only believed from a trusted proxy",
            what,
            key,
        )
