"""`none`: plain task-specific KD on the original training set, the baseline every method is compared with."""

from methods.base import Method
from methods.registry import register_method


@register_method("none", label="KD", kind="none", description="plain KD on the original training set (no augmentation)")
class PlainKD(Method):
    """Adds nothing: the run's KD objective on the teacher's cached soft labels is the whole method."""
