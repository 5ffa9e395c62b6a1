"""Reference implementations: recurrent layers with backpropagation through time written
out by hand in plain NumPy (float64).

Readable first — each backward pass walks the sequence from t = T-1 back to 0, and the
docstrings give the equations and shapes (T time, B batch, I input size, H hidden size) —
and exact second: the gradients equal autograd's on ``torch.nn.RNN``, ``torch.nn.LSTM`` and
``torch.nn.GRU`` (one layer, one direction), whose weight layout the ``*Weights`` classes
copy. Use them to learn BPTT, to test other implementations against, and to look at
``grads.hidden[t]`` = d loss / d h_t, the gradient that vanishes or explodes with distance.

    >>> import numpy as np
    >>> from rnnkit.reference import RNNWeights, rnn_forward, rnn_backward
    >>> rng = np.random.default_rng(0)
    >>> T, B, I, H = 5, 3, 4, 6
    >>> w = RNNWeights(rng.normal(size=(H, I)), rng.normal(size=(H, H)))
    >>> outputs, cache = rnn_forward(rng.normal(size=(T, B, I)), np.zeros((B, H)), w)
    >>> grads = rnn_backward(np.ones((T, B, H)), None, cache)
    >>> grads.weights.weight_hh.shape, grads.hidden.shape
    ((6, 6), (5, 3, 6))
"""

from rnnkit.reference.numpy_bptt import (
    GRUCache,
    GRUGrads,
    GRUWeights,
    LSTMCache,
    LSTMGrads,
    LSTMWeights,
    RNNCache,
    RNNGrads,
    RNNWeights,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)

__all__ = [
    "GRUCache",
    "GRUGrads",
    "GRUWeights",
    "LSTMCache",
    "LSTMGrads",
    "LSTMWeights",
    "RNNCache",
    "RNNGrads",
    "RNNWeights",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
]
