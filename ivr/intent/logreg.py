"""Multinomial logistic regression, fitted by L-BFGS on the L2-penalised cross-entropy.

Deterministic: it starts from zero weights and L-BFGS has no randomness, so the same examples
always give the same model (nothing to seed, nothing cached between runs).

L-BFGS is written out here (Nocedal & Wright, Numerical Optimization, 2nd ed., algorithm 7.4
with a backtracking Armijo line search) because scipy's L-BFGS-B makes BLAS calls for every
vector operation, and on a busy machine each one waits on BLAS's thread pool: 1 to 2 s per
training instead of 0.2 s here, and training must stay well under a second at start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.special import log_softmax

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Softmax:
    weights: Array  # (features, classes)
    bias: Array  # (classes,)

    @classmethod
    def fit(
        cls,
        x: sparse.csr_matrix,
        y: npt.NDArray[np.intp],
        n_classes: int,
        *,
        l2: float = 1e-3,
        max_iter: int = 400,
    ) -> Softmax:
        """Minimise mean cross-entropy + `l2`/2 ‖W‖² (the bias is not penalised)."""
        n, d = x.shape
        onehot = np.zeros((n, n_classes))
        onehot[np.arange(n), y] = 1.0

        def loss(theta: Array) -> tuple[float, Array]:
            w = theta[: d * n_classes].reshape(d, n_classes)
            b = theta[d * n_classes :]
            log_p = log_softmax(x @ w + b, axis=1)
            residual = (np.exp(log_p) - onehot) / n
            value = -float(np.sum(onehot * log_p)) / n + 0.5 * l2 * float(np.sum(w * w))
            grad_w = np.asarray(x.T @ residual) + l2 * w
            return value, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

        theta = lbfgs(loss, np.zeros(d * n_classes + n_classes), max_iter=max_iter)
        return cls(
            weights=theta[: d * n_classes].reshape(d, n_classes).copy(),
            bias=theta[d * n_classes :].copy(),
        )

    def log_proba(self, columns: npt.NDArray[np.intp], values: Array) -> Array:
        """Log-probabilities of each class for one sparse row (columns, values)."""
        logits = values @ self.weights[columns] + self.bias
        return np.asarray(log_softmax(logits))


def lbfgs(
    loss: Callable[[Array], tuple[float, Array]],
    start: Array,
    *,
    max_iter: int,
    memory: int = 10,
    gtol: float = 1e-5,
) -> Array:
    """Minimise a smooth convex `loss` (returning value and gradient) from `start`."""
    x = start
    value, grad = loss(x)
    steps: list[tuple[Array, Array, float]] = []  # (s, y, 1 / y·s), newest last
    for _ in range(max_iter):
        if float(np.abs(grad).max()) < gtol:
            break
        # two-loop recursion: direction = -H·grad with H from the last `memory` steps
        q = grad.copy()
        alphas = []
        for s, y, rho in reversed(steps):
            alpha = rho * _dot(s, q)
            alphas.append(alpha)
            q -= alpha * y
        if steps:
            s, y, _ = steps[-1]
            q *= _dot(s, y) / _dot(y, y)
        for (s, y, rho), alpha in zip(steps, reversed(alphas), strict=True):
            q += (alpha - rho * _dot(y, q)) * s
        direction = -q
        slope = _dot(grad, direction)
        if slope >= 0:  # not a descent direction (numerical trouble): restart from -grad
            steps.clear()
            direction, slope = -grad, -_dot(grad, grad)
        step = 1.0
        while True:
            new_x = x + step * direction
            new_value, new_grad = loss(new_x)
            if new_value <= value + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_k, y_k = new_x - x, new_grad - grad
        curvature = _dot(y_k, s_k)
        if curvature > 1e-12:
            steps.append((s_k, y_k, 1.0 / curvature))
            if len(steps) > memory:
                steps.pop(0)
        x, value, grad = new_x, new_value, new_grad
    return x


def _dot(a: Array, b: Array) -> float:
    # Not `a @ b`: a BLAS dot wakes the BLAS thread pool, which on a busy machine costs
    # ~0.5 ms a call (25x the arithmetic); the plain ufunc path stays on this thread.
    return float(np.multiply(a, b).sum())
