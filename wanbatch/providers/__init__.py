"""Provider adapters: one per API that serves Wan, each pure translation behind ``Provider``.

``PROVIDERS`` names them; ``provider(name)`` gives one. The manifest's ``api.provider`` picks
one (``wanapi`` when absent).
"""

from __future__ import annotations

from wanbatch.models import DEFAULT_PROVIDER, ApiSettings, GatewayDescription
from wanbatch.providers.base import Provider
from wanbatch.providers.dashscope import DashScopeProvider
from wanbatch.providers.fal import FalProvider
from wanbatch.providers.gateway import GatewayProvider
from wanbatch.providers.replicate import ReplicateProvider
from wanbatch.providers.wanapi import WanApiProvider

PROVIDERS: dict[str, Provider] = {
    "wanapi": WanApiProvider(),
    "replicate": ReplicateProvider(),
    "gateway": GatewayProvider(GatewayDescription()),  # as described: see provider_for
    "fal": FalProvider(),
    "dashscope": DashScopeProvider(),
}


def provider_for(api: ApiSettings) -> Provider:
    """The adapter a manifest's ``api`` section asks for (a gateway as ``api.gateway`` says)."""
    if api.provider == "gateway":
        return GatewayProvider(api.gateway or GatewayDescription())
    return PROVIDERS[api.provider]


def provider(name: str) -> Provider:
    """The adapter called ``name``; KeyError naming the known ones when there is none."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise KeyError(f"no provider {name!r}; known: {known}") from None


__all__ = ["DEFAULT_PROVIDER", "PROVIDERS", "Provider", "provider", "provider_for"]
