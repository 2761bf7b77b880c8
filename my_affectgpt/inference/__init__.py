"""Inference: generate answers for test datasets, write results as they come, score them.

``cli.main`` is ``inference.py``; ``engine.run`` the dataset loop; ``single_clip`` the
``--video`` mode for one of the user's own clips.
"""
