"""`none`: plain task-specific KD on the original training set, the baseline every method is compared with."""

from methods.registry import register_method


@register_method("none", label="KD", kind="none", description="plain KD on the original training set (no augmentation)")
class PlainKD:
    """Adds nothing: the harness's KD loss on the teacher's cached soft labels is the whole method."""
