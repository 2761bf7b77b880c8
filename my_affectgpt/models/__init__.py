"""Models: AffectGPT, its fusion modules, the frozen encoders and the AU CLIP text encoder.

Importing this package registers the ``affectgpt`` and ``au_agent_lm`` models and the
``CLIP_VIT_LARGE`` / ``HUBERT_LARGE`` encoders.
"""
from my_affectgpt.models import affectgpt, au_agent, encoders  # noqa: F401  (registration)
