"""Calibrating scores into probabilities on dev. NumPy only."""

from __future__ import annotations

import numpy as np

# Newton steps `platt` takes at most, and the change of its parameters at which it stops.
PLATT_STEPS = 50
PLATT_TOLERANCE = 1e-8


def platt(x: np.ndarray, y_true: np.ndarray) -> tuple[float, float]:
    """Platt scaling: `(scale, shift)` minimising the log-loss of `sigmoid(scale * x + shift)`
    against the 0/1 truth, every (document, label) pair one example (Newton's method).

    Args:
        x: scores `(n_docs, num_labels)` (a probability's logit, or a margin).
        y_true: 0/1 `(n_docs, num_labels)`.

    Returns:
        `(scale, shift)`; `(1.0, 0.0)` without both classes.
    """
    x = np.asarray(x, np.float64).ravel()
    y = (np.asarray(y_true) > 0).ravel().astype(np.float64)
    if not x.size or y.min() == y.max():
        return 1.0, 0.0
    params = np.array([1.0, 0.0])
    design = np.stack([x, np.ones_like(x)], axis=1)

    def loss(p):
        z = design @ p
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    current = loss(params)
    for _ in range(PLATT_STEPS):
        p = 0.5 * (1.0 + np.tanh(0.5 * (design @ params)))
        gradient = design.T @ (p - y)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        while True:  # halve a step that does not lower the loss
            trial = params - step
            if loss(trial) <= current or np.abs(step).max() < PLATT_TOLERANCE:
                break
            step = step / 2
        params, previous, current = trial, current, loss(trial)
        if np.abs(step).max() < PLATT_TOLERANCE or previous - current < 1e-12 * max(1.0, abs(previous)):
            break
    return float(params[0]), float(params[1])
