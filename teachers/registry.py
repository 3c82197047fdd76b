"""The registry of teacher sources (see bench/parts/registry.py): `@register_teacher_source("name", ...)` on a
subclass of `teachers.base.TeacherSource`, `get_teacher_source(name)`, `list_teacher_sources(pattern)`. Built-in
sources are imported on first use."""

from __future__ import annotations

from bench.parts.registry import Registry

TEACHER_SOURCES = Registry("teacher source", plural="teacher-outputs", base="teachers.base:TeacherSource", builtins={
    "cached": "teachers.cached", "online": "teachers.online", "cached-all": "teachers.cached_all"})
register_teacher_source = TEACHER_SOURCES.register
get_teacher_source, list_teacher_sources = TEACHER_SOURCES.get, TEACHER_SOURCES.list
