"""Tasks: what to build and how one training step computes its loss."""
from my_affectgpt.tasks import au_agent_lora, video_text_pretrain  # noqa: F401  (registers the tasks)
