"""Bank-transfer webhook providers: one module per provider, all of one shape.

See ``base`` for the shape (``verify`` → ``parse`` → ``Transfer``) and
shared/spec/webhooks.md for the formats. Pure: no Django.
"""

from __future__ import annotations

from . import casso, payos, sepay, simulator
from .base import Provider, Transfer, VerifyResult, WebhookRejected

PROVIDERS: dict[str, Provider] = {
    sepay.NAME: sepay,
    casso.NAME: casso,
    payos.NAME: payos,
    simulator.NAME: simulator,
}

__all__ = ["PROVIDERS", "Provider", "Transfer", "VerifyResult", "WebhookRejected"]
