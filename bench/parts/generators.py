"""Masked-LM generators as methods use them: load one, name the one a method loads, and score masked
positions cheaply. Building a generator offline (`kdbench make-generator`) is the pipeline's
business (bench/pipeline/generator.py); this is what masked-LM generation and MATE-KD read.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForMaskedLM, PreTrainedModel

from bench.parts.errors import KdbenchError
from bench.parts.hub import hub_reachable
from bench.parts.models import resolve_model


def masked_lm_logits(model: PreTrainedModel, inputs: dict[str, torch.Tensor], selected: torch.Tensor) -> torch.Tensor:
    """The masked LM's logits at the `selected` positions only (a [batch, length] bool mask), as
    [number selected, vocabulary].

    The vocabulary projection costs about as much per token as a whole small encoder, and masked-LM
    training and generation need it at a few positions only. A forward hook on the encoder keeps
    just those positions' hidden states, so the model's own head (whatever its layout) runs on them."""

    def keep_selected(module, args, output):
        output.last_hidden_state = output.last_hidden_state[selected]
        return output

    handle = model.base_model.register_forward_hook(keep_selected)
    try:
        logits = model(**inputs).logits
    finally:
        handle.remove()
    if logits.dim() != 2:
        raise KdbenchError(f"{type(model).__name__}: its head does not read the encoder's last_hidden_state; "
                           "use a BERT-style masked LM")
    return logits


def load_generator(name: str) -> PreTrainedModel:
    """A masked LM with a trained head, in eval mode; an encoder without one is refused."""
    model, info = AutoModelForMaskedLM.from_pretrained(resolve_model(name), output_loading_info=True)
    if info["missing_keys"]:
        raise KdbenchError(f"{name} has no trained masked-LM head (missing {', '.join(sorted(info['missing_keys']))}): "
                           f"build a generator from it with `kdbench make-generator --model {name}` and pass "
                           "--param generator=FOLDER")
    return model.eval()


def generator_name(given: str | None, hub_default: str) -> str:
    """The generator a method loads: the one given, else the method's default from the hub, else an
    error saying how to build one offline."""
    if given:
        return given
    if hub_reachable():
        return hub_default
    raise KdbenchError(f"the hub is unreachable, so the default generator {hub_default} cannot be downloaded: "
                       "build one offline with `kdbench make-generator --task TASK` and pass --param generator=FOLDER")
