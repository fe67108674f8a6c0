"""The Lua boundary, checked: every script's header declares its KEYS and ARGV one by one
(gateway/platform/redis/scripts.py reads them back), and Redis checks neither count: a caller
one argument short hands the script a nil where it expected a value. So every call of a
script in gateway/, ledger/, bench/ and tests/ is read from the source with `ast` and its keys
and arguments counted against the header; and every error code a script returns must be an
ErrorCode.

A call of a script is `svc.run(name, keys, args)` (or `….scripts.call(...)`), redis-py's
`….evalsha(sha, numkeys, *keys, *args)` with the SHA from `script_load(source(name))`, our
client's `….evalsha(sha, text, keys, args)`, or a call passing `source(name)` to something with
parameters `keys` and `args`. A list is counted when it is a literal (`*x` counts x), a name
bound in the function or module (`+=` in a branch or loop makes it "n or more"), a tuple
element (`keys, args = build(...)`, `for keys, args in calls`), a function's return value, a
field of a module-level dataclass instance (`EMPENHO.lifecycle_keys(...)`; a parameter typed
with that class is each of its instances in turn), or a `tuple[A, B]` annotation. Anything else
cannot be counted, and fails: the caller is then written so that it can be. A function that
only forwards its own parameters (Services.run) is listed in PASS_THROUGH with the reason.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.platform.errors import ErrorCode
from gateway.platform.redis import scripts
from gateway.platform.redis.scripts import LUA_DIR, Signature, parse_signature
from tests.test_sql_parameterised import Module, NotConstant, Scope

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("gateway", "ledger", "bench", "tests")
SOURCE = ("gateway.platform.redis.scripts", "source")
SCRIPTS = frozenset(scripts.names())

#: (file, function): why a call there forwards lists its own callers build; each entry must still
#: match a call (a stale entry fails), and only a call whose keys and args are that function's
#: own parameters is excused
PASS_THROUGH = {
    (
        "gateway/platform/services.py",
        "Services.run",
    ): "forwards to Scripts.call; its callers, svc.run(...), are checked",
    ("gateway/platform/redis/scripts.py", "Scripts.call"): "forwards Services.run's keys and args to EVALSHA",
    ("bench/redis_client.py", "_redis_py_evalsha.make"): "calls a Target, whose construction, Target(...), is checked",
    ("bench/redis_client.py", "_resp.make"): "calls a Target, whose construction, Target(...), is checked",
    ("bench/redis_client.py", "_resp.make.call"): "calls a Target, whose construction, Target(...), is checked",
    ("bench/redis_client.py", "_coredis.make"): "calls a Target, whose construction, Target(...), is checked",
}
#: modules known to call scripts: each must show up, so a change in how calls look cannot make
#: the checks pass by seeing nothing
KNOWN_CALLERS = (
    "gateway/auth/password_check.py",
    "gateway/holds/empenhos.py",
    "gateway/holds/lifecycle.py",
    "gateway/credits/holds.py",
    "gateway/registry/participants.py",
    "ledger/month/balance_batch.py",
    "ledger/ops/rebuild.py",
    "ledger/writer/writer.py",
    "bench/redis_ceiling.py",
    "bench/redis_client.py",
    "bench/scenarios.py",
    "tests/checkout.py",
)
#: the scans' floors: what they find today (a scan finding fewer is broken, not the code clean)
MIN_SITES, MIN_CODE_RETURNS, MIN_CODES = 35, 60, 33


# -- counting ------------------------------------------------------------------------------------
class NotCounted(Exception):
    """Why a list's length, or a script's name, cannot be told from the source."""


@dataclass(frozen=True)
class Count:
    """A list's length: exactly n, or (more) n or more, and then why."""

    n: int
    more: bool = False
    why: str = field(default="", compare=False)

    def __add__(self, other: Count) -> Count:
        return Count(self.n + other.n, self.more or other.more, self.why or other.why)

    def __str__(self) -> str:
        return f"{self.n} or more ({self.why})" if self.more else str(self.n)


def either(counts: list[Count]) -> Count:
    """The count of a list that is one of several: the same when they agree."""
    if all(c == counts[0] for c in counts):
        return counts[0]
    shown = " or ".join(sorted({f"{c.n} or more" if c.more else str(c.n) for c in counts}))
    why = next((c.why for c in counts if c.why), "") or f"it may be {shown} long"
    return Count(min(c.n for c in counts), True, why)


def fits(count: Count, declared: int, variadic: bool) -> bool:
    return count.n >= declared if variadic else (count.n == declared and not count.more)


