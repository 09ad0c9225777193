"""Metadata filters for :meth:`Client.search`, as the wire writes them.

    from hvs_client import filters as F
    client.search("notes", v, filter=F.and_(F.eq("from", "alice"), F.range_("score", min=0.5)))

A key that is absent never matches ``eq``, ``in_`` or ``range_``; numbers
compare by value (``1`` equals ``1.0``).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

Filter = Dict[str, Any]


def eq(key: str, value: Any) -> Filter:
    """``metadata[key] == value``."""
    return {"eq": [key, value]}


def in_(key: str, values: Iterable[Any]) -> Filter:
    """``metadata[key]`` is one of ``values``."""
    return {"in": [key, list(values)]}


def range_(key: str, min: Optional[float] = None, max: Optional[float] = None) -> Filter:  # noqa: A002
    """``min <= metadata[key] <= max`` (either bound optional)."""
    r: Dict[str, Any] = {"key": key}
    if min is not None:
        r["min"] = float(min)
    if max is not None:
        r["max"] = float(max)
    return {"range": r}


def and_(*filters: Filter) -> Filter:
    """All of these."""
    return {"and": list(filters)}


def or_(*filters: Filter) -> Filter:
    """Any of these."""
    return {"or": list(filters)}


def not_(f: Filter) -> Filter:
    """Not this."""
    return {"not": f}
