"""Augmentation methods. Importing this package registers the built-in ones (the baseline first,
so listings start with it)."""

from methods import none, ad2, eda, back_translation, mlm  # noqa: F401, I001  (import order is registration order)
from methods.registry import MethodSpec, get_method, list_methods, load_plugins, register_method

__all__ = ["MethodSpec", "get_method", "list_methods", "load_plugins", "register_method"]
