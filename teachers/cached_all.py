"""`cached-all`: the teacher's logits and the hidden states and attentions a part reads, all from the cache
on disk (bench/pipeline/teacher_states.py), computed once per teacher and data: no teacher forward while
training, at the price of disk space (the size is printed before writing)."""

from teachers.base import TeacherSource
from teachers.registry import register_teacher_source


@register_teacher_source("cached-all", description="logits and the hidden states and attentions a part reads, all "
                                                   "from the cache on disk (large: the size is printed first)")
class CachedAll(TeacherSource):
    """Logits and states cached."""

    states_cached = True
