"""`plain`: the Trainer's own loop, the best-dev weights kept (the protocol of METHODS.md)."""

from schemes.base import Scheme
from schemes.registry import register_scheme


@register_scheme("plain", description="train with linear warm-up and decay; keep the best dev checkpoint's weights")
class Plain(Scheme):
    """Changes nothing."""
