"""Transfer learning: start a classifier or tagger from a trained language model, and unfreeze
it gradually (ULMFiT, Howard & Ruder 2018).

The language model's embedding and recurrent weights are copied into the new model (for a
bidirectional model, into its forward direction, except the upper layers' input weights, which
read both directions); the new head starts from scratch. With
gradual unfreezing, the first epoch trains only the head, each following epoch unfreezes one
more recurrent layer from the top, and the embedding last.
"""

from __future__ import annotations

from torch import nn

__all__ = ["copy_encoder", "unfreezing_groups", "freeze_for_epoch"]


def copy_encoder(model: nn.Module, language_model: nn.Module) -> tuple[list[str], list[str]]:
    """Copy ``embedding.*`` and ``rnn.*`` weights of ``language_model`` into ``model``.

    Returns (copied, skipped) names. The embedding and the first layer must match (same cell,
    sizes and vocabulary); in a bidirectional model the upper layers' input weights read both
    directions (twice as wide), so they are skipped and start fresh, while their recurrent
    weights are copied into the forward direction.
    """
    source = language_model.state_dict()
    target = model.state_dict()
    copied, skipped = [], []
    for name, value in source.items():
        if not name.startswith(("embedding.", "rnn.")):
            continue
        if name not in target:
            raise ValueError(
                f"model.init_from: the language model has {name}, this model has not; the cell, "
                "number of layers and options must match"
            )
        if target[name].shape != value.shape:
            upper_input = name.startswith("rnn.weight_ih_l") and not name.endswith("_l0")
            if upper_input and getattr(model.rnn, "bidirectional", False):
                skipped.append(name)
                continue
            raise ValueError(
                f"model.init_from: {name} is {tuple(value.shape)} in the language model and "
                f"{tuple(target[name].shape)} here; embedding_dim, hidden_size and the "
                "vocabulary must match"
            )
        target[name] = value
        copied.append(name)
    model.load_state_dict(target)
    return copied, skipped


def unfreezing_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups in unfreezing order: the head (everything that is neither embedding nor
    recurrent), then recurrent layers from the top down, then the embedding."""
    layers = getattr(model.rnn, "num_layers", 1)
    groups: list[list[nn.Parameter]] = [[] for _ in range(layers + 2)]
    for name, parameter in model.named_parameters():
        if name.startswith("embedding."):
            groups[-1].append(parameter)
        elif name.startswith("rnn."):
            layer = int(name.rsplit("_l", 1)[1].split("_")[0])
            groups[layers - layer].append(parameter)
        else:
            groups[0].append(parameter)
    return groups


def freeze_for_epoch(model: nn.Module, epoch: int) -> int:
    """Make the first ``epoch + 1`` groups trainable and the rest frozen; returns how many
    groups train."""
    groups = unfreezing_groups(model)
    trainable = min(epoch + 1, len(groups))
    for k, group in enumerate(groups):
        for parameter in group:
            parameter.requires_grad_(k < trainable)
    return trainable
