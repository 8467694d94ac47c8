"""The rules of webhook notices, pure: which notices to believe, which to drop, how to pace.

A notice is only a hint that a task may have ended: the task is then polled, and the poll is
the truth. So the rules here decide what a notice may cost, never what happened:

- ``SignatureCheck``: where the provider signs its notices, an unsigned, forged or stale one is
  refused. Replicate signs by the Standard Webhooks scheme (headers ``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature`` = space-separated ``v1,<base64 HMAC-SHA256 of
  "id.timestamp.body">`` with a ``whsec_`` secret; a timestamp more than 5 minutes off is
  refused; replicate.com/docs/topics/webhooks/verify-webhook): checked with the maintained
  ``standardwebhooks`` library. fal signs with ED25519 (headers ``x-fal-webhook-request-id``,
  ``-user-id``, ``-timestamp``, ``-signature`` = the hex signature, by any key of the JWKS at ``FAL_JWKS_URL``, of the request id, user id,
  timestamp and the body's sha256 in hex, joined by newlines; 5 minutes' tolerance; docs.fal.ai "Verifying your webhook", the exact format as several public
  verifiers implement it): checked when the keys could be fetched. wanapi's notices are
  unsigned (the docs name no signature). An unchecked notice costs at most one poll.
- ``DeliveryLog``: a delivery id seen before (a provider's retry, a replay) is dropped.
- ``BurstRule``: at most one notice-woken poll per task per ``window_seconds``; notices inside
  the window are folded into one poll at its end.
- ``NoticePace``: while notices arrive, the polls that remain a fallback are spread
  ``factor`` times further apart; after ``misses`` finishes in a row found by a poll with no
  notice first, notices are taken as not arriving and polling goes back to its own pace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook, WebhookVerificationError

MAX_NOTICE_BYTES = 64 * 1024  # a larger body is refused unread (413)
MAX_DELIVERY_IDS = 4096  # delivery ids remembered, for dropping repeats
STANDARD_WEBHOOKS = "standard-webhooks"
ED25519_JWKS = "ed25519-jwks"
FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
TOLERANCE_SECONDS = 300.0  # a signed notice's timestamp may be this far from our clock
# How each provider signs its notices (None: unsigned, a hint only). A provider not named here
# is checked by the Standard Webhooks scheme when a secret is given (a gateway may sign so).
SIGNING: Mapping[str, str | None] = {
    "wanapi": None,
    "replicate": STANDARD_WEBHOOKS,
    "fal": ED25519_JWKS,
}
JWKS_URLS: Mapping[str, str] = {"fal": FAL_JWKS_URL}


class SignatureCheck:
    """Checks a notice's signature; ``problem`` is None for one to believe."""

    def __init__(
        self,
        scheme: str | None,
        secret: str | None,
        keys: Sequence[Ed25519PublicKey] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scheme = scheme
        self._keys = tuple(keys) if scheme == ED25519_JWKS else ()
        self._clock = clock
        self._hook: Webhook | None = None
        if scheme == STANDARD_WEBHOOKS and secret:
            try:
                self._hook = Webhook(secret)
            except (ValueError, TypeError, RuntimeError) as exc:
                raise ValueError(
                    "the notice secret is not a Standard Webhooks secret (whsec_ and base64)"
                ) from exc

    @classmethod
    def for_provider(
        cls, provider: str, secret: str | None, keys: Sequence[Ed25519PublicKey] = ()
    ) -> SignatureCheck:
        scheme = SIGNING.get(provider, STANDARD_WEBHOOKS)
        if secret and scheme != STANDARD_WEBHOOKS:
            raise ValueError(
                f"{provider}'s notices are not signed with a shared secret"
                + (" (its public keys are fetched instead)" if scheme else "")
            )
        return cls(scheme, secret, keys)

    @property
    def verifies(self) -> bool:
        """True when notices are checked (a secret or keys for a scheme wanbatch can check)."""
        return self._hook is not None or bool(self._keys)

    def problem(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why this notice is refused (never naming the secret), or None."""
        if self._keys:
            return ed25519_problem(headers, body, self._keys, self._clock())
        if self._hook is None:
            return None
        try:
            self._hook.verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError as exc:
            return str(exc)  # the library's words: missing headers, too old, no match
        except (ValueError, UnicodeDecodeError):  # a malformed signature or body
            return "malformed signature headers or body"
        return None


def ed25519_keys(jwks: object) -> list[Ed25519PublicKey]:
    """The Ed25519 public keys of a JWKS document; other keys and malformed ones are skipped."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    found = []
    for key in keys if isinstance(keys, list) else []:
        if not isinstance(key, Mapping) or (key.get("kty"), key.get("crv")) != ("OKP", "Ed25519"):
            continue
        x = key.get("x")
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)) if isinstance(x, str) else b""
            found.append(Ed25519PublicKey.from_public_bytes(raw))
        except (ValueError, binascii.Error):
            continue
    return found


