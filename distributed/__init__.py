"""vigil.distributed: vigil on Ray Data, for bulk scoring past one machine.

Needs the `ray` extra (`pip install 'vigil[ray]'`); `vigil.runtime` never imports Ray, and
neither does importing this package: Ray is imported when a Dataset is scored.
"""

from .groups import group_scores
from .scoring import Scorer, score_dataset

__all__ = ["Scorer", "group_scores", "score_dataset"]
