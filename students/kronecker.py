"""`kronecker:kroneckerbert8`: a KroneckerBERT student (Tahaei et al., NAACL 2022) made from the teacher: the
word-embedding table and every layer's Q, K, V, attention-output and two FFN maps replaced by Kronecker
products `A (x) B` (bench/parts/kronecker.py), initialised by the nearest Kronecker product of the teacher's
weights; depth, widths and the rest copied from the teacher.

Shapes are A's, as the paper's Table 1 gives them (`n1xm1`: input, output factor; the FFN's second map takes
the first's transposed; the embedding's B is a row of `n`), and presets hold Table 1's two models for a
BERT-base teacher (hidden 768, FFN 3,072): `kroneckerbert8` (MHA 384x384, FFN 2x8, embedding 8; the paper
reports 7.8x, 14.3M parameters, we count 14.66M, 7.5x) and `kroneckerbert21` (48x384, 2x16, 16; the paper 21x,
5.2M, we 5.23M, 20.9x). Another teacher's widths take shapes that divide them (`--student-param mha=192x192`;
written with `x`, so the short form `kronecker:mha=192x192,ffn=2x8` reads back). The paper trains it in two stages: general
KD on Wikipedia, then task KD on the embedding output, attention scores, FFN outputs, logits and labels;
`--objective tinybert` with `--alpha-ce` is that second stage (docs/objectives.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.parts.errors import KdbenchError
from bench.parts.fields import AT_LEAST_ONE
from bench.parts.registry import param
from bench.parts.tasks import TaskSpec
from students.base import StudentBuilder
from students.registry import register_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Table 1 of the paper, for BERT-base: A's shape (n1, m1) of the attention and FFN maps, and the embedding's n
PRESETS = {"kroneckerbert8": ("384x384", "2x8", 8), "kroneckerbert21": ("48x384", "2x16", 16)}


@dataclass(frozen=True)
class KroneckerParams:
    preset: str = param("kroneckerbert8", "Table 1's shapes for a BERT-base teacher (mha, ffn and embedding "
                        "given here override them)", choices=tuple(PRESETS))
    mha: str | None = param(None, "A's shape n1xm1 for Q, K, V and the attention output (default: the preset's)")
    ffn: str | None = param(None, "A's shape n1xm1 for the first FFN map, transposed for the second "
                            "(default: the preset's)")
    embedding: int | None = param(None, "n of the embedding table's B row (default: the preset's)",
                                  range=AT_LEAST_ONE)


@register_student("kronecker", params=KroneckerParams, shorthand="preset", description="KroneckerBERT: the "
                  "teacher with its embeddings, attention and FFN maps as Kronecker products, initialised by the "
                  "nearest Kronecker product, e.g. kronecker:kroneckerbert8 or kronecker:mha=192x192,ffn=2x8")
class Kronecker(StudentBuilder):
    @staticmethod
    def shapes(params: KroneckerParams) -> tuple[tuple[int, int], tuple[int, int], int]:
        """The attention and FFN maps' A shapes (n1, m1) and the embedding's n, presets filled in."""
        mha, ffn, embedding = PRESETS[params.preset]
        pairs = []
        for name, text in (("mha", params.mha or mha), ("ffn", params.ffn or ffn)):
            try:
                n1, m1 = (int(value) for value in text.split("x"))
            except ValueError:
                raise KdbenchError(f"kronecker {name} is A's shape as two integers n1xm1, e.g. 384x384; "
                                   f"got {text!r}") from None
            if min(n1, m1) < 1:
                raise KdbenchError(f"kronecker {name} {text}: each factor must be >= 1")
            pairs.append((n1, m1))
        return pairs[0], pairs[1], params.embedding or embedding

    def check(self, params: KroneckerParams) -> None:
        self.shapes(params)

    def build(self, params: KroneckerParams, teacher: PreTrainedModel | None, task: TaskSpec) -> PreTrainedModel:
        from bench.parts.kronecker import kroneckerize

        mha, ffn, embedding = self.shapes(params)
        return kroneckerize(copy.deepcopy(teacher), mha=mha, ffn=ffn, embedding=embedding, initialise=True)
