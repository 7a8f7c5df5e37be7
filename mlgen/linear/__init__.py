"""Linear binary relevance: TF-IDF and one linear classifier per label. scikit-learn only."""

from mlgen.linear.model import LinearBR

__all__ = ["LinearBR"]
