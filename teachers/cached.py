"""`cached`: the teacher's logits from the cache on disk, computed once per teacher and data (the run prints
their size); the hidden states and attentions a part reads, from a forward of each batch."""

from teachers.base import TeacherSource
from teachers.registry import register_teacher_source


@register_teacher_source("cached", description="logits from the cache on disk (once per teacher and data); "
                                               "hidden states and attentions a part reads from a forward of each batch")
class Cached(TeacherSource):
    """Logits cached, states online."""