def ed25519_problem(
    headers: Mapping[str, str], body: bytes, keys: Sequence[Ed25519PublicKey], now: float
) -> str | None:
    """Why a fal-style ED25519-signed notice is refused, or None."""
    fields = [
        headers.get(f"x-fal-webhook-{name}", "")
        for name in ("request-id", "user-id", "timestamp", "signature")
    ]
    request_id, user_id, timestamp, signature = fields
    if not all(fields):
        return "missing signature headers"
    digits = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20
    if not digits or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return "timestamp missing or more than 5 minutes off"
    try:
        signed = bytes.fromhex(signature)
    except ValueError:
        return "malformed signature"
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()])
    for key in keys:
        try:
            key.verify(signed, message.encode())
        except InvalidSignature:
            continue
        return None
    return "no matching signature"


@dataclass(slots=True)
class DeliveryLog:
    """The delivery ids seen lately (at most ``limit``, the oldest forgotten first)."""

    limit: int = MAX_DELIVERY_IDS
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def repeat(self, delivery_id: str | None) -> bool:
        """True when ``delivery_id`` was seen before; remembers it otherwise."""
        if not delivery_id:
            return False
        if delivery_id in self._seen:
            self._seen.move_to_end(delivery_id)
            return True
        self._seen[delivery_id] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return False


@dataclass(frozen=True, slots=True)
class BurstRule:
    """At most one notice-woken poll per task per window: ``window_seconds`` after the first,
    twice as long after each further one, up to ``max_window_seconds``. A provider sends one
    notice a task (or a few retries of it); a stream of them is forged or broken, and costs a
    few polls per task, not one a window."""

    window_seconds: float = 1.0
    max_window_seconds: float = 60.0

    def due(self, last_woken: float | None, now: float, woken: int = 0) -> float:
        """When a notice heard ``now`` may poll its task, ``woken`` polls of which notices
        have woken so far."""
        if last_woken is None:
            return now
        window = min(self.window_seconds * 2.0 ** min(woken, 30), self.max_window_seconds)
        return max(now, last_woken + window)


@dataclass(slots=True)
class NoticePace:
    """How far apart the fallback polls are while notices arrive (see the module docstring)."""

    factor: float = 4.0
    misses: int = 3
    missed_in_a_row: int = 0  # finishes found by a poll that no notice had woken
    heard: int = 0  # finishes a notice-woken poll found

    @property
    def arriving(self) -> bool:
        return self.missed_in_a_row < self.misses

    def stretch(self, since: float, at: float) -> float:
        """The poll planned at ``at`` (the last one at ``since``), spread out while notices
        arrive."""
        if not self.arriving or at <= since:
            return at
        return since + (at - since) * self.factor

    def finished(self, *, woken: bool) -> bool:
        """A poll found its task finished; ``woken``: a notice had woken that poll. True when
        this finish made notices count as not arriving (say so once)."""
        if woken:
            self.heard += 1
            self.missed_in_a_row = 0
            return False
        was = self.arriving
        self.missed_in_a_row += 1
        return was and not self.arriving
