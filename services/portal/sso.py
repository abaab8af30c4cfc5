"""The university's single sign-on for the portal: OpenID Connect (authorization code
with PKCE) or CAS 3.0, chosen by configuration.

The portal's routes (``/sign-in``, ``/sign-in/callback``, ``/sign-out``) speak to this
module only through ``SingleSignOn``; this module alone knows the protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from shared.auth import Identity


class SignInFailed(Exception):
    """The provider did not vouch for anyone (bad state, refused ticket, provider down)."""


class SingleSignOn(Protocol):
    name: str  # "oidc" or "cas"

    def begin(self, callback_url: str) -> tuple[str, dict[str, Any]]:
        """Where to send the browser, and what the portal keeps in the session until the
        callback (state, PKCE verifier, nonce...)."""

    def complete(self, args: Mapping[str, str], callback_url: str, kept: dict[str, Any]) -> tuple[Identity, dict[str, Any]]:
        """The person the provider vouches for, from the callback's query ``args``, and
        what to keep for sign-out (an id token, a CAS ticket...). ``SignInFailed`` otherwise."""

    def logout_url(self, kept: dict[str, Any], return_to: str) -> str | None:
        """The provider's logout address (single logout), or ``None``."""


def from_env(env: Mapping[str, str] | None = None) -> SingleSignOn | None:
    """The configured single sign-on, or ``None`` when none is configured (then only the
    development sign-in exists, in development mode)."""
    return None
