"""Pure torch networks (``nn.Module`` only: no training loops, thresholds or I/O).

Importing this package imports torch; nothing on the scoring path imports it.
"""

from earshot.models.dense_ae import DenseAutoencoder, FrameErrorModel

__all__ = ["DenseAutoencoder", "FrameErrorModel"]
