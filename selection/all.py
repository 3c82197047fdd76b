"""`all`: every row of every source, as a run without a selection stage trains on."""

from selection.base import Selector
from selection.registry import register_selector


@register_selector("all", description="train on every row: the originals and every pool row")
class All(Selector):
    """Keeps every row."""
