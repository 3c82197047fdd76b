"""Kronecker-factorised linear maps and embedding tables, as KroneckerBERT (Tahaei et al., NAACL 2022) builds
its students: a weight `W` (out x in) becomes `A (x) B`, applied without forming it, `(A (x) B) x =
vec(A X B^T)` with `X` the input reshaped to `n1 x n2`; the embedding table's row `i` becomes `A_i (x) b`.
Each factor is initialised by the nearest Kronecker product of the dense weight (Van Loan and Pitsianis: the
rank-1 SVD of the weight rearranged so that each block is a row).

A shape is given as KroneckerBERT's Table 1 gives A's, `(n1, m1)`: input factor, then output factor. The
factorisation a model carries is kept in its config (`kronecker`), so `save_pretrained` writes it and
`bench.parts.models.load_classifier` rebuilds the factorised model before loading its weights. Written by
hand: no library offers Kronecker-factorised layers for transformers.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.parts.errors import KdbenchError

CONFIG_KEY = "kronecker"  # the model config's attribute holding the factorisation (`kroneckerize`)
# per encoder layer of a BERT-like model: the compressed maps, by path, and whether the factor shape is read
# the other way round (the FFN's second map takes the first's shape transposed, so both have the same B)
ATTENTION_MAPS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
FFN_MAPS = (("intermediate.dense", False), ("output.dense", True))


class KroneckerLinear(nn.Module):
    """`y = (A (x) B) x + bias`, with A `m1 x n1` and B `m2 x n2`."""

    def __init__(self, a_shape: tuple[int, int], b_shape: tuple[int, int], bias: bool = True):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(a_shape))
        self.b = nn.Parameter(torch.zeros(b_shape))
        self.bias = nn.Parameter(torch.zeros(a_shape[0] * b_shape[0])) if bias else None

    @property
    def in_features(self) -> int:
        return self.a.shape[1] * self.b.shape[1]

    @property
    def out_features(self) -> int:
        return self.a.shape[0] * self.b.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = x.reshape(*x.shape[:-1], self.a.shape[1], self.b.shape[1])  # X: n1 x n2
        y = (self.a @ grid @ self.b.transpose(0, 1)).reshape(*x.shape[:-1], self.out_features)
        return y + self.bias if self.bias is not None else y

    def dense(self) -> torch.Tensor:
        """The weight `A (x) B` it stands for (out x in), formed: for checks, not for the forward."""
        return torch.kron(self.a, self.b)


class KroneckerEmbedding(nn.Module):
    """An embedding table whose row `i` is `A_i (x) b`: A `vocabulary x d/n`, b a row of `n`."""

    def __init__(self, num_embeddings: int, dim: int, n: int, padding_idx: int | None = None):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(num_embeddings, dim // n))
        self.b = nn.Parameter(torch.zeros(n))
        self.padding_idx = padding_idx

    @property
    def weight(self) -> torch.Tensor:
        """The table it stands for, formed (what code that reads an embedding's `weight` sees)."""
        return torch.kron(self.a, self.b[None])

    @property
    def num_embeddings(self) -> int:
        return self.a.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.a.shape[1] * self.b.shape[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.a[ids]
        return (rows[..., :, None] * self.b).reshape(*ids.shape, self.embedding_dim)


def nearest_kronecker(weight: torch.Tensor, a_shape: tuple[int, int],
                      b_shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A and B minimising `||W - A (x) B||_F`: the leading singular pair of `W` rearranged so that the block
    `W[i m2:(i+1) m2, j n2:(j+1) n2]` is row `i n1 + j`."""
    (m1, n1), (m2, n2) = a_shape, b_shape
    rearranged = weight.detach().float().reshape(m1, m2, n1, n2).permute(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)
    u, s, vh = torch.linalg.svd(rearranged, full_matrices=False)
    scale = s[0].sqrt()
    return (scale * u[:, 0]).reshape(m1, n1), (scale * vh[0]).reshape(m2, n2)


def factor_shapes(out_features: int, in_features: int, shape: tuple[int, int], what: str) -> tuple[tuple[int, int],
                                                                                                   tuple[int, int]]:
    """A's and B's shapes for an `out x in` weight, from A's shape as `(n1, m1)` (input, output factor)."""
    n1, m1 = shape
    if in_features % n1 or out_features % m1:
        raise KdbenchError(f"kronecker {what} {n1}x{m1} does not divide this model's {out_features} x {in_features} "
                           f"weights (input {in_features} by {n1}, output {out_features} by {m1}): give other shapes")
    return (m1, n1), (out_features // m1, in_features // n1)


def kroneckerize(model: nn.Module, *, mha: tuple[int, int], ffn: tuple[int, int], embedding: int,
                 initialise: bool) -> nn.Module:
    """`model` (a BERT-like classifier) with its word embeddings and every layer's attention and FFN maps
    Kronecker-factorised, in place: from their dense weights (`initialise`) or empty, for weights to be loaded.
    The factorisation goes into the config, so that the saved model loads as it was."""
    base = model.base_model
    try:
        word, layers = base.embeddings.word_embeddings, base.encoder.layer
        for layer in layers:
            for path in (*ATTENTION_MAPS, *(path for path, _ in FFN_MAPS)):
                layer.get_submodule(path)
    except AttributeError:
        raise KdbenchError(f"a Kronecker-factorised student is built from a BERT-like model (embeddings."
                           f"word_embeddings, encoder.layer[i].{ATTENTION_MAPS[0]}, ...), not "
                           f"{type(model).__name__}") from None
    dim = word.embedding_dim if hasattr(word, "embedding_dim") else word.weight.shape[1]
    if dim % embedding:
        raise KdbenchError(f"kronecker embedding {embedding} does not divide this model's hidden size {dim}")
    table = KroneckerEmbedding(word.num_embeddings, dim, embedding, word.padding_idx)
    if initialise:
        a, b = nearest_kronecker(word.weight, (word.num_embeddings, dim // embedding), (1, embedding))
        table.a.data.copy_(a), table.b.data.copy_(b[0])
    base.embeddings.word_embeddings = table
    for layer in layers:
        for path, swapped in [(path, False) for path in ATTENTION_MAPS] + list(FFN_MAPS):
            shape = mha if path in ATTENTION_MAPS else (ffn[::-1] if swapped else ffn)
            parent_path, _, name = path.rpartition(".")
            parent = layer.get_submodule(parent_path)
            dense = getattr(parent, name)
            a_shape, b_shape = factor_shapes(dense.out_features, dense.in_features, shape,
                                             "mha" if path in ATTENTION_MAPS else "ffn")
            factored = KroneckerLinear(a_shape, b_shape, bias=dense.bias is not None)
            if initialise:
                a, b = nearest_kronecker(dense.weight, a_shape, b_shape)
                factored.a.data.copy_(a), factored.b.data.copy_(b)
                if dense.bias is not None:
                    factored.bias.data.copy_(dense.bias.detach())
            setattr(parent, name, factored.to(dense.weight.device))
    setattr(model.config, CONFIG_KEY, {"mha": list(mha), "ffn": list(ffn), "embedding": embedding})
    return model
