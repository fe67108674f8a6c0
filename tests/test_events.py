"""The event catalogue (ledger/writer/events.py CATALOGUE) holds to what the Lua scripts emit and
to what the projections fold: every type a script can append is catalogued, every catalogued type
is appended by some script, and each entry names exactly the projections (writer.PROJECTIONS)
whose `handlers` take that type, so an event nobody folds is a decision, not an oversight.

An event type is a string literal shaped `noun.verb` ('empenho.held') in a script's code, with
its comments left out: what `emit(stream, etype, ...)` and `decide(..., etype, ...)` are given,
directly, through `decided('empenho.held', ...)`, or through a variable such as `etype`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ledger.writer import events
from ledger.writer.writer import PROJECTIONS
from tests.test_lua_boundary import lua_files, lua_split

EVENT_TYPE = re.compile(r"[a-z][a-z_]*\.[a-z][a-z_]*")
#: the scan's floor: the types the scripts emit today (a scan finding fewer is broken)
MIN_TYPES = 34


def emitted(files: dict[str, str]) -> dict[str, list[str]]:
    """Every event type the Lua files' code names, with where (file:line)."""
    found: dict[str, list[str]] = {}
    for rel, text in files.items():
        _, strings = lua_split(text)
        for line, value in strings:
            if EVENT_TYPE.fullmatch(value):
                found.setdefault(value, []).append(f"{rel}:{line}")
    return found


def catalogue_problems(
    emitted: Iterable[str], catalogue: dict[str, tuple[str, ...]], handlers: dict[str, Iterable[str]]
) -> list[str]:
    """What is wrong between the types emitted, the catalogue, and each projection's handlers
    (projection name -> the types it folds)."""
    out = []
    emitted = set(emitted)
    for etype in sorted(emitted - set(catalogue)):
        out.append(f"{etype!r} is emitted but not in the catalogue")
    for etype in sorted(set(catalogue) - emitted):
        out.append(f"{etype!r} is catalogued but no script emits it")
    folded: dict[str, set[str]] = {}
    for name, types in handlers.items():
        for etype in types:
            folded.setdefault(etype, set()).add(name)
    for etype in sorted(set(folded) - set(catalogue)):
        out.append(f"{etype!r} is folded by {sorted(folded[etype])} but not in the catalogue")
    for etype, names in catalogue.items():
        if len(set(names)) != len(names):
            out.append(f"{etype!r} names a projection twice: {names}")
        unknown = set(names) - set(handlers)
        if unknown:
            out.append(f"{etype!r} names {sorted(unknown)}, which are no projection")
        if set(names) != folded.get(etype, set()):
            out.append(f"{etype!r} is catalogued for {sorted(names)} but folded by {sorted(folded.get(etype, set()))}")
    return out


def _handlers() -> dict[str, Iterable[str]]:
    names = [p.name for p in PROJECTIONS]
    assert len(set(names)) == len(names), f"two projections share a name: {names}"
    return {p.name: p.handlers.keys() for p in PROJECTIONS}


def test_the_catalogue_is_what_the_scripts_emit_and_the_projections_fold() -> None:
    wrong = catalogue_problems(emitted(lua_files()), events.CATALOGUE, _handlers())
    assert not wrong, "the event catalogue (ledger/writer/events.py) is out of step:\n  " + "\n  ".join(wrong)


def test_the_scan_finds_the_event_types() -> None:
    found = emitted(lua_files())
    assert len(found) >= MIN_TYPES, sorted(found)
    for etype in ("empenho.held", "empenho.declined", "credit.reversed", "balance.rolled_over", "password.refused"):
        assert etype in found, f"the scan missed {etype}"
    # the real catalogue, one entry dropped and one changed: both are caught
    catalogue = {t: p for t, p in events.CATALOGUE.items() if t != "empenho.held"}
    catalogue["password.locked"] = (events.DECISIONS,)
    wrong = catalogue_problems(found, catalogue, _handlers())
    assert "'empenho.held' is emitted but not in the catalogue" in wrong, wrong
    assert any(w.startswith("'password.locked' is catalogued for ['decisions'] but folded by") for w in wrong), wrong


def test_the_checker_refuses_what_it_should() -> None:
    lua = """
-- emit(stream, 'in.a_comment', ...) is not an event
--[[ 'nor.in_a_block' ]]
emit(stream, 'thing.made', protocol, now, {})
emit(stream, create and 'thing.created' or 'thing.updated', protocol, now, {})
return decided('thing.declined', {s = 422})
local status, etype = 'CANCELLED', 'thing.cancelled'
"""
    found = emitted({"x.lua": lua})
    assert sorted(found) == ["thing.cancelled", "thing.created", "thing.declined", "thing.made", "thing.updated"]
    assert found["thing.made"] == ["x.lua:4"]
    catalogue = {
        "thing.made": ("a",),
        "thing.created": ("a", "b"),
        "thing.updated": (),
        "thing.declined": ("b",),
        "thing.gone": (),
    }
    handlers = {"a": ["thing.made", "thing.created", "thing.updated"], "b": ["thing.declined", "thing.other"]}
    wrong = catalogue_problems(found, catalogue, handlers)
    assert wrong == [
        "'thing.cancelled' is emitted but not in the catalogue",
        "'thing.gone' is catalogued but no script emits it",
        "'thing.other' is folded by ['b'] but not in the catalogue",
        "'thing.created' is catalogued for ['a', 'b'] but folded by ['a']",
        "'thing.updated' is catalogued for [] but folded by ['a']",
    ], wrong
    right = {
        **catalogue,
        "thing.created": ("a",),
        "thing.updated": ("a",),
        "thing.cancelled": (),
        "thing.other": ("b",),
    }
    del right["thing.gone"]
    assert catalogue_problems(set(found) | {"thing.other"}, right, handlers) == []
    assert catalogue_problems(found, {**right, "thing.made": ("a", "z")}, handlers)
