"""The exported-program cache's key texts: stable across processes, sensitive to what matters."""

import dataclasses

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxsteer import export_keys


def test_stable_repr_refuses_addresses_and_functions():
    text = export_keys.stable_repr((1, 2.5, "a", None, {"b": (True,)}))
    assert text == "tuple(1,2.5,'a',None,dict('b':tuple(True)))"
    assert export_keys.stable_repr({"y": 1, "x": 2}) == export_keys.stable_repr({"x": 2, "y": 1})
    assert export_keys.stable_repr((1,)) != export_keys.stable_repr([1])
    assert export_keys.stable_repr(object()) is None
    assert export_keys.stable_repr(lambda x: x) is None
    assert export_keys.stable_repr([1, object()]) is None


def test_stable_repr_of_a_dataclass_covers_only_compared_fields():
    @dataclasses.dataclass(frozen=True)
    class Spec:
        width: int
        note: str = dataclasses.field(default="", compare=False)

    assert export_keys.stable_repr(Spec(2, "a")) == export_keys.stable_repr(Spec(2, "b"))
    assert export_keys.stable_repr(Spec(2)) != export_keys.stable_repr(Spec(3))


def test_shardings_and_digest_change_with_the_mesh():
    devices = jax.devices()
    one = Mesh(devices[:1], ("data",))
    two = Mesh(devices[:2], ("data",))
    s1 = export_keys.describe_sharding(NamedSharding(one, PartitionSpec("data")))
    s2 = export_keys.describe_sharding(NamedSharding(two, PartitionSpec("data")))
    s3 = export_keys.describe_sharding(NamedSharding(two, PartitionSpec()))
    assert len({s1, s2, s3}) == 3
    assert export_keys.describe_sharding(object()) is None
    assert export_keys.digest("k", s1, "cpu") == export_keys.digest("k", s1, "cpu")
    assert export_keys.digest("k", s1, "cpu") != export_keys.digest("k", s2, "cpu")
    assert export_keys.digest("k", s1, "cpu") != export_keys.digest("k2", s1, "cpu")
