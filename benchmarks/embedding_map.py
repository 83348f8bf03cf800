"""The model card's picture of its embeddings: PCA to 50 dimensions, then UMAP to 2D, by label.

Usage: python benchmarks/embedding_map.py ARTIFACT TWEETS_DIR -o map.png [--per-language N] [--variant fp32]

Embeds N tweets of each language file in TWEETS_DIR with `Classifier.predict(...,
embeddings=True)` (scores and embeddings from one pass), reduces them as the card does, and
draws two panels: each tweet coloured by its highest-scoring label (the card colours by the
true label, which these tweets lack) and by language. A random-weight stand-in's picture is
titled as such: it only shows that the recipe runs. Needs scikit-learn, umap-learn and
matplotlib (`pip install umap-learn` beside the evaluate and bench extras).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from vigil.runtime import Classifier


def reduce(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    """The card's reduction: PCA to 50 dimensions (fewer for a narrower model), then UMAP to 2D."""
    import umap
    from sklearn.decomposition import PCA

    components = min(50, embeddings.shape[1], len(embeddings))
    reduced = PCA(n_components=components, random_state=seed).fit_transform(embeddings)
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(reduced)


def draw(points: np.ndarray, panels: dict[str, list[str]], title: str, out: Path) -> None:
    """One scatter panel per colouring in PANELS (name -> one category per point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.5))
    for ax, (name, categories) in zip(np.atleast_1d(axes), panels.items()):
        for category in sorted(set(categories)):
            chosen = [i for i, c in enumerate(categories) if c == category]
            ax.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.6, label=category)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(markerscale=3, fontsize=7, loc="best")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("tweets", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--per-language", type=int, default=250)
    parser.add_argument("--variant", default="fp32")
    args = parser.parse_args()
    languages = {path.stem: path.read_text(encoding="utf-8").split("\n")[: args.per_language]
                 for path in sorted(args.tweets.glob("*.txt"))}
    texts = [text for lines in languages.values() for text in lines]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning: the title says it instead
        classifier = Classifier.open(args.artifact, provider="cpu", variant=args.variant)
    with classifier:
        probabilities, embeddings = classifier.predict(texts, embeddings=True)
        labels, random_weights = classifier.labels, classifier.random_weights
    panels = {
        "highest-scoring label": [labels[i] for i in probabilities.argmax(axis=1)],
        "language": [name for name, lines in languages.items() for _ in lines],
    }
    what = "RANDOM WEIGHTS (a stand-in): meaningless, the recipe only" if random_weights else str(args.artifact)
    components = min(50, embeddings.shape[1], len(embeddings))  # as `reduce` takes them
    title = f"{len(texts)} tweets, pooled output L2-normalised, PCA {components} -> UMAP 2D; {what}"
    draw(reduce(embeddings), panels, title, args.out)


if __name__ == "__main__":
    main()
