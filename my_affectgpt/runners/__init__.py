"""Training runners. ``runner_iter`` (``runners/runner_iter.py``) registers on import."""
