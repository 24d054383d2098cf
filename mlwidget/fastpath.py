"""A fast path for few-row predictions: the fitted pipeline compiled into plain arrays.

scikit-learn's ``Pipeline.predict`` on a one-row DataFrame spends milliseconds on validation and
pandas work for what is a few hundred floating-point operations. :func:`compile_model` reads what
a prediction needs from the fitted mlwidget pipeline (see ``estimators.build_pipeline``) once:
the feature order and dtypes, each category's one-hot position, the imputation values, the
scaling arrays, and the estimator's own fitted arrays. :class:`FastPredictor` then answers a few
rows (a dict, records, a small DataFrame or a GET query) with numpy on those arrays. Larger
frames use :meth:`FastPredictor.predict_frame`: the same transform, vectorized, then the
estimator's own predict (no ColumnTransformer).

The answers are exactly the pipeline's: inputs are cast as ``schema.cast`` casts them, the
transformed matrix is bit-for-bit what the ColumnTransformer produces, and each estimator family
repeats scikit-learn's own arithmetic in the same order (trees compare float32 inputs with their
float64 thresholds and sum the trees in order, boosting adds ``learning_rate * value`` stage by
stage, linear models use the same matrix product and link). Whatever is not covered (another
pipeline shape, an estimator without a compiled family, an input that is unusual in any way:
a value that needs pandas to cast, a missing column, a non-finite number) returns ``None``, and
the caller runs the full pipeline, which gives the answer or the error it always gave.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .estimators import to_jsonable

MAX_ROWS = 64
_MISSING = None
_INT_LIMIT = 2**53
# Strings that float() and pandas.to_numeric read identically (verified on 200,000 samples);
# anything else (blanks aside) is left to the pipeline path, which casts with pandas.
# (ASCII digits only: float() also reads other scripts' digits, pandas does not.)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)


class _Unsupported(Exception):
    """This input (or model) is for the full pipeline."""


class _TooLarge(_Unsupported):
    """Trees too large to copy into arrays: the estimator's own predict answers."""


# ---------------------------------------------------------------------------------------------
# casting one value as schema.cast does


