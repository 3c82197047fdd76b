"""Training schemes: how the student's weights are trained and which weights are kept (plain, SWA),
one module each, registered in `schemes.registry` and imported on first use. `plain` is the default."""

from schemes.registry import SCHEMES, get_scheme, list_schemes, register_scheme

__all__ = ["SCHEMES", "get_scheme", "list_schemes", "register_scheme"]
