"""Files in and out of vigil: streamed tables, and writes that land whole or not at all.

Lean like `vigil.runtime` (the standard library and numpy, pyarrow only for Parquet), so that the
command line, export, evaluation and Ray share one reader, one writer and one atomic rename.
"""

__all__: list[str] = []
