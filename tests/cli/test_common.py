"""The checks local `vigil classify` and `vigil classify --ray` share."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_rows

from vigil.cli.common import refuse_overwriting
from vigil.files import tables
from vigil.runtime.errors import InputError


def test_a_column_the_scores_would_replace_is_refused(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.csv", [{"text": "hi", "post7geo10": "0.5", "other": "x"}])
    with tables.open_table(str(source), "csv", "text") as table:
        refuse_overwriting(table, ["pre7geo10", "post7geo10_pred"])  # no clash: nothing raised
        with pytest.raises(InputError, match=r"in.csv already has the columns 'post7geo10', which the scores"):
            refuse_overwriting(table, ["pre7geo10", "post7geo10"])
