"""rnnkit: recurrent neural networks on PyTorch.

Cells (one step) and layers (whole sequences) for Elman RNNs, LSTMs (peephole, layer-norm,
projection), GRUs and minGRU/minLSTM; torch.nn-compatible where the two overlap, with masking of
padded batches through ``lengths``. ``rnnkit.reference`` holds a NumPy BPTT oracle.
``rnnkit.load(run_dir)`` opens a trained run (``rnnkit train``) ready to predict or generate.
"""

from .api import load as load
from .cells import GRUCell as GRUCell
from .cells import GRUState as GRUState
from .cells import LSTMCell as LSTMCell
from .cells import LSTMState as LSTMState
from .cells import MinGRUCell as MinGRUCell
from .cells import MinLSTMCell as MinLSTMCell
from .cells import MinRNNState as MinRNNState
from .cells import RNNCell as RNNCell
from .cells import RNNState as RNNState
from .kernels import backend as backend
from .layers import GRU as GRU
from .layers import LSTM as LSTM
from .layers import RNN as RNN
from .layers import MinGRU as MinGRU
from .layers import MinLSTM as MinLSTM
from .layers import reference_implementation as reference_implementation

__version__ = "0.1.0"

__all__ = [
    "backend",
    "GRU",
    "load",
    "LSTM",
    "RNN",
    "GRUCell",
    "GRUState",
    "LSTMCell",
    "LSTMState",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "MinRNNState",
    "RNNCell",
    "RNNState",
    "reference_implementation",
]
