"""Cheaper construction of the frozen, slotted dataclasses on the packet path.

A frozen dataclass's generated ``__init__`` stores each field with
``object.__setattr__(self, name, value)``, because plain assignment is
what "frozen" forbids.  For a 13-field TcpRepr that costs more than
parsing the header.  Two remedies, both keeping the class a frozen
dataclass in every other respect (signature and defaults, ``__eq__``,
``__hash__``, ``__repr__``, ``replace``, FrozenInstanceError on assignment):

- :func:`faster_init` replaces ``__init__`` by one that stores through each
  slot's own descriptor: about half the cost, for everyone who calls the
  class.
- :func:`fast_constructor` gives the parsers a function that fills an
  instance of a mutable twin class with the same slots by plain assignment
  and then switches the instance's class to the frozen one: about a
  quarter of the cost.  Parsers build a value per packet; this is for them.
"""

import dataclasses


def _signature(cls, namespace: dict) -> list[str]:
    params = []
    for field in dataclasses.fields(cls):
        name = field.name
        if field.default_factory is not dataclasses.MISSING or not field.init:
            raise TypeError(f"{cls.__name__}.{name}: only plain fields are supported")
        if field.default is dataclasses.MISSING:
            params.append(name)
        else:
            params.append(f"{name}=_default_{name}")
            namespace[f"_default_{name}"] = field.default
    return params


def _compile(name: str, source: str, namespace: dict, cls):
    exec(source, namespace)  # the same technique dataclasses itself uses
    function = namespace[name]
    function.__qualname__ = f"{cls.__qualname__}.{name}"
    function.__module__ = cls.__module__
    return function


def faster_init(cls):
    """Class decorator, applied above ``@dataclass(frozen=True, slots=True)``."""
    namespace = {}
    params = _signature(cls, namespace)
    body = []
    for field in dataclasses.fields(cls):
        namespace[f"_set_{field.name}"] = cls.__dict__[field.name].__set__
        body.append(f"    _set_{field.name}(self, {field.name})\n")
    source = f"def __init__(self, {', '.join(params)}):\n{''.join(body)}"
    init = _compile("__init__", source, namespace, cls)
    init.__annotations__ = {f.name: f.type for f in dataclasses.fields(cls)} | {"return": None}
    cls.__init__ = init
    return cls


def fast_constructor(cls):
    """A function with the signature of ``cls(...)`` that builds instances faster."""
    twin = type(f"_{cls.__name__}Builder", (), {"__slots__": cls.__slots__})
    namespace = {"_new": object.__new__, "_twin": twin, "_frozen": cls}
    params = _signature(cls, namespace)
    body = "".join(f"    self.{field.name} = {field.name}\n" for field in dataclasses.fields(cls))
    source = (f"def build({', '.join(params)}):\n    self = _new(_twin)\n{body}"
              "    self.__class__ = _frozen\n    return self\n")
    return _compile("build", source, namespace, cls)
