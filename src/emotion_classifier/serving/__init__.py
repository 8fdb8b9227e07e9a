"""Serving a trained model: the options every serving command shares, the batching queue and `emotion-serve`."""
