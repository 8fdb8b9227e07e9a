"""The reference point every model must clear: TF-IDF + one-vs-rest logistic regression."""

from __future__ import annotations

import numpy as np


def tfidf_logreg(max_features: int = 50000, ngram_max: int = 2, C: float = 4.0, seed: int = 0):
    """A scikit-learn pipeline: fit(texts, Y multi-hot) then predict_proba(texts) -> (n, L)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(max_features=max_features, ngram_range=(1, ngram_max), sublinear_tf=True, min_df=2,
                        lowercase=True),
        OneVsRestClassifier(LogisticRegression(C=C, max_iter=1000, solver="liblinear", random_state=seed)),
    )


def fit_predict(train_texts, y_train: np.ndarray, texts_by_split: dict, **kw) -> dict[str, np.ndarray]:
    model = tfidf_logreg(**kw).fit(list(train_texts), y_train.astype(int))
    return {s: model.predict_proba(list(t)) for s, t in texts_by_split.items()}
