"""The component registry: decorator registration, errors, child registries."""
import pytest

from my_affectgpt.common.registry import BUCKETS, Registry, RegistryError, registry


def test_register_and_get_by_decorator():
    reg = Registry()

    @reg.register_task("my_task")
    class MyTask:
        pass

    assert reg.get_task_class("my_task") is MyTask
    assert reg.get("task", "my_task") is MyTask
    assert "my_task" in reg.names("task")


def test_every_bucket_has_shorthands():
    reg = Registry()
    for bucket in BUCKETS:
        obj = object()
        getattr(reg, f"register_{bucket}")("thing")(obj)
        assert getattr(reg, f"get_{bucket}_class")("thing") is obj


def test_registering_a_name_twice_is_an_error():
    reg = Registry()
    reg.register_model("dup")(int)
    with pytest.raises(RegistryError, match="model 'dup' is already registered"):
        reg.register_model("dup")(float)


def test_unknown_name_lists_the_known_names():
    reg = Registry()
    reg.register_runner("runner_a")(int)
    reg.register_runner("runner_b")(float)
    with pytest.raises(RegistryError) as info:
        reg.get_runner_class("runner_c")
    message = str(info.value)
    assert "unknown runner 'runner_c'" in message
    assert "runner_a, runner_b" in message


def test_unknown_bucket_is_an_error():
    with pytest.raises(RegistryError, match="unknown registry bucket 'widgets'"):
        Registry().register("widgets", "x")


def test_child_sees_parent_names_and_does_not_change_the_parent():
    parent = Registry()
    parent.register_task("shared")(int)
    child = parent.child()
    child.register_task("only_in_child")(float)
    assert child.get_task_class("shared") is int
    assert child.get_task_class("only_in_child") is float
    assert "only_in_child" not in parent.names("task")
    with pytest.raises(RegistryError):
        parent.get_task_class("only_in_child")
    with pytest.raises(RegistryError, match="already registered"):
        child.register_task("shared")(str)


def test_production_components_register_on_import():
    import my_affectgpt.common.optims  # noqa: F401
    import my_affectgpt.runners.runner_iter  # noqa: F401

    assert "runner_iter" in registry.names("runner")
    assert "linear_warmup_cosine_lr" in registry.names("lr_scheduler")
