"""ensemble-claims harness: settings, data, models, training, the run store, metrics and statistics.

The library knows nothing of pytest; ``fixtures/`` and ``claims/`` build on it.
"""
