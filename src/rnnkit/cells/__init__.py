"""Recurrent cells: the step equations of each cell type, one file each."""

from .base import CellEquations as CellEquations
from .base import RecurrentCell as RecurrentCell
from .elman import ElmanEquations as ElmanEquations
from .elman import RNNCell as RNNCell
from .elman import RNNState as RNNState
from .gru import GRUCell as GRUCell
from .gru import GRUEquations as GRUEquations
from .gru import GRUState as GRUState
from .lstm import LSTMCell as LSTMCell
from .lstm import LSTMEquations as LSTMEquations
from .lstm import LSTMState as LSTMState
from .mingru import LinearRecurrenceEquations as LinearRecurrenceEquations
from .mingru import MinGRUCell as MinGRUCell
from .mingru import MinGRUEquations as MinGRUEquations
from .mingru import MinLSTMCell as MinLSTMCell
from .mingru import MinLSTMEquations as MinLSTMEquations
from .mingru import MinRNNState as MinRNNState

__all__ = [
    "CellEquations",
    "ElmanEquations",
    "GRUCell",
    "GRUEquations",
    "GRUState",
    "LSTMCell",
    "LSTMEquations",
    "LSTMState",
    "LinearRecurrenceEquations",
    "MinGRUCell",
    "MinGRUEquations",
    "MinLSTMCell",
    "MinLSTMEquations",
    "MinRNNState",
    "RNNCell",
    "RNNState",
    "RecurrentCell",
]
