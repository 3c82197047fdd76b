"""The registry of student builders (see bench/parts/registry.py): `@register_student("name", params=...,
shorthand=...)` on a subclass of `students.base.StudentBuilder`.

A student is a role like the method or the objective: a builder's name (`RunConfig.student`) and its
parameters (`student_params`). It is also written in a short form, one string, as the command line,
specs and earlier records give it: `teacher-layers:0,2,4` (a kind, then the text that sets its
`shorthand` parameter, or `key=value` pairs: `fresh:num_hidden_layers=4,hidden_size=256`), or, with no
registered kind before a colon, a pre-trained encoder's hub id or folder. `split_student` and
`student_text` turn one form into the other; a stored study's `model` field is the short form.
"""

from __future__ import annotations

from typing import Any

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.registry import Registry

STUDENTS = Registry("student", plural="students", base="students.base:StudentBuilder", builtins={
    "teacher-layers": "students.teacher_layers", "fresh": "students.fresh", "kronecker": "students.kronecker",
    "pretrained": "students.pretrained"})
register_student = STUDENTS.register
PRETRAINED = "pretrained"  # a short form with no registered `kind:` prefix names a pre-trained model


def split_student(student: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The builder's name and parameters that `student` (a name, or a short form) and `params` give; a
    parameter both set differently is refused (`dataclasses.replace(config, student=...)` keeps the old
    student's parameters: pass `student_params={}` with it)."""
    kind, sep, text = student.partition(":")
    part = _known(kind if sep else student)
    if part is None or (sep and not text):
        name, short = PRETRAINED, {"model": student}
    elif not sep:
        name, short = part.name, {}
    elif part.shorthand is not None and "=" not in text:
        name, short = part.name, {part.shorthand: text}
    else:
        name, short = part.name, dict(map(_pair, text.split(",")))
    given = params or {}
    clash = [key for key in short if key in given and str(given[key]) != str(short[key])]
    if clash:
        raise KdbenchError(f"student {student} and its parameters {given} both set {', '.join(clash)}: set each "
                           "once (with a new student, pass student_params={} too)")
    return name, {**short, **given}


def student_text(student: str, params: dict[str, Any]) -> str:
    """The short form of a student: what `model` held before the student was a role, so stored studies
    keep their names. Parameters at their defaults are left out; a pre-trained encoder is its name."""
    part = STUDENTS.get(student)
    given = {p.name: params[p.name] for p in part.params if p.name in params and params[p.name] != p.default}
    if part.name == PRETRAINED:
        return str(params.get("model", ""))
    if part.shorthand is not None and set(given) <= {part.shorthand}:
        return f"{part.name}:{params.get(part.shorthand, next(p.default for p in part.params if p.name == part.shorthand))}"
    return part.name + (":" + ",".join(f"{key}={value}" for key, value in given.items()) if given else "")


def _known(name: str):
    try:
        return STUDENTS.get(name)
    except UnknownNameError:
        return None


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise KdbenchError(f"a student's parameters are key=value pairs, e.g. "
                           f"fresh:num_hidden_layers=4,hidden_size=256; got {item!r}")
    return key.strip(), value.strip()
