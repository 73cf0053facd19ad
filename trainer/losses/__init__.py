"""Losses: multi-label attribute losses (BCE, class-weighted BCE, correlation-weighted BCE)."""
from .attributes import (CorrelationWeightedBCE, MaskedBCE, WeightedBCE, attribute_loss,  # noqa: F401
                         masked_binary_accuracy)
