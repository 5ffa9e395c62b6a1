"""The recurrent stack of a task model, chosen by name."""

from __future__ import annotations

from torch import nn

from ..layers import GRU, LSTM, RNN, MinGRU, MinLSTM

__all__ = ["CELLS", "make_recurrent"]

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu", "mingru", "minlstm")


def make_recurrent(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    layer_norm: bool = False,
) -> nn.Module:
    """A batch-first rnnkit layer: (B, T, input_size) -> (B, T, hidden_size * directions).

    ``dropout`` applies between stacked layers (a single layer has none).
    """
    dropout = dropout if num_layers > 1 else 0.0
    common = dict(
        num_layers=num_layers, batch_first=True, dropout=dropout, bidirectional=bidirectional
    )
    if cell in ("mingru", "minlstm"):
        if recurrent_dropout or layer_norm:
            raise ValueError(
                f"model.cell={cell!r} takes neither recurrent_dropout nor layer_norm; got "
                f"recurrent_dropout={recurrent_dropout}, layer_norm={layer_norm}"
            )
        layer = MinGRU if cell == "mingru" else MinLSTM
        return layer(input_size, hidden_size, **common)
    if cell == "lstm":
        return LSTM(
            input_size,
            hidden_size,
            **common,
            recurrent_dropout=recurrent_dropout,
            layer_norm=layer_norm,
        )
    if cell == "gru":
        return GRU(
            input_size,
            hidden_size,
            **common,
            recurrent_dropout=recurrent_dropout,
            layer_norm=layer_norm,
        )
    if cell in ("rnn_tanh", "rnn_relu"):
        if layer_norm:
            raise ValueError(f"model.cell={cell!r} has no layer_norm variant; got layer_norm=True")
        return RNN(
            input_size,
            hidden_size,
            **common,
            nonlinearity=cell.removeprefix("rnn_"),
            recurrent_dropout=recurrent_dropout,
        )
    raise ValueError(f"model.cell: expected one of {CELLS}, got {cell!r}")
