"""`online`: every output of the teacher from a forward of each training batch, with no cache: what a
teacher that changes during training needs, and what costs one teacher forward per step."""

from teachers.base import TeacherSource
from teachers.registry import register_teacher_source


@register_teacher_source("online", description="logits, hidden states and attentions from a forward of each "
                                               "training batch (no cache)")
class Online(TeacherSource):
    """Nothing cached."""

    logits_cached = False
