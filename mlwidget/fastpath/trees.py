"""Decision trees, random forests / extra trees and gradient boosting, as scikit-learn predicts
them: float32 inputs compared with the float64 thresholds, trees summed in order, boosting adding
``learning_rate * value`` stage by stage."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import TooLarge, Unsupported, sklearn_private

# Trees up to this many nodes in all (and this deep) become generated Python code; larger
# ensembles are walked with numpy, level by level, up to WALK_MAX_NODES (about 50 MB of
# arrays); beyond that the estimator's own predict answers (on the transformed rows).
CODEGEN_MAX_NODES = 60_000
CODEGEN_MAX_DEPTH = 80
WALK_MAX_NODES = 1_000_000
ELSE = -1  # a code generator's stack entry that writes "else:" (node ids are never negative)


def _codegen(trees: list[Any], offsets: list[int]) -> Any:
    """One Python function ``leaves(x) -> (leaf id per tree)`` of nested ifs: the thresholds
    as exact float literals (``repr``), compared with the float32-rounded input as a double,
    as ``Tree.apply`` compares them. The source holds only numbers."""
    lines = ["def leaves(x):"]
    for k, (tree, offset) in enumerate(zip(trees, offsets, strict=True)):
        t = tree.tree_
        left, right = t.children_left.tolist(), t.children_right.tolist()
        feature, threshold = t.feature.tolist(), t.threshold.tolist()
        stack = [(0, 1)]  # (node, indent); else-branches are pushed as (ELSE, indent)
        while stack:
            node, indent = stack.pop()
            pad = "    " * indent
            if node == ELSE:
                lines.append(pad + "else:")
                continue
            if left[node] == -1:
                lines.append(f"{pad}l{k} = {offset + node}")
                continue
            lines.append(f"{pad}if x[{feature[node]}] <= {threshold[node]!r}:")
            stack.append((right[node], indent + 1))
            stack.append((ELSE, indent))
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
        nodes = sum(int(t.tree_.node_count) for t in trees)
        if nodes > WALK_MAX_NODES:
            raise TooLarge(
                f"{nodes:,} tree nodes, more than the {WALK_MAX_NODES:,} copied into arrays "
                "(WALK_MAX_NODES): its own predict is used"
            )
        lefts, rights, features, thresholds, roots = [], [], [], [], []
        offset = 0
        for tree in trees:
            t = tree.tree_
            if t.n_outputs != 1:
                raise Unsupported("trees with several outputs")
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
            raise Unsupported  # too large for float32: scikit-learn refuses it
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


class TreeClassifier:
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


class TreeRegressor:
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


class Boosting:
    """GradientBoostingClassifier / Regressor: init + learning_rate * leaf value, stage by stage."""

    family = "gradient boosting"

    def __init__(self, est: Any, classifier: bool) -> None:
        stages = est.estimators_  # (n_stages, K) regression trees
        if not isinstance(stages, np.ndarray) or stages.ndim != 2:
            raise Unsupported(f"{type(est).__name__}.estimators_ is not a 2-d array of trees")
        from sklearn.dummy import DummyClassifier, DummyRegressor

        init = est.init_
        if not (isinstance(init, str) and init == "zero") and type(init) not in (
            DummyClassifier,
            DummyRegressor,
        ):
            raise Unsupported(
                f"{type(est).__name__} with init={type(init).__name__}: an initial answer that "
                "depends on the row"
            )
        loss = sklearn_private(est, "_loss")
        raw_predict_init = sklearn_private(est, "_raw_predict_init")
        self.K = stages.shape[1]
        n_features = int(est.n_features_in_)
        # constant for these init estimators: computed by the estimator itself, once
        self.init = raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
        trees = [stages[i, k] for i in range(stages.shape[0]) for k in range(self.K)]
        self.walk = _Trees(trees)
        scale = float(est.learning_rate)
        self.contrib = scale * np.concatenate([t.tree_.value[:, 0, 0] for t in trees])
        self.n_stages = stages.shape[0]
        self.classifier = classifier
        self.classes = getattr(est, "classes_", None)
        self.loss = loss

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
        classes = self.classes
        assert classes is not None  # a fitted classifier has classes_
        if raw.ndim == 1:
            return classes[(raw >= 0).astype(int)]
        return classes[np.argmax(raw, axis=1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if not self.classifier:
            return None
        return self.loss.predict_proba(self.raw(X))