def _as_number(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return None if value != value else value
    if kind is str:
        if _NUMBER.match(value):
            if len(value) > 16 and "." not in value and "e" not in value and "E" not in value:
                raise _Unsupported  # long integers: pandas may read them as uint64
            return float(value)
        if not value.strip():
            return None
        raise _Unsupported
    if value is None:
        return None
    if kind is int:
        if -_INT_LIMIT <= value <= _INT_LIMIT:
            return float(value)
        raise _Unsupported
    if isinstance(value, np.floating | np.integer) and not isinstance(value, np.bool_):
        out = float(value)
        if isinstance(value, np.integer) and not -_INT_LIMIT <= out <= _INT_LIMIT:
            raise _Unsupported
        return None if out != out else out
    raise _Unsupported  # bools, nested values, pandas NA, dates...


def _as_text(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return None if value == "" else value
    if value is None:
        return None
    if kind is float:
        if value != value:
            return None
        return str(int(value)) if value.is_integer() else str(value)
    if kind is int and -_INT_LIMIT <= value <= _INT_LIMIT:
        return str(value)
    raise _Unsupported


# ---------------------------------------------------------------------------------------------
# input shapes -> {feature: [values]}


def _columns_from_query(args: Mapping[str, Any], names: list[str]) -> dict[str, list[Any]]:
    cols = {k: v for k, v in args.items() if not k.startswith("_")}
    n = None
    for values in cols.values():
        if not isinstance(values, list | tuple):
            raise _Unsupported
        if n is None:
            n = len(values)
        elif len(values) != n:
            raise _Unsupported  # ragged: from_query's message
    if not n or n > MAX_ROWS:
        raise _Unsupported
    out = {}
    for name in names:
        values = cols.get(name)
        if values is None:
            raise _Unsupported  # missing feature: _features_frame's message
        out[name] = [
            None
            if v == "" or v == b""
            else (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
            for v in values
        ]
    return out


def _columns_from_data(data: Any, names: list[str]) -> dict[str, list[Any]]:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if not 0 < len(data) <= MAX_ROWS or not data.columns.is_unique:
            raise _Unsupported
        out = {}
        for name in names:
            if name not in data.columns:
                raise _Unsupported
            col = data[name]
            if col.dtype.kind not in "iufO":
                raise _Unsupported
            out[name] = col.tolist()
        return out
    if isinstance(data, Mapping):
        if not data or ("url" in data and ("table" in data or "query" in data)):
            raise _Unsupported
        values = list(data.values())
        if all(type(v) is list for v in values):  # {column: [values]}
            lengths = {len(v) for v in values}
            if len(lengths) != 1 or not 0 < lengths.pop() <= MAX_ROWS:
                raise _Unsupported
            if not all(name in data for name in names):
                raise _Unsupported
            return {name: list(data[name]) for name in names}
        if any(isinstance(v, list | dict | tuple) for v in values):
            raise _Unsupported
        rows = [data]  # one record
    elif isinstance(data, list | tuple):
        if not 0 < len(data) <= MAX_ROWS or not all(isinstance(r, Mapping) for r in data):
            raise _Unsupported
        rows = list(data)
    else:
        raise _Unsupported
    out = {}
    for name in names:
        if not any(name in row for row in rows):
            raise _Unsupported
        out[name] = [row.get(name) for row in rows]
    return out


# ---------------------------------------------------------------------------------------------
# estimator families


class _Linear:
    family = "linear"

    def __init__(self, est: Any, classifier: bool) -> None:
        from sklearn.linear_model import LogisticRegression

        coef = est.coef_
        if not isinstance(coef, np.ndarray) or coef.dtype != np.float64:
            raise _Unsupported
        self.coef_t = coef.T if coef.ndim == 2 else coef
        self.intercept = est.intercept_
        self.classifier = classifier
        self.classes = getattr(est, "classes_", None)
        own = getattr(type(est), "predict_proba", None)
        self.softmax_proba = classifier and own is LogisticRegression.predict_proba

    def scores(self, X: np.ndarray) -> np.ndarray:
        scores = X @ self.coef_t + self.intercept
        if self.classifier and scores.ndim > 1 and scores.shape[1] == 1:
            return scores.reshape(-1)
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.scores(X)
        if not self.classifier:
            return scores
        if scores.ndim == 1:
            return self.classes.take((scores > 0).astype(np.intp), axis=0)
        return self.classes.take(np.argmax(scores, axis=1), axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if not self.softmax_proba:
            return None
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        if self.classes.shape[0] <= 2:
            prob = self.scores(X)
            prob = expit(prob, out=prob)
            if prob.ndim == 1:
                return np.stack([1 - prob, prob], axis=1)
            return None
        return softmax(self.scores(X), copy=False)


# Trees up to this many nodes in all (and this deep) become generated Python code; larger
# ensembles are walked with numpy, level by level, up to WALK_MAX_NODES (about 50 MB of
# arrays); beyond that the estimator's own predict answers (on the transformed rows).
CODEGEN_MAX_NODES = 60_000
CODEGEN_MAX_DEPTH = 80
WALK_MAX_NODES = 1_000_000


def _codegen(trees: list[Any], offsets: list[int]) -> Any:
    """One Python function ``leaves(x) -> (leaf id per tree)`` of nested ifs: the thresholds
    as exact float literals (``repr``), compared with the float32-rounded input as a double,
    as ``Tree.apply`` compares them. The source holds only numbers."""
    lines = ["def leaves(x):"]
    for k, (tree, offset) in enumerate(zip(trees, offsets, strict=True)):
        t = tree.tree_
        left, right = t.children_left.tolist(), t.children_right.tolist()
        feature, threshold = t.feature.tolist(), t.threshold.tolist()
        stack = [(0, 1)]  # (node, indent); else-branches are pushed as ("else", indent)
        while stack:
            node, indent = stack.pop()
            pad = "    " * indent
            if node == "else":
                lines.append(pad + "else:")
                continue
            if left[node] == -1:
                lines.append(f"{pad}l{k} = {offset + node}")
                continue
            lines.append(f"{pad}if x[{feature[node]}] <= {threshold[node]!r}:")
            stack.append((right[node], indent + 1))
            stack.append(("else", indent))
            stack.append((left[node], indent + 1))
    lines.append(f"    return ({', '.join(f'l{k}' for k in range(len(trees)))},)")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<mlwidget.fastpath trees>", "exec"), namespace)
    return namespace["leaves"]


class _Trees:
    """Decision trees, random forests / extra trees, and gradient boosting (regression trees).

    Inputs are rounded to float32 first, as ``Tree.apply`` reads them. Small ensembles run as
    generated code (:func:`_codegen`); large ones are laid end to end in flat arrays and walked
    together with numpy, level by level, a leaf pointing to itself.
    """

    def __init__(self, trees: list[Any]) -> None:
        if sum(int(t.tree_.node_count) for t in trees) > WALK_MAX_NODES:
            raise _TooLarge
        lefts, rights, features, thresholds, roots = [], [], [], [], []
        offset = 0
        for tree in trees:
            t = tree.tree_
            if t.n_outputs != 1:
                raise _Unsupported
            left = t.children_left.astype(np.int32)
            right = t.children_right.astype(np.int32)
            ids = np.arange(t.node_count, dtype=np.int32)
            leaf = left == -1
            left = np.where(leaf, ids, left) + offset
            right = np.where(leaf, ids, right) + offset
            lefts.append(left)
            rights.append(right)
            features.append(np.where(leaf, 0, t.feature).astype(np.int32))
            thresholds.append(np.where(leaf, np.inf, t.threshold))
            roots.append(offset)
            offset += t.node_count
        self.children = np.stack([np.concatenate(lefts), np.concatenate(rights)], axis=1)
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate(thresholds)
        self.roots = np.asarray(roots, dtype=np.int32)
        self.is_leaf = self.children[:, 0] == np.arange(offset)
        self.depth = max(int(t.tree_.max_depth) for t in trees)
        self.code = None
        if offset <= CODEGEN_MAX_NODES and self.depth <= CODEGEN_MAX_DEPTH:
            self.code = _codegen(trees, roots)

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Global leaf ids, shape (n_rows, n_trees)."""
        with np.errstate(over="ignore"):
            X32 = X.astype(np.float32)
        if not np.isfinite(X32).all():
            raise _Unsupported  # too large for float32: scikit-learn refuses it
        X32 = X32.astype(np.float64)
        if self.code is not None:
            code = self.code
            return np.array([code(row) for row in X32.tolist()], dtype=np.intp)
        n = X.shape[0]
        node = np.broadcast_to(self.roots, (n, self.roots.shape[0])).copy()
        rows = np.arange(n)[:, None]
        children, feature, threshold, is_leaf = (
            self.children,
            self.feature,
            self.threshold,
            self.is_leaf,
        )
        for step in range(self.depth):
            right = X32[rows, feature[node]] > threshold[node]
            node = children[node, right.view(np.int8)]
            if step % 4 == 3 and is_leaf[node].all():
                break
        return node


class _TreeClassifier:
    def __init__(self, est: Any, trees: list[Any], forest: bool) -> None:
        self.family = "forest" if forest else "tree"
        self.walk = _Trees(trees)
        self.classes = est.classes_
        n_classes = int(est.n_classes_)
        # tree_.predict(X)[:, :n_classes]: the leaf's stored class fractions
        self.values = np.concatenate([t.tree_.value[:, 0, :n_classes] for t in trees])
        self.forest = forest
        self.n_trees = len(trees)
        self.n_classes = n_classes

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        leaves = self.walk.leaves(X)  # (n, T)
        per_tree = self.values[leaves]  # (n, T, C)
        if not self.forest:
            return per_tree[:, 0, :]
        # ForestClassifier: zeros, then += each tree's proba in order, then / n_trees
        n = X.shape[0]
        stacked = np.concatenate([np.zeros((n, 1, self.n_classes)), per_tree], axis=1)
        total = np.cumsum(stacked, axis=1)[:, -1, :]
        total /= self.n_trees
        return total

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes.take(np.argmax(self.predict_proba(X), axis=1), axis=0)


class _TreeRegressor:
    def __init__(self, est: Any, trees: list[Any], forest: bool) -> None:
        self.family = "forest" if forest else "tree"
        self.walk = _Trees(trees)
        self.values = np.concatenate([t.tree_.value[:, 0, 0] for t in trees])
        self.forest = forest
        self.n_trees = len(trees)

    def predict(self, X: np.ndarray) -> np.ndarray:
        per_tree = self.values[self.walk.leaves(X)]  # (n, T)
        if not self.forest:
            return per_tree[:, 0]
        n = X.shape[0]
        stacked = np.concatenate([np.zeros((n, 1)), per_tree], axis=1)
        total = np.cumsum(stacked, axis=1)[:, -1]
        total /= self.n_trees
        return total

    def predict_proba(self, X: np.ndarray) -> None:
        return None


class _Boosting:
    """GradientBoostingClassifier / Regressor: init + learning_rate * leaf value, stage by stage."""

    family = "gradient boosting"

    def __init__(self, est: Any, classifier: bool) -> None:
        stages = est.estimators_  # (n_stages, K) regression trees
        if not isinstance(stages, np.ndarray) or stages.ndim != 2:
            raise _Unsupported
        from sklearn.dummy import DummyClassifier, DummyRegressor

        init = est.init_
        if not (isinstance(init, str) and init == "zero") and type(init) not in (
            DummyClassifier,
            DummyRegressor,
        ):
            raise _Unsupported  # an init estimator whose answer depends on the row
        self.K = stages.shape[1]
        n_features = int(est.n_features_in_)
        # constant for these init estimators: computed by the estimator itself, once
        self.init = est._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
        trees = [stages[i, k] for i in range(stages.shape[0]) for k in range(self.K)]
        self.walk = _Trees(trees)
        scale = float(est.learning_rate)
        self.contrib = scale * np.concatenate([t.tree_.value[:, 0, 0] for t in trees])
        self.n_stages = stages.shape[0]
        self.classifier = classifier
        self.classes = getattr(est, "classes_", None)
        self.loss = est._loss

    def raw(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        parts = self.contrib[self.walk.leaves(X)].reshape(n, self.n_stages, self.K)
        stacked = np.concatenate([np.broadcast_to(self.init, (n, 1, self.K)), parts], axis=1)
        raw = np.cumsum(stacked, axis=1)[:, -1, :]
        return raw.ravel() if self.K == 1 else raw

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = self.raw(X)
        if not self.classifier:
            return raw
        if raw.ndim == 1:
            return self.classes[(raw >= 0).astype(int)]
        return self.classes[np.argmax(raw, axis=1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if not self.classifier:
            return None
        return self.loss.predict_proba(self.raw(X))


class _NaiveBayes:
    family = "naive bayes"

    def __init__(self, est: Any) -> None:
        import sklearn.naive_bayes as nb

        self.est = est
        self.classes = est.classes_
        self.logsumexp = nb._logsumexp
        self.binarize = getattr(est, "binarize", None) if isinstance(est, nb.BernoulliNB) else None
        self.bernoulli = isinstance(est, nb.BernoulliNB)

    def jll(self, X: np.ndarray) -> np.ndarray:
        if self.bernoulli and self.binarize is not None:
            from sklearn.preprocessing import binarize

            X = binarize(X, threshold=self.binarize)
        return self.est._joint_log_likelihood(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(self.jll(X), axis=1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        jll = self.jll(X)
        log_prob_x = self.logsumexp(jll, axis=1)
        return np.exp(jll - np.atleast_2d(log_prob_x).T)


class _OwnPredict:
    """The estimator's own predict on the transformed rows: skips the DataFrame and the column
    transformer, which is most of the cost (k-neighbours and any other classifier/regressor)."""

    def __init__(self, est: Any, family: str) -> None:
        self.est = est
        self.family = family

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.est.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        return self.est.predict_proba(X) if hasattr(self.est, "predict_proba") else None


def _family(est: Any, kind: str) -> Any:
    try:
        return _compiled_family(est, kind)
    except _TooLarge:
        return _OwnPredict(est, f"{type(est).__name__}.predict")


def _compiled_family(est: Any, kind: str) -> Any:
    from sklearn import ensemble, naive_bayes, neighbors, tree
    from sklearn.linear_model import ElasticNet
    from sklearn.linear_model._base import LinearClassifierMixin, LinearModel

    cls = type(est)
    if kind == "classifier":
        # Linear models: scikit-learn's decision function, not overridden (subclasses that
        # override predict only for its docstring pass; the self-check catches any other).
        if (
            isinstance(est, LinearClassifierMixin)
            and cls.decision_function is LinearClassifierMixin.decision_function
        ):
            return _Linear(est, classifier=True)
        base = tree._classes.BaseDecisionTree
        if (
            isinstance(est, tree.DecisionTreeClassifier)
            and cls.predict is base.predict
            and cls.predict_proba is tree.DecisionTreeClassifier.predict_proba
        ):
            return _TreeClassifier(est, [est], forest=False)
        forest = ensemble._forest.ForestClassifier
        if (
            isinstance(est, forest)
            and cls.predict is forest.predict
            and cls.predict_proba is forest.predict_proba
            and est.n_outputs_ == 1
            and all(type(t).predict_proba is tree.DecisionTreeClassifier.predict_proba for t in est)
        ):
            return _TreeClassifier(est, list(est.estimators_), forest=True)
        if cls is ensemble.GradientBoostingClassifier:
            return _Boosting(est, classifier=True)
        if cls in (naive_bayes.GaussianNB, naive_bayes.BernoulliNB):
            return _NaiveBayes(est)
        if cls is neighbors.KNeighborsClassifier:
            return _OwnPredict(est, "k-neighbours")
        return _OwnPredict(est, f"{cls.__name__}.predict")
    if kind == "regressor":
        if isinstance(est, LinearModel) and cls._decision_function in (
            LinearModel._decision_function,
            ElasticNet._decision_function,  # for dense input: LinearModel's
        ):
            return _Linear(est, classifier=False)
        base = tree._classes.BaseDecisionTree
        if isinstance(est, tree.DecisionTreeRegressor) and cls.predict is base.predict:
            return _TreeRegressor(est, [est], forest=False)
        forest = ensemble._forest.ForestRegressor
        if (
            isinstance(est, forest)
            and cls.predict is forest.predict
            and est.n_outputs_ == 1
            and all(type(t).predict is base.predict for t in est)
        ):
            return _TreeRegressor(est, list(est.estimators_), forest=True)
        if cls is ensemble.GradientBoostingRegressor:
            return _Boosting(est, classifier=False)
        if cls is neighbors.KNeighborsRegressor:
            return _OwnPredict(est, "k-neighbours")
        return _OwnPredict(est, f"{cls.__name__}.predict")
    raise _Unsupported


# ---------------------------------------------------------------------------------------------
# the compiled model


class FastPredictor:
    """Few-row predictions from the compiled arrays. Immutable once built (thread-safe)."""

    def __init__(self, pipeline: Any, features: list[dict[str, Any]], kind: str) -> None:
        import pandas as pd
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise _Unsupported
        ct, est = pipeline.steps[0][1], pipeline.steps[1][1]
        if type(ct) is not ColumnTransformer or ct.sparse_threshold != 0:
            raise _Unsupported
        if getattr(est, "n_features_in_", None) is None:
            raise _Unsupported
        dtypes = {f["name"]: f["dtype"] for f in features}
        kinds = {f["name"]: f["kind"] for f in features}
        self.names = [f["name"] for f in features]
        self.dtypes = [dtypes[n] for n in self.names]
        self.cats: list[tuple[str, Any, dict[Any, int], int]] = []
        self.nums: list[str] = []
        width = 0
        num_slice = None
        for name, trans, cols in ct.transformers_:
            if name == "remainder":
                if trans != "drop":
                    raise _Unsupported
                continue
            if not isinstance(cols, list) or not all(c in dtypes for c in cols):
                raise _Unsupported
            if type(trans) is not Pipeline or len(trans.steps) != 2:
                raise _Unsupported
            imp, second = trans.steps[0][1], trans.steps[1][1]
            if type(imp) is not SimpleImputer or imp.add_indicator:
                raise _Unsupported
            if imp.missing_values == imp.missing_values:  # only NaN is treated as missing
                raise _Unsupported
            fills = list(imp.statistics_)
            if len(fills) != len(cols) or any(v != v for v in fills):
                raise _Unsupported  # an all-missing column: the imputer drops it
            block = ct.output_indices_[name]
            if name == "cat" and type(second) is OneHotEncoder:
                enc = second
                if (
                    enc.handle_unknown != "ignore"
                    or enc.drop_idx_ is not None
                    or getattr(enc, "_infrequent_enabled", False)
                    or enc.dtype not in (np.float64, float)
                    or any(kinds[c] != "category" for c in cols)
                ):
                    raise _Unsupported
                offset = block.start
                for col, fill, cats in zip(cols, fills, enc.categories_, strict=True):
                    mapping = {v: i for i, v in enumerate(cats.tolist())}
                    fill = fill.item() if isinstance(fill, np.generic) else fill
                    self.cats.append((col, fill, mapping, offset))
                    offset += len(cats)
                if offset != block.stop:
                    raise _Unsupported
            elif name == "num" and type(second) is StandardScaler:
                sc = second
                if any(kinds[c] != "number" or dtypes[c] != "number" for c in cols):
                    raise _Unsupported
                if block.stop - block.start != len(cols):
                    raise _Unsupported
                self.nums = list(cols)
                self.num_fill = np.asarray(fills, dtype=np.float64)
                self.num_mean = sc.mean_ if sc.with_mean else None
                self.num_scale = sc.scale_ if sc.with_std else None
                num_slice = block
            else:
                raise _Unsupported
            width = max(width, block.stop)
        if width != est.n_features_in_:
            raise _Unsupported
        self.width = width
        self.num_slice = num_slice
        self.sklearn_estimator = est
        self.cat_index = {c[0]: pd.Index(list(c[2]), dtype=object) for c in self.cats}
        self.estimator = _family(est, kind)
        self.family = self.estimator.family
        if not isinstance(self.estimator, _OwnPredict):
            self._self_check(est, kind)
        classes = getattr(pipeline, "classes_", None) if kind == "classifier" else None
        self.classes_json = to_jsonable(np.asarray(classes)) if classes is not None else None

    def _self_check(self, est: Any, kind: str) -> None:
        """Compare with the estimator's own answers on a few probe rows: a scikit-learn version
        whose arithmetic differs from what this module repeats is left to the pipeline."""
        rng = np.random.default_rng(0)
        n = 8
        X = np.zeros((n, self.width))
        for _, _, mapping, offset in self.cats:
            for row in range(n):
                j = int(rng.integers(0, len(mapping) + 1))
                if j < len(mapping):
                    X[row, offset + j] = 1.0
        if self.nums:
            X[:, self.num_slice] = rng.normal(size=(n, len(self.nums)))
        ours, theirs = np.asarray(self.estimator.predict(X)), np.asarray(est.predict(X))
        if ours.shape != theirs.shape:
            raise _Unsupported
        if kind == "classifier":
            if not np.array_equal(ours, theirs):
                raise _Unsupported
        elif not np.allclose(ours, theirs, rtol=1e-12, atol=1e-12):
            raise _Unsupported
        proba = self.estimator.predict_proba(X)
        if proba is not None:
            expected = est.predict_proba(X)
            if proba.shape != expected.shape or not np.allclose(
                proba, expected, rtol=1e-12, atol=1e-12
            ):
                raise _Unsupported

    @property
    def label(self) -> str:
        return f"fast ({self.family})"

    # -------------------------------------------------------------------------------- steps

    def _cast(self, cols: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out = {}
        for name, dtype in zip(self.names, self.dtypes, strict=True):
            convert = _as_number if dtype == "number" else _as_text
            out[name] = [convert(v) for v in cols[name]]
        return out

    def _transform(self, cols: dict[str, list[Any]]) -> np.ndarray:
        n = len(cols[self.names[0]])
        X = np.zeros((n, self.width))
        for name, fill, mapping, offset in self.cats:
            for row, value in enumerate(cols[name]):
                if type(value) is float and not math.isfinite(value):
                    # the pipeline either rejects it or encodes it as unknown, depending on the
                    # other categorical columns' types: let it decide
                    raise _Unsupported
                j = mapping.get(fill if value is None else value)
                if j is not None:
                    X[row, offset + j] = 1.0
        if self.nums:
            V = np.array([cols[name] for name in self.nums], dtype=np.float64).T
            missing = np.isnan(V)
            if missing.any():
                V[missing] = np.broadcast_to(self.num_fill, V.shape)[missing]
            if not np.isfinite(V).all():
                raise _Unsupported  # the pipeline rejects infinities with its own message
            if self.num_mean is not None:
                V -= self.num_mean
            if self.num_scale is not None:
                V /= self.num_scale
            X[:, self.num_slice] = V
        if not np.isfinite(X).all():
            raise _Unsupported
        return X

    def _transform_frame(self, frame: Any) -> np.ndarray:
        """The ColumnTransformer's matrix for a cast feature frame of any size, vectorized."""
        n = len(frame)
        X = np.zeros((n, self.width))
        for name, fill, _mapping, offset in self.cats:
            col = frame[name]
            if col.dtype.kind == "f" and np.isinf(col.to_numpy()).any():
                raise _Unsupported  # as in _transform
            if col.hasnans:
                col = col.fillna(fill)
            codes = self.cat_index[name].get_indexer(col.astype(object))
            known = np.flatnonzero(codes >= 0)
            X[known, offset + codes[known]] = 1.0
        if self.nums:
            V = frame[self.nums].to_numpy(dtype=np.float64, copy=True)
            missing = np.isnan(V)
            if missing.any():
                V[missing] = np.broadcast_to(self.num_fill, V.shape)[missing]
            if not np.isfinite(V).all():
                raise _Unsupported
            if self.num_mean is not None:
                V -= self.num_mean
            if self.num_scale is not None:
                V /= self.num_scale
            X[:, self.num_slice] = V
        return X

    def predict_frame(self, frame: Any, proba: bool = False) -> Any:
        """The pipeline's answer for a cast feature frame of any size (None: run the pipeline):
        the compiled transform, then the estimator's own predict / predict_proba on the same
        matrix the column transformer would have given it."""
        try:
            X = self._transform_frame(frame)
            est = self.sklearn_estimator
            return est.predict_proba(X) if proba else est.predict(X)
        except Exception:
            return None

    def rows(self, data: Any = None, query: Mapping[str, Any] | None = None) -> np.ndarray:
        """The transformed matrix for the input (raises _Unsupported to defer to the pipeline)."""
        if query is not None:
            cols = _columns_from_query(query, self.names)
        else:
            cols = _columns_from_data(data, self.names)
        return self._transform(self._cast(cols))

    # -------------------------------------------------------------------------------- answers

    def predict(self, data: Any = None, query: Mapping[str, Any] | None = None) -> list | None:
        """JSON-able predictions, or None when the pipeline must answer."""
        try:
            X = self.rows(data, query)
            out = self.estimator.predict(X)
        except Exception:
            return None
        return to_jsonable(np.asarray(out))

    def predict_proba(
        self, data: Any = None, query: Mapping[str, Any] | None = None
    ) -> list[dict[Any, float]] | None:
        if self.classes_json is None:
            return None
        try:
            X = self.rows(data, query)
            proba = self.estimator.predict_proba(X)
        except Exception:
            return None
        if proba is None:
            return None
        classes = self.classes_json
        return [dict(zip(classes, map(float, row), strict=True)) for row in proba]


# ---------------------------------------------------------------------------------------------
# bulk helper: the same results as estimators.to_jsonable, without a call per value


def jsonable(values: Any) -> Any:
    """``estimators.to_jsonable(np.asarray(values))``, without a Python call per value when the
    array is plain numbers."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub" or (arr.dtype.kind == "f" and np.isfinite(arr).all()):
        return arr.tolist()
    return to_jsonable(arr)


def compile_model(
    pipeline: Any, features: list[dict[str, Any]] | None, kind: str | None
) -> FastPredictor | None:
    """The fast predictor for a fitted mlwidget pipeline, or None if it is not covered."""
    if pipeline is None or not features or kind not in ("classifier", "regressor"):
        return None
    try:
        return FastPredictor(pipeline, features, kind)
    except Exception:
        return None
