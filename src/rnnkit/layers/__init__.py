"""Sequence layers: the time loop, stacking and directions, and the public layer classes."""

from .dispatch import reference_implementation as reference_implementation
from .minrnn import MinGRU as MinGRU
from .minrnn import MinLSTM as MinLSTM
from .torch_compat import GRU as GRU
from .torch_compat import LSTM as LSTM
from .torch_compat import RNN as RNN

__all__ = ["GRU", "LSTM", "RNN", "MinGRU", "MinLSTM", "reference_implementation"]
