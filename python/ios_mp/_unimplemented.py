"""Placeholders for parts of multiprocessing that ios_mp does not provide yet.

Libraries probe multiprocessing by importing its modules, so every module
imports cleanly; what is missing raises on *use* an error that names the
missing feature.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__: list[str] = []


class NotImplementedYet(NotImplementedError):
    """Raised when a multiprocessing feature ios_mp does not implement yet is used."""


def missing(feature: str) -> NoReturn:
    raise NotImplementedYet(
        f"ios_mp does not implement {feature} yet (processes are threads here; "
        "see docs/compatibility.md)"
    )


def function(feature: str) -> Any:
    """A function that raises NotImplementedYet naming ``feature`` when called."""

    def unavailable(*args: Any, **kwargs: Any) -> NoReturn:
        missing(feature)

    unavailable.__name__ = feature.rsplit(".", 1)[-1].rstrip("()")
    unavailable.__qualname__ = unavailable.__name__
    unavailable.__doc__ = f"Not implemented by ios_mp yet: {feature}."
    unavailable.__ios_mp_unimplemented__ = feature  # type: ignore[attr-defined]
    return unavailable


def class_(feature: str) -> type:
    """A class whose instantiation raises NotImplementedYet naming ``feature``."""
    name = feature.rsplit(".", 1)[-1]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        missing(feature)

    return type(
        name,
        (),
        {
            "__init__": __init__,
            "__doc__": f"Not implemented yet: {feature}.",
            "__ios_mp_unimplemented__": feature,
        },
    )
