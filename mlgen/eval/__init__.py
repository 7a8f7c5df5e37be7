"""Scoring predictions: metrics (scikit-learn), decision thresholds, and plots (matplotlib).

No TensorFlow. `plots` imports matplotlib, which nothing else here needs.
"""
