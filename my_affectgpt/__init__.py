"""my_affectgpt: config-driven multimodal emotion understanding with LLMs."""

__version__ = "0.1.0"

# Modules whose import registers components (datasets, models, tasks, runners, schedules,
# encoders). CLIs call import_components(); importing the package itself registers nothing.
COMPONENT_MODULES = (
    "my_affectgpt.common.optims",
    "my_affectgpt.runners.runner_iter",
    "my_affectgpt.tasks",
    "my_affectgpt.models",
    "my_affectgpt.datasets.builders",
    "my_affectgpt.datasets.unibench",
    "my_affectgpt.datasets.au_agent_pairs",
)


def import_components() -> None:
    import importlib

    for module in COMPONENT_MODULES:
        importlib.import_module(module)
