"""Teacher sources: where a run's teacher outputs on the training rows come from (a cache on disk, or a
forward of each batch), one module each, registered in `teachers.registry` and imported on first use.
`cached` is the default."""

from teachers.registry import TEACHER_SOURCES, get_teacher_source, list_teacher_sources, register_teacher_source

__all__ = ["TEACHER_SOURCES", "get_teacher_source", "list_teacher_sources", "register_teacher_source"]
