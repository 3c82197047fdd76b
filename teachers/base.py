"""What a teacher source is: the stage between the teacher and training that says where the teacher's
outputs on the training rows come from (`--teacher-outputs`, spec key `teacher_outputs`).

A source declares two capabilities, which the harness reads (bench/pipeline/runs.py): whether the
teacher's logits on every training row are computed once, before training, and kept in the cache on disk
(else each training batch gets a forward of the teacher, as a teacher that changes during training
needs), and whether the hidden states and attentions that a part reads (`TrainingPart.reads`) come from
that cache too (else from a forward of each batch, which then also gives the logits). The source is
never built: its class is the declaration.
"""

from __future__ import annotations


class TeacherSource:
    logits_cached: bool = True  # logits on the training rows: computed once per teacher and data, on disk
    states_cached: bool = False  # hidden states and attentions a part reads: from that cache too (large)
