"""Augmentation methods. Importing this package registers the built-in ones."""

from methods import none  # noqa: F401  (registers the method)
from methods.registry import MethodSpec, get_method, list_methods, register_method

__all__ = ["MethodSpec", "get_method", "list_methods", "register_method"]