@dataclass(frozen=True)
class Instance:
    """A module-level `NAME = SomeDataclass(...)`: its fields' expressions."""

    module: Source
    call: ast.Call
    cls: ast.ClassDef

    def value_of(self, name: str) -> ast.expr:
        names = [s.target.id for s in self.cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
        for kw in self.call.keywords:
            if kw.arg == name:
                return kw.value
        if name in names and names.index(name) < len(self.call.args):
            return self.call.args[names.index(name)]
        raise NotCounted(f"`{ast.unparse(self.call.func)}(...)` gives no `{name}`")


Env = dict[str, Instance]
#: an expression where it stands: its module, its scope, the instances its parameters are bound to
Place = tuple["Source", ast.expr, Scope, Env]


class Source(Module):
    """One parsed module, with what its lists count and its names call."""

    def __init__(self, rel: str, source: str, modules: dict[str, Module]) -> None:
        super().__init__(rel, source, modules)
        self.parents = {id(c): p for p in ast.walk(self.tree) for c in ast.iter_child_nodes(p)}

    # -- where names lead -----------------------------------------------------------------------
    def bound(self, name: str, scope: Scope) -> list[tuple[ast.AST, Scope]]:
        try:
            return self._binding_values(name, scope)
        except NotConstant as exc:
            raise NotCounted(str(exc)) from None

    def other(self, node: ast.ImportFrom, name: str) -> tuple[Source, str] | Source:
        """What `from m import name` brings: a name in module m, or the submodule m.name."""
        alias = next(a for a in node.names if (a.asname or a.name) == name)
        sub = self.modules.get(f"{node.module}.{alias.name}")
        if sub is not None:
            return sub  # type: ignore[return-value]
        source = self.modules.get(node.module or "")
        if source is None or node.level:
            raise NotCounted(f"`{name}` comes from outside the scanned code ({node.module})")
        return source, alias.name  # type: ignore[return-value]

    def module_of(self, expr: ast.expr, scope: Scope) -> Source | None:
        """The scanned module a name stands for (`from gateway.holds import empenhos`), if any."""
        if not isinstance(expr, ast.Name):
            return None
        try:
            bindings = self.bound(expr.id, scope)
            if len(bindings) != 1:
                return None
            node = bindings[0][0]
            if isinstance(node, ast.ImportFrom):
                found = self.other(node, expr.id)
                return found if isinstance(found, Source) else None
            if isinstance(node, ast.Import):
                alias = next(a for a in node.names if (a.asname or a.name).split(".")[0] == expr.id)
                module = self.modules.get(alias.name if alias.asname else expr.id)
                return module if isinstance(module, Source) else None
        except NotCounted:
            pass
        return None

    def definition(self, expr: ast.expr, scope: Scope, env: Env) -> tuple[Source, ast.AST, Scope]:
        """The def or class a callable expression names, and the scope it lives in."""
        if isinstance(expr, ast.Name):
            bindings = self.bound(expr.id, scope)
            if len(bindings) != 1:
                raise NotCounted(f"`{expr.id}` is bound more than once")
            node, where = bindings[0]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node is not where.node:
                return self, node, Scope(node, where)
            if isinstance(node, ast.ImportFrom):
                found = self.other(node, expr.id)
                if isinstance(found, Source):
                    raise NotCounted(f"`{expr.id}` is a module")
                module, name = found
                return module.definition(ast.Name(name, ast.Load()), module.scope, {})
            if isinstance(node, ast.expr):
                return self.definition(node, where, env)
            raise NotCounted(f"`{expr.id}` is a parameter or bound at run time")
        if isinstance(expr, ast.Attribute):
            module = self.module_of(expr.value, scope)
            if module is not None:
                return module.definition(ast.Name(expr.attr, ast.Load()), module.scope, {})
            instance = self.instance(expr.value, scope, env)
            if instance is not None:
                return instance.module.definition(instance.value_of(expr.attr), instance.module.scope, {})
        raise NotCounted(f"`{ast.unparse(expr)}` names no function found in the scanned code")

    def instance(self, expr: ast.expr, scope: Scope, env: Env) -> Instance | None:
        """The module-level dataclass instance an expression names, if it names one."""
        if not isinstance(expr, ast.Name):
            return None
        if expr.id in env:
            return env[expr.id]
        try:
            bindings = self.bound(expr.id, scope)
        except NotCounted:
            return None
        if len(bindings) != 1:
            return None
        node, where = bindings[0]
        if isinstance(node, ast.ImportFrom):
            found = self.other(node, expr.id)
            if isinstance(found, Source):
                return None
            module, name = found
            return module.instance(ast.Name(name, ast.Load()), module.scope, {})
        if isinstance(node, ast.Call) and where is self.scope:
            try:
                _, cls, _ = self.definition(node.func, where, {})
            except NotCounted:
                return None
            if isinstance(cls, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in cls.decorator_list):
                return Instance(self, node, cls)
        return None

    def instances_of(self, cls: ast.ClassDef) -> list[tuple[str, Instance]]:
        """Every module-level instance of a class, in any scanned module, by name."""
        found = []
        for module in self.modules.values():
            assert isinstance(module, Source)
            for stmt in module.tree.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    inst = module.instance(stmt.targets[0], module.scope, {})
                    if inst is not None and inst.cls is cls:
                        found.append((stmt.targets[0].id, inst))
        return found

    def parameter(self, name: str, scope: Scope) -> ast.arg | None:
        """The parameter `name` stands for, of this function or one it is nested in, if it is one."""
        try:
            bindings = self.bound(name, scope)
        except NotCounted:
            return None
        node, where = bindings[0]
        if len(bindings) != 1 or node is not where.node:
            return None
        a = node.args  # type: ignore[attr-defined]
        return next((p for p in [*a.posonlyargs, *a.args, *a.kwonlyargs] if p.arg == name), None)

    # -- how long a list is ---------------------------------------------------------------------
    def count(self, expr: ast.expr, scope: Scope, env: Env) -> Count:
        if isinstance(expr, ast.List | ast.Tuple):
            total = Count(0)
            for e in expr.elts:
                total += self.count(e.value, scope, env) if isinstance(e, ast.Starred) else Count(1)
            return total
        if isinstance(expr, ast.ListComp | ast.GeneratorExp):
            return Count(0, True, f"`{ast.unparse(expr)}` has no fixed length")
        if isinstance(expr, ast.IfExp):
            return either([self.count(expr.body, scope, env), self.count(expr.orelse, scope, env)])
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return self.count(expr.left, scope, env) + self.count(expr.right, scope, env)
        if isinstance(expr, ast.Await):
            return self.count(expr.value, scope, env)
        if isinstance(expr, ast.Name):
            return self._name_count(expr.id, scope, env)
        if isinstance(expr, ast.Call):
            if isinstance(expr.func, ast.Name) and expr.func.id in ("list", "tuple") and len(expr.args) == 1:
                return self.count(expr.args[0], scope, env)
            return self._returned(expr, scope, env, ())
        raise NotCounted(f"`{ast.unparse(expr)}` is computed at run time")

    def _name_count(self, name: str, scope: Scope, env: Env) -> Count:
        counts, added, grows = [], Count(0), ""
        for node, where in self.bound(name, scope):
            changed = next((n for n in self._body_nodes(where.node) if _changes(n, name)), None)
            if changed is not None:
                raise NotCounted(f"`{name}` is changed in place by {ast.unparse(changed)}")
            if isinstance(node, ast.AugAssign):
                if not isinstance(node.op, ast.Add):
                    raise NotCounted(f"`{name}` is changed by {ast.unparse(node)}")
                if self.parents.get(id(node)) is where.node:  # runs once, always
                    added += self.count(node.value, where, env)
                else:  # in a branch or a loop: adds some, maybe none
                    grows = f"`{ast.unparse(node)}` runs any number of times"
            elif isinstance(node, ast.expr):
                counts.append(self.count(node, where, env))
            elif isinstance(node, ast.Assign | ast.For | ast.AsyncFor | ast.comprehension):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                path = _path(target, name)
                if path is None:
                    raise NotCounted(f"`{name}` is bound by {ast.unparse(node)}")
                if isinstance(node, ast.Assign):
                    places: list[Place] = [(self, node.value, where, env)]
                else:
                    places = self.items(node.iter, where, env)
                counts.append(either([m.part(e, s, v, path) for m, e, s, v in places]))
            elif isinstance(node, ast.ImportFrom):
                found = self.other(node, name)
                if isinstance(found, Source):
                    raise NotCounted(f"`{name}` is a module")
                module, original = found
                counts.append(module.count(ast.Name(original, ast.Load()), module.scope, {}))
            elif node is where.node and (p := self.parameter(name, where)) is not None:
                counts.append(_annotated(p.annotation, f"`{name}` is a parameter"))
            else:
                raise NotCounted(f"`{name}` is bound by a {type(node).__name__}")
        if not counts:
            raise NotCounted(f"`{name}` is only ever added to")
        if len(set(counts)) > 1:
            shown = ", ".join(str(c) for c in counts)
            raise NotCounted(f"`{name}` is bound {len(counts)} times, to lists of {shown}: give each its own name")
        total = counts[0] + added
        return Count(total.n, True, grows) if grows else total

    def part(self, expr: ast.expr, scope: Scope, env: Env, path: tuple[int, ...]) -> Count:
        """The count of the element at `path` of the tuple `expr` gives."""
        if not path:
            return self.count(expr, scope, env)
        if isinstance(expr, ast.Tuple | ast.List) and not any(isinstance(e, ast.Starred) for e in expr.elts):
            return self.part(expr.elts[path[0]], scope, env, path[1:])
        if isinstance(expr, ast.Await):
            return self.part(expr.value, scope, env, path)
        if isinstance(expr, ast.Call):
            return self._returned(expr, scope, env, path)
        if isinstance(expr, ast.Name):
            bindings = self.bound(expr.id, scope)
            if len(bindings) == 1 and isinstance(bindings[0][0], ast.expr):
                return self.part(bindings[0][0], bindings[0][1], env, path)
        raise NotCounted(f"`{ast.unparse(expr)}` is not a tuple whose parts can be told apart")

    def items(self, expr: ast.expr, scope: Scope, env: Env) -> list[Place]:
        """What an element of the iterable `expr` may be."""
        if isinstance(expr, ast.ListComp | ast.GeneratorExp):
            return [(self, expr.elt, scope, env)]
        if isinstance(expr, ast.List | ast.Tuple) and not any(isinstance(e, ast.Starred) for e in expr.elts):
            return [(self, e, scope, env) for e in expr.elts]
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Slice):
            return self.items(expr.value, scope, env)
        if isinstance(expr, ast.Name):
            bindings = self.bound(expr.id, scope)
            if len(bindings) == 1 and isinstance(bindings[0][0], ast.expr):
                return self.items(bindings[0][0], bindings[0][1], env)
        raise NotCounted(f"the elements of `{ast.unparse(expr)}` cannot be told")

    def _returned(self, call: ast.Call, scope: Scope, env: Env, path: tuple[int, ...]) -> Count:
        """The count of (the element at `path` of) what a call returns."""
        module, node, inner = self.definition(call.func, scope, env)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            raise NotCounted(f"`{ast.unparse(call.func)}` is not a function")
        returns = [n.value for n in module._body_nodes(node) if isinstance(n, ast.Return)]
        try:
            if not returns or None in returns:
                raise NotCounted(f"{node.name}() does not always return a value")
            return either([module.part(r, inner, {}, path) for r in returns if r is not None])
        except NotCounted as exc:
            annotation = node.returns
            for i in path:  # tuple[A, B][i]
                elts = _tuple_args(annotation)
                annotation = elts[i] if elts and i < len(elts) else None
            return _annotated(annotation, f"{node.name}(): {exc}")

    # -- which script ---------------------------------------------------------------------------
    def script_name(self, expr: ast.expr, scope: Scope, env: Env) -> str:
        if isinstance(expr, ast.Attribute):
            instance = self.instance(expr.value, scope, env)
            if instance is not None:
                return instance.module.script_name(instance.value_of(expr.attr), instance.module.scope, {})
        try:
            return self.text(expr, scope)
        except NotConstant as exc:
            raise NotCounted(f"the script's name `{ast.unparse(expr)}`: {exc}") from None

    def loaded(self, expr: ast.expr, scope: Scope) -> tuple[str, ast.Call] | None:
        """The script a SHA or a text comes from: (name, the source(name) call), or None for a
        literal Lua text that is no script of ours."""
        if isinstance(expr, ast.Await):
            return self.loaded(expr.value, scope)
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return None
        if isinstance(expr, ast.Call) and expr.args:
            if isinstance(expr.func, ast.Attribute) and expr.func.attr == "script_load":
                return self.loaded(expr.args[0], scope)
            if self.is_source(expr, scope):
                return self.script_name(expr.args[0], scope, {}), expr
        if isinstance(expr, ast.Name):
            bindings = self.bound(expr.id, scope)
            if len(bindings) == 1:
                node, where = bindings[0]
                if isinstance(node, ast.expr):
                    return self.loaded(node, where)
                if isinstance(node, ast.ImportFrom):
                    found = self.other(node, expr.id)
                    if not isinstance(found, Source):
                        return found[0].loaded(ast.Name(found[1], ast.Load()), found[0].scope)
        raise NotCounted(f"cannot tell which script `{ast.unparse(expr)}` is")

    def is_source(self, call: ast.Call, scope: Scope) -> bool:
        """Whether a call is gateway.platform.redis.scripts.source(...)."""
        if isinstance(call.func, ast.Name) and call.func.id == SOURCE[1]:
            try:
                bindings = self.bound(call.func.id, scope)
            except NotCounted:
                return False
            node = bindings[0][0]
            if isinstance(node, ast.ImportFrom) and len(bindings) == 1:
                alias = next(a for a in node.names if (a.asname or a.name) == call.func.id)
                return (node.module, alias.name) == SOURCE
            return False
        if isinstance(call.func, ast.Attribute) and call.func.attr == SOURCE[1]:
            module = self.module_of(call.func.value, scope)
            return module is not None and module.rel == "gateway/platform/redis/scripts.py"
        return False

    def forwarded(self, expr: ast.expr, scope: Scope) -> bool:
        """Whether an expression is a parameter of the function (or an attribute of one)."""
        while isinstance(expr, ast.Starred | ast.Attribute):
            expr = expr.value
        return isinstance(expr, ast.Name) and self.parameter(expr.id, scope) is not None


_MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear"})


def _changes(node: ast.AST, name: str) -> bool:
    """Whether a node changes the list `name` in place: name.append(x), name[i] = x, del name[i]."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
        return isinstance(node.func.value, ast.Name) and node.func.value.id == name
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
        return isinstance(node.value, ast.Name) and node.value.id == name
    return False


def _path(target: ast.AST, name: str) -> tuple[int, ...] | None:
    """Where `name` sits in an unpacking target: `a, (b, c)` has c at (1, 1)."""
    if isinstance(target, ast.Name):
        return () if target.id == name else None
    if isinstance(target, ast.Tuple | ast.List):
        for i, e in enumerate(target.elts):
            inner = _path(e, name)
            if inner is not None:
                return (i, *inner)
    return None


def _tuple_args(annotation: ast.expr | None) -> list[ast.expr] | None:
    """The element types of `tuple[A, B]` (None for anything else, or `tuple[A, ...]`)."""
    if not (isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) in ("tuple", "Tuple")):
        return None
    elts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
    if any(isinstance(e, ast.Constant) and e.value is Ellipsis for e in elts):
        return None
    return elts


def _annotated(annotation: ast.expr | None, why: str) -> Count:
    elts = _tuple_args(annotation)
    if elts is None:
        raise NotCounted(why)
    return Count(len(elts))


# -- the call sites ------------------------------------------------------------------------------
@dataclass
class Site:
    """One call of a script: what it passes, or why that cannot be told."""

    module: Source
    function: str
    line: int
    via: str = ""
    script: str | None = None
    keys: Count | None = None
    args: Count | None = None
    problem: str | None = None
    #: its keys and args are its own function's parameters: a wrapper (PASS_THROUGH)
    forwards: bool = False
    #: the source(name) call its SHA or text came from
    loads: ast.Call | None = None

    def __str__(self) -> str:
        return f"{self.module.rel}:{self.line} in {self.function}(): {self.script or '?'}{self.via}"


@dataclass
class Scan:
    sites: list[Site] = field(default_factory=list)
    #: every source(name) call outside the loader
    sources: list[tuple[Source, ast.Call]] = field(default_factory=list)


@dataclass(frozen=True)
class Side:
    """How to count a call's keys or its args: one list expression; or, in redis-py's flat
    EVALSHA(sha, numkeys, *keys_and_args), the key count (the keys) or the run less it (the args)."""

    expr: ast.expr | None = None
    flat: tuple[ast.expr, ...] = ()
    numkeys: ast.expr | None = None
    is_keys: bool = False

    def count(self, module: Source, scope: Scope, env: Env) -> Count:
        if self.expr is not None:
            return module.count(self.expr, scope, env)
        assert self.numkeys is not None
        keys = _numkeys(module, self.numkeys, scope, env)
        total = Count(0)
        for e in self.flat:
            total += module.count(e.value, scope, env) if isinstance(e, ast.Starred) else Count(1)
        if total.n < keys and not total.more:
            raise NotCounted(f"{total} values after a key count of {keys}")
        return Count(keys) if self.is_keys else Count(max(total.n - keys, 0), total.more)


def _numkeys(module: Source, expr: ast.expr, scope: Scope, env: Env) -> int:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, int):
        return expr.value
    if _is_len(expr):
        c = module.count(expr.args[0], scope, env)  # type: ignore[attr-defined]
        if not c.more:
            return c.n
    if isinstance(expr, ast.Name):
        bindings = module.bound(expr.id, scope)
        if len(bindings) == 1 and isinstance(bindings[0][0], ast.expr):
            return _numkeys(module, bindings[0][0], bindings[0][1], env)
    raise NotCounted(f"the key count `{ast.unparse(expr)}` cannot be told")


def _is_len(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "len" and len(expr.args) == 1
    )


def _is_numkeys(module: Source, expr: ast.expr, scope: Scope) -> bool:
    """Whether EVALSHA's second argument is a key count (redis-py) rather than the text (ours)."""
    if isinstance(expr, ast.Constant):
        return isinstance(expr.value, int)
    if _is_len(expr):
        return True
    if isinstance(expr, ast.Name):
        try:
            bindings = module.bound(expr.id, scope)
        except NotCounted:
            return False
        return (
            len(bindings) == 1 and isinstance(bindings[0][0], ast.expr) and _is_numkeys(module, bindings[0][0], scope)
        )
    return False


