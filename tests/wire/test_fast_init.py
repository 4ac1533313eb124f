"""The faster constructors keep every dataclass behaviour of the wire values."""

import copy
import dataclasses
import inspect
import pickle

import pytest
from hypothesis import given

from stacks.wire._fast_init import fast_constructor
from stacks.wire.frame import Frame
from stacks.wire.icmpv6 import Icmpv6Repr
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.tcp import TcpFlags, TcpRepr

from .strategies import icmpv6_reprs, ipv4_reprs, tcp_reprs


def fields_of(value) -> dict:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


@pytest.mark.parametrize("cls, strategy", [(TcpRepr, tcp_reprs()), (Ipv4Repr, ipv4_reprs()),
                                           (Icmpv6Repr, icmpv6_reprs())])
def test_builder_and_init_make_equal_values(cls, strategy):
    build = fast_constructor(cls)

    @given(strategy)
    def check(value):
        built = build(**fields_of(value))
        assert type(built) is cls and built == value and hash(built) == hash(value)
        assert repr(built) == repr(value)
        assert cls(**fields_of(value)) == value
    check()


def test_values_stay_frozen_and_copyable():
    value = fast_constructor(TcpRepr)(1, 2, 3, 4, TcpFlags.SYN, 5, mss=1460)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.seq = 9
    with pytest.raises(dataclasses.FrozenInstanceError):
        TcpRepr(1, 2, 3, 4, TcpFlags.SYN, 5).seq = 9
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value) == value
    assert dataclasses.replace(value, seq=10).seq == 10


def test_signature_and_defaults_are_the_dataclass_ones():
    params = inspect.signature(TcpRepr).parameters
    assert list(params) == [f.name for f in dataclasses.fields(TcpRepr)]
    assert params["urgent"].default == 0 and params["payload"].default == b""
    assert Frame.__init__.__annotations__["payload"] in (bytes, "bytes")
    with pytest.raises(TypeError, match="missing"):
        TcpRepr(1, 2)
    with pytest.raises(TypeError, match="missing"):
        fast_constructor(TcpRepr)(1, 2)


def test_classes_with_factories_are_refused():
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="only plain fields"):
        fast_constructor(WithFactory)
