"""Row selectors: which training rows (originals and pool rows, each with its origin) the student learns
from, one module each, registered in `selection.registry` and imported on first use. `all` is the default.
Named `selection`, not `selectors`, which is a module of Python's standard library."""

from selection.registry import SELECTORS, get_selector, list_selectors, register_selector

__all__ = ["SELECTORS", "get_selector", "list_selectors", "register_selector"]
