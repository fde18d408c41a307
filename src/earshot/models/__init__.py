"""Pure torch networks (``nn.Module`` only: no training loops, thresholds or I/O).

Importing this package imports torch; nothing on the scoring path imports it.
"""

from earshot.models.cnn import PatchProbabilityModel, SpectrogramCNN
from earshot.models.dense_ae import DenseAutoencoder, FrameErrorModel
from earshot.models.embed import ArcMarginHead, EmbeddingNet
from earshot.models.frugal import ClipScorer, ClipStats, DomainGaussian, DomainKnn, Standardize
from earshot.models.lstm_ae import LstmAutoencoder, SequenceErrorModel

__all__ = ["ArcMarginHead", "ClipScorer", "ClipStats", "DomainGaussian", "DomainKnn", "EmbeddingNet", "Standardize",
           "DenseAutoencoder", "FrameErrorModel", "LstmAutoencoder", "PatchProbabilityModel", "SequenceErrorModel", "SpectrogramCNN"]
