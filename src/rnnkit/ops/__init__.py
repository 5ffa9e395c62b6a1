"""Tensor operations shared by the layers: masking, the linear-recurrence scan, input checks."""

from .masking import reverse_valid_prefix as reverse_valid_prefix
from .masking import valid_mask as valid_mask
from .masking import zero_padded_steps as zero_padded_steps
from .scan import linear_scan as linear_scan

__all__ = ["linear_scan", "reverse_valid_prefix", "valid_mask", "zero_padded_steps"]
