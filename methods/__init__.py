"""Augmentation methods, one module each, registered in `methods.registry` and imported on first use."""

from methods.registry import (METHODS, MethodSpec, get_method, list_methods, load_plugins, register_method,
                              takes_generator)

__all__ = ["METHODS", "MethodSpec", "get_method", "list_methods", "load_plugins", "register_method",
           "takes_generator"]