@dataclass(frozen=True)
class Loaded:
    """A script named by the SHA or the text it is called with."""

    expr: ast.expr


Parts = tuple[ast.expr | Loaded, Side, Side]


def _calls(module: Source) -> Iterator[tuple[ast.Call, Scope, str]]:
    def visit(node: ast.AST, scope: Scope, qualname: str) -> Iterator[tuple[ast.Call, Scope, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from visit(child, Scope(child, scope), f"{qualname}.{child.name}" if qualname else child.name)
                continue
            if isinstance(child, ast.Lambda):
                yield from visit(child, Scope(child, scope), qualname)
                continue
            if isinstance(child, ast.Call):
                yield child, scope, qualname or "<module>"
            yield from visit(child, scope, qualname)

    return visit(module.tree, module.scope, "")


def _receiver(func: ast.Attribute) -> str:
    value = func.value
    return value.attr if isinstance(value, ast.Attribute) else value.id if isinstance(value, ast.Name) else ""


def _parts(module: Source, call: ast.Call, scope: Scope, site: Site) -> Parts | None:
    """(the script's name, or what loads it; its keys; its args) when `call` calls a script."""
    args, kw = call.args, {k.arg: k.value for k in call.keywords if k.arg}
    if isinstance(call.func, ast.Attribute):
        method = call.func.attr
        if (method, _receiver(call.func)) in (("run", "svc"), ("call", "scripts")):
            if len(args) != 3 or any(isinstance(a, ast.Starred) for a in args):
                raise NotCounted("a script called otherwise than (name, keys, args)")
            site.forwards = module.forwarded(args[1], scope) and module.forwarded(args[2], scope)
            return args[0], Side(args[1]), Side(args[2])
        if method in ("run", "call") and args and isinstance(args[0], ast.Constant) and args[0].value in SCRIPTS:
            raise NotCounted(f"`{ast.unparse(call.func)}(...)` names a script, but only svc.run(...) is counted")
        if method == "evalsha" and args:
            site.via = " (EVALSHA)"
            if "keys" in kw or "args" in kw:  # coredis: evalsha(sha, keys=..., args=...)
                keys, values, text = kw.get("keys"), kw.get("args"), args[0]
            elif len(args) >= 2 and _is_numkeys(module, args[1], scope):  # redis-py: sha, numkeys, *keys, *args
                rest = tuple(args[2:])
                site.forwards = bool(rest) and all(
                    isinstance(a, ast.Starred) and module.forwarded(a, scope) for a in rest
                )
                return Loaded(args[0]), Side(flat=rest, numkeys=args[1], is_keys=True), Side(flat=rest, numkeys=args[1])
            elif len(args) == 4:  # ours: evalsha(sha, text, keys, args)
                keys, values, text = args[2], args[3], args[1]
            else:
                raise NotCounted(f"an EVALSHA written as {ast.unparse(call)}")
            if keys is None or values is None:
                raise NotCounted("an EVALSHA without both keys= and args=")
            site.forwards = module.forwarded(keys, scope) and module.forwarded(values, scope)
            return Loaded(text), Side(keys), Side(values)
    texts = [a for a in args if isinstance(a, ast.Call) and module.is_source(a, scope)]
    if texts:  # Target(name, source(name), keys, args) and the like
        try:
            _, node, _ = module.definition(call.func, scope, {})
        except NotCounted:
            return None  # script_load(source(...)): followed from the EVALSHA that uses it
        params = _params(node)
        if params is None or "keys" not in params or "args" not in params:
            return None
        bound = {params[i]: a for i, a in enumerate(args) if i < len(params)} | kw
        site.via = f" ({ast.unparse(call.func)}(...))"
        return Loaded(texts[0]), Side(bound["keys"]), Side(bound["args"])
    return None


def _params(node: ast.AST) -> list[str] | None:
    if isinstance(node, ast.ClassDef):
        init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        return None if init is None else [a.arg for a in init.args.args[1:]]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return [a.arg for a in node.args.args]
    return None


def scan(module: Source, signatures: dict[str, Signature]) -> Scan:
    """Every call of a script in one module, each counted and checked against the headers."""
    out = Scan()
    for call, scope, function in _calls(module):
        site = Site(module, function, call.lineno)
        try:
            parts = _parts(module, call, scope, site)
            if parts is None:
                loader = module.rel == "gateway/platform/redis/scripts.py"
                if not loader and call.args and module.is_source(call, scope):
                    out.sources.append((module, call))
            elif site.forwards:
                out.sites.append(site)
            else:
                out.sites += _checked(module, site, *parts, scope, signatures)
        except NotCounted as exc:
            site.problem = str(exc)
            out.sites.append(site)
    return out


def _checked(
    module: Source,
    site: Site,
    name: ast.expr | Loaded,
    keys: Side,
    args: Side,
    scope: Scope,
    signatures: dict[str, Signature],
) -> list[Site]:
    """The site counted, once per instance when its script is a field of a parameter's dataclass."""
    envs: list[tuple[str, Env]] = [("", {})]
    if (
        isinstance(name, ast.Attribute)
        and isinstance(name.value, ast.Name)
        and (p := module.parameter(name.value.id, scope)) is not None
    ):
        if p.annotation is None:
            raise NotCounted(f"the script's name `{ast.unparse(name)}` comes from an untyped parameter")
        _, cls, _ = module.definition(_unquoted(p.annotation), scope, {})
        if not isinstance(cls, ast.ClassDef):
            raise NotCounted(f"`{p.arg}` is not typed with a class")
        envs = [(f" (as {n})", {p.arg: inst}) for n, inst in module.instances_of(cls)]
        if not envs:
            raise NotCounted(f"no module-level {cls.name}(...) for `{p.arg}` to be")
    out = []
    for label, env in envs:
        s = Site(module, site.function, site.line, via=site.via + label)
        try:
            if isinstance(name, Loaded):
                found = module.loaded(name.expr, scope)
                if found is None:
                    continue  # a literal Lua text, no script of ours (tests of the client itself)
                s.script, s.loads = found
            else:
                s.script = module.script_name(name, scope, env)
            s.keys = keys.count(module, scope, env)
            s.args = args.count(module, scope, env)
            s.problem = _mismatch(s, signatures)
        except NotCounted as exc:
            s.problem = str(exc)
        out.append(s)
    return out


def _unquoted(annotation: ast.expr) -> ast.expr:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return ast.parse(annotation.value, mode="eval").body
    return annotation


def _mismatch(site: Site, signatures: dict[str, Signature]) -> str | None:
    assert site.script is not None and site.keys is not None and site.args is not None
    declared = signatures.get(site.script)
    if declared is None:
        return f"there is no script {site.script!r} in gateway/lua/"
    wrong = []
    if not fits(site.keys, declared.keys, declared.more_keys):
        wrong.append(f"{site.keys} KEYS where the header declares {_declared(declared.keys, declared.more_keys)}")
    if not fits(site.args, declared.args, declared.more_args):
        wrong.append(f"{site.args} ARGV where the header declares {_declared(declared.args, declared.more_args)}")
    return "; ".join(wrong) or None


def _declared(n: int, more: bool) -> str:
    return f"at least {n}" if more else str(n)


def modules_of(files: dict[str, str]) -> dict[str, Module]:
    """Parsed modules by dotted name, from {relative path: text}."""
    modules: dict[str, Module] = {}
    for rel, text in files.items():
        name = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        modules[name] = Source(rel, text, modules)
    return modules


def scan_all(files: dict[str, str], signatures: dict[str, Signature]) -> Scan:
    out = Scan()
    for module in modules_of(files).values():
        assert isinstance(module, Source)
        one = scan(module, signatures)
        out.sites += one.sites
        out.sources += one.sources
    return out


def problems(found: Scan, signatures: dict[str, Signature], pass_through: dict[tuple[str, str], str]) -> list[str]:
    """Everything wrong with the calls found: a wrong count, a list that cannot be counted, an
    unknown script, a script nobody calls, a source(name) no checked call uses, a stale entry."""
    out, used = [], set()
    for s in found.sites:
        if s.forwards:
            if (s.module.rel, s.function) in pass_through:
                used.add((s.module.rel, s.function))
            else:
                out.append(f"{s}: forwards its own parameters; its callers cannot be found (see PASS_THROUGH)")
        elif s.problem:
            out.append(f"{s}: {s.problem}")
    called = {s.script for s in found.sites if s.script}
    out += [f"the script {name!r} has no caller" for name in sorted(set(signatures) - called)]
    loads = {id(s.loads) for s in found.sites if s.loads is not None}
    for module, call in found.sources:
        if id(call) not in loads:
            out.append(f"{module.rel}:{call.lineno}: {ast.unparse(call)} is loaded, but no call of it is checked")
    out += [
        f"PASS_THROUGH entry {f} {fn}() matches no call (remove it)" for f, fn in pass_through if (f, fn) not in used
    ]
    return out


def repository() -> dict[str, str]:
    return {
        p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
        for folder in FOLDERS
        for p in sorted((ROOT / folder).rglob("*.py"))
    }


_READ = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")


def read_past_header(text: str) -> list[str]:
    """The KEYS[i] / ARGV[i] a script's code reads beyond what its header declares."""
    declared = parse_signature(text)
    code, _ = lua_split(text)
    out = []
    for kind, index in _READ.findall(code):
        limit, more = (declared.keys, declared.more_keys) if kind == "KEYS" else (declared.args, declared.more_args)
        if int(index) > limit and not more:
            out.append(f"reads {kind}[{index}] but its header declares {limit}")
    return out


def test_every_header_declares_its_keys_and_args_one_by_one() -> None:
    """Each script's header parses, and its code reads no KEYS[i] / ARGV[i] past what it declares."""
    failures = []
    for name in scripts.names():
        try:
            failures += [f"{name}.lua {w}" for w in read_past_header((LUA_DIR / f"{name}.lua").read_text("utf-8"))]
        except ValueError as exc:
            failures.append(f"{name}.lua: {exc}")
    assert not failures, "headers that do not say what the script takes:\n  " + "\n  ".join(failures)


def test_every_script_starts_with_the_lua_shebang() -> None:
    """`#!lua` on the first line: Redis 7 takes the script's flags from it (and a cluster holds a
    shebang script to its declared keys); an include never comes before it."""
    missing = [n for n in scripts.names() if not (LUA_DIR / f"{n}.lua").read_text("utf-8").startswith("#!lua\n")]
    assert not missing, f"scripts without `#!lua` on their first line: {missing}"
    lib = [p.name for p in (LUA_DIR / "lib").glob("*.lua") if p.read_text("utf-8").startswith("#!")]
    assert not lib, f"an included fragment must not carry a shebang (it lands mid-script): {lib}"


def test_the_header_parser_refuses_a_gap() -> None:
    head = "-- x.lua: what it does.\n--\n-- KEYS[1] a   KEYS[2] b\n-- ARGV[1] c   ARGV[2] d\n"
    assert parse_signature(head + "return 1") == Signature(2, 2)
    assert parse_signature(head + "-- ARGV[3..] e\nreturn 1") == Signature(2, 2, more_args=True)
    assert parse_signature("-- KEYS[1] a\nlocal x = ARGV[9]") == Signature(1, 0)  # code is no header
    assert parse_signature("-- KEYS[1..] every key\nreturn 1") == Signature(0, 0, more_keys=True)
    assert read_past_header(head + "return {KEYS[2], ARGV[2]} -- not ARGV[3]") == []
    assert read_past_header(head + "return ARGV[3]") == ["reads ARGV[3] but its header declares 2"]
    for bad in ("-- KEYS[1] a   KEYS[3] c\n", "-- ARGV[1] a\n-- ARGV[3..] c\n", "-- ARGV[2] b\n"):
        try:
            parse_signature(bad + "return 1")
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_every_caller_passes_what_the_header_declares() -> None:
    signatures = scripts.signatures()
    wrong = problems(scan_all(repository(), signatures), signatures, PASS_THROUGH)
    assert not wrong, "calls of Lua scripts that do not match the script's header:\n  " + "\n  ".join(wrong)


def test_the_scan_sees_every_caller() -> None:
    """The known callers all show up, and enough calls, so a change in how calls look (a new
    wrapper, a renamed method) cannot make the check above pass by seeing nothing."""
    found = scan_all(repository(), scripts.signatures())
    checked = [s for s in found.sites if not s.forwards]
    seen = {s.module.rel for s in checked}
    missing = [rel for rel in KNOWN_CALLERS if rel not in seen]
    assert not missing, f"no call of a script found in {missing}"
    assert len(checked) >= MIN_SITES, f"only {len(checked)} calls of scripts found: {[str(s) for s in checked]}"
    assert len(found.sources) >= 5, [f"{m.rel}:{c.lineno}" for m, c in found.sources]


# A module that calls scripts in each way the counter must follow (good) and gets each wrong in a
# way it must catch (bad), with a wrapper it must not take for a caller.
EXAMPLE = """
from dataclasses import dataclass
from gateway.platform.redis.scripts import source
from lib import build


@dataclass(frozen=True)
class Kind:
    script: str
    keys: object


def _two(a):
    return [a, a]


def _one(a):
    return [a]


GOOD = Kind("limit", _two)


@dataclass(frozen=True)
class Other:
    script: str
    keys: object


FIRST = Other("pconv_add", _one)
SECOND = Other(keys=_two, script="limit")


class Target:
    def __init__(self, name, text, keys, args):
        self.name, self.text, self.keys, self.args = name, text, keys, args


def pair(a) -> tuple[str, str]:
    return compute(a)


def built(a):
    keys = [a, a, a, a, a, a, a, a, a, a]
    args = [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a]
    return keys, args


async def good(svc, redis, resp, a, rows, kind: Kind):
    await svc.run("limit", [a, a], [])
    keys = [a]
    args: list = [a]
    args += [a]
    await svc.run("pconv_add", keys, args)
    head = [a, a]
    batch = [a, a, a, a, a, a]
    for row in rows:
        batch += [row, row, row]
    await svc.run("balance_batch", list(head) if rows else [*head, *(r for r in rows)], batch)
    await svc.run("pconv_add", [*_one(a)], [*pair(a)])
    await svc.run("limit", GOOD.keys(a), [])
    await svc.run(kind.script, kind.keys(a), [])
    hold_keys, hold_args = built(a)
    await svc.run("empenho_hold", hold_keys, hold_args)
    sha = await redis.script_load(source("pconv_add"))
    await redis.evalsha(sha, 1, a, a, a)
    hold = await redis.script_load(source("empenho_hold"))
    pipe = redis.pipeline()
    calls = [build(a) for _ in rows]
    for ks, vs in calls[0:10]:
        pipe.evalsha(hold, len(ks), *ks, *vs)
    Target("limit", source("limit"), [a, a], [])
    await resp.evalsha("sha", source("limit"), [a, a], [])
    await resp.evalsha("sha", "return 1", [a], [])  # a literal text: no script of ours


async def forward(svc, name, keys, args):
    return await svc.run(name, keys, args)


async def bad(svc, redis, a, rows, name, given, other: Other):
    await svc.run("limit", [a], [])
    await svc.run("pconv_add", [a], [a])
    await svc.run("no_such_script", [], [])
    args = [a, a, a, a, a, a, a]
    args += [a, a, a, a, a, a, a, a, a, a]
    keys, _ = build(a)
    await svc.run("empenho_hold", keys, args)
    await svc.run("pconv_add", [a], given)
    await svc.run("balance_batch", [a], [a, a, a, a, a, a])
    await svc.run("balance_batch", [a, a], [a, a, a, a, a])
    await svc.run(name, [a], [a, a])
    await svc.run("pconv_add", [a], [a, *rows])
    sha = await redis.script_load(source("pconv_add"))
    await redis.evalsha(sha, 2, a, a, a)
    await redis.evalsha(sha, 1, a, a)
    extra = [a]
    if rows:
        extra += [a]
    await svc.run("pconv_add", [a], extra)
    await svc.run(other.script, other.keys(a), [a, a])
    await svc.run(name.script, [a, a], [])
    Target("pconv_add", source("pconv_add"), [a], [])
    await svc.run("limit", *given)
    grown = [a]
    grown.append(a)
    await svc.run("pconv_add", [a], grown)
    await services.run("limit", [a, a], [])
    unused = source("limit")
"""
LIB = """
def build(a):
    return [a, a, a, a, a, a, a, a, a, a], [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a]
"""


def test_the_checker_refuses_what_it_should() -> None:
    """The counter itself: every call in good() passes and every call in bad() is caught (but
    one: other.script is each Other in turn, and FIRST's call is right); a script with no caller,
    an unlisted wrapper, a stale PASS_THROUGH entry and an unused source() are caught too."""
    files = {"example.py": EXAMPLE, "lib.py": LIB}
    signatures = scripts.signatures()
    found = scan_all(files, signatures)
    good = [s for s in found.sites if s.function == "good"]
    bad = [s for s in found.sites if s.function == "bad"]
    assert len(good) == 11 and [s.problem for s in good] == [None] * 11, [f"{s}: {s.problem}" for s in good]
    assert len(bad) == 19, [f"{s}: {s.problem}" for s in bad]
    right = [str(s) for s in bad if s.problem is None]
    assert right == [f"example.py:{_line('other.script')} in bad(): pconv_add (as FIRST)"], right
    assert {s.script for s in bad if s.problem and "no script" in s.problem} == {"no_such_script"}
    wrong = problems(found, signatures, {("example.py", "nowhere"): "stale"})
    assert "the script 'credit_hold' has no caller" in wrong
    assert "the script 'limit' has no caller" not in wrong
    unused = f"example.py:{_line('unused =')}: source('limit') is loaded, but no call of it is checked"
    assert unused in wrong, wrong
    assert "PASS_THROUGH entry example.py nowhere() matches no call (remove it)" in wrong, wrong
    assert any(w.startswith(f"example.py:{_line('return await svc.run(name')} in forward()") for w in wrong), wrong
    assert not problems(found, signatures, {("example.py", "forward"): "a wrapper"})[-1].startswith("PASS_THROUGH")


def _line(text: str) -> int:
    """The line of EXAMPLE that holds `text`."""
    return next(i for i, line in enumerate(EXAMPLE.splitlines(), 1) if text in line)


# -- Lua text ------------------------------------------------------------------------------------
_LONG = re.compile(r"\[(=*)\[")


def lua_split(text: str) -> tuple[str, list[tuple[int, str]]]:
    """A Lua text's code with every comment blanked (lines kept, so positions still hold), and
    its string literals as (line, value)."""
    out: list[str] = []
    strings: list[tuple[int, str]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        if text.startswith("--", i):
            long = _LONG.match(text, i + 2)
            if long:
                close = text.find(f"]{long.group(1)}]", long.end())
                end = n if close < 0 else close + len(long.group(1)) + 2
            else:
                close = text.find("\n", i)
                end = n if close < 0 else close
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
        elif text[i] in "'\"":
            end = i + 1
            while end < n and text[end] != text[i] and text[end] != "\n":
                end += 2 if text[end] == "\\" else 1
            end += 1
            strings.append((line, text[i + 1 : end - 1]))
            out.append(text[i:end])
        elif long := _LONG.match(text, i):
            close = text.find(f"]{long.group(1)}]", long.end())
            end = n if close < 0 else close + len(long.group(1)) + 2
            strings.append((line, text[long.end() : close]))
            out.append(text[i:end])
        else:
            end = i + 1
            out.append(text[i])
        line += text.count("\n", i, end)
        i = end
    return "".join(out), strings


def lua_files() -> dict[str, str]:
    """Every Lua file, scripts and included fragments, by path."""
    return {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in sorted(LUA_DIR.rglob("*.lua"))}


# -- error codes ---------------------------------------------------------------------------------
_FUNCTION = re.compile(r"\bfunction\s+(\w+)\s*\(([^)]*)\)")
_CODE_FIELD = re.compile(r"\b(?:code|error)\s*=(?!=)\s*(['\"])([^'\"]*)\1")
_LITERAL = re.compile(r"^(['\"])(.*)\1$", re.DOTALL)
_CODE_SHAPE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _arguments(code: str, start: int) -> list[str]:
    """The top-level arguments of the call whose `(` is at `start`."""
    args, depth, i, begin = [], 0, start + 1, start + 1
    while i < len(code):
        c = code[i]
        if c in "'\"":
            i = code.index(c, i + 1)
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                args.append(code[begin:i].strip())
                return args
            depth -= 1
        elif c == "," and depth == 0:
            args.append(code[begin:i].strip())
            begin = i + 1
        i += 1
    return args


def returned_codes(files: dict[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The error codes the Lua files return, as (file:line, code), and the code-shaped literals
    (UPPER_SNAKE) found in none of those places. A code is a literal passed where a function's
    parameter named `code` (or `..._code`) is, as `fail(code, extra)` and its wrappers take it,
    or one assigned to a `code` or `error` field."""
    split = {rel: lua_split(text) for rel, text in files.items()}
    positions: dict[str, int] = {}
    for code, _ in split.values():
        for m in _FUNCTION.finditer(code):
            params = [p.strip() for p in m.group(2).split(",")]
            at = [i for i, p in enumerate(params) if p == "code" or p.endswith("_code")]
            if at:
                assert positions.get(m.group(1), at[0]) == at[0], f"{m.group(1)}() takes its code in two places"
                positions[m.group(1)] = at[0]
    found: list[tuple[str, str]] = []
    for rel, (code, _) in split.items():
        for name, position in positions.items():
            for m in re.finditer(rf"\b{name}\s*\(", code):
                args = _arguments(code, m.end() - 1)
                literal = _LITERAL.match(args[position]) if position < len(args) else None
                if literal:
                    found.append((f"{rel}:{code.count(chr(10), 0, m.start()) + 1}", literal.group(2)))
        for m in _CODE_FIELD.finditer(code):
            found.append((f"{rel}:{code.count(chr(10), 0, m.start()) + 1}", m.group(2)))
    placed = {c for _, c in found}
    stray = sorted(
        f"{rel}:{line}: {value}"
        for rel, (_, strings) in split.items()
        for line, value in strings
        if _CODE_SHAPE.fullmatch(value) and value not in placed
    )
    return found, stray


def test_every_error_code_a_script_returns_is_an_error_code() -> None:
    found, stray = returned_codes(lua_files())
    members = {c.value for c in ErrorCode}
    unknown = sorted({f"{where}: {code}" for where, code in found if code not in members})
    assert not unknown, "error codes the scripts return that ErrorCode does not have:\n  " + "\n  ".join(unknown)
    assert not stray, "code-like literals the scan cannot place (a new way of returning a code?):\n  " + "\n  ".join(
        stray
    )
    distinct = {code for _, code in found}
    assert len(found) >= MIN_CODE_RETURNS and len(distinct) >= MIN_CODES, (len(found), sorted(distinct))


def test_the_code_scan_finds_what_it_should() -> None:
    lua = """
-- fail('IN_A_COMMENT') is no code
--[[ nor is fail('IN_A_BLOCK') ]]
local function refuse(code, extra) return fail(code, extra) end
local function decline(status, code, available) return {s = status, error = code} end
local function expired(not_pending_code, protocol) return fail(not_pending_code) end
local function fail(code, extra) return cjson.encode({ok = false, code = code, x = extra}) end
if a then return fail('UNKNOWN_CONVENIO') end
if b then return refuse('NOT_A_CODE', {x = 1}) end
if c then return decline(422, 'ALSO_NOT_A_CODE', f(1, 2)) end
if d then return expired("NOR_THIS", p) end
local over = {code = 'NOR_THAT', scope = 'P'}
who.error = 'UNKNOWN_PARTICIPANT'
if e == 'ACTIVE' then x = "STRAY_CODE" end
"""
    found, stray = returned_codes({"x.lua": lua})
    assert sorted(c for _, c in found) == sorted(
        ["UNKNOWN_CONVENIO", "NOT_A_CODE", "ALSO_NOT_A_CODE", "NOR_THIS", "NOR_THAT", "UNKNOWN_PARTICIPANT"]
    ), found
    assert ("x.lua:9", "NOT_A_CODE") in found
    assert stray == ["x.lua:14: STRAY_CODE"], stray
    members = {c.value for c in ErrorCode}
    assert {c for _, c in found if c not in members} == {"NOT_A_CODE", "ALSO_NOT_A_CODE", "NOR_THIS", "NOR_THAT"}
