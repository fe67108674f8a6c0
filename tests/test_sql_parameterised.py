"""Every SQL statement the product sends to Postgres is a constant with `$n` parameters: no
value, and no identifier from outside the code, is ever formatted into SQL.

Read from the source with `ast`, so a new query is checked the day it is written. A statement
is constant when it is a string literal, a name bound only to constants (in the function, its
class or its module, or imported from another product module), or a join of such; anything
else fails, naming file:line and the expression, unless ALLOWED names it and says why.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "ledger")

#: asyncpg methods whose first argument is SQL text
SQL_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare", "copy_from_query"}
#: asyncpg methods whose first argument is a table name (and `columns=` its column names)
TABLE_METHODS = {"copy_to_table", "copy_records_to_table", "copy_from_table"}
#: methods whose positional arguments after the SQL are the values of $1, $2, ...
VALUES_FOLLOW = {"execute", "fetch", "fetchrow", "fetchval", "cursor", "copy_from_query"}
#: keyword names asyncpg gives the SQL / table argument
SQL_KEYWORDS = ("query", "command", "table_name")

# (file, function, expression): why this non-constant SQL is safe. Each entry must still match
# a call (a stale entry fails), and only that exact expression in that function is excused.
ALLOWED = {
    ("gateway/platform/postgres.py", "LedgerDB.fetch", "sql"): (
        "the pool wrapper forwards its `sql` parameter; its callers (`self.fetch(...)`) are "
        "themselves calls this test checks"
    ),
    ("ledger/writer/fold.py", "Table.write", "self._sql(full, names)"): (
        "INSERT ... ON CONFLICT / UPDATE built from the table's name, primary key and column "
        "names: identifiers named in the code (see test_projection_identifiers_are_named_in_code), "
        "every value a $n parameter"
    ),
    ("ledger/writer/fold.py", "Table.write", "f'DELETE FROM {self.name} WHERE {where}'"): (
        "the table's name and primary key columns, literals where each projection makes its Table; the key values "
        "are $n parameters"
    ),
    ("ledger/writer/fold.py", "copy", "table"): (
        "the append-only rows' table and columns, literals at each call (test_projection_identifiers_are_named_in_code)"
    ),
    ("ledger/privacy/personal.py", "export", "sql"): (
        "a value of HELD, a module-level dict of string literals, one per table keyed by a customer "
        "(test_the_export_reads_every_table_that_keeps_rows_by_customer checks it against the catalogue)"
    ),
    ("ledger/privacy/personal.py", "_scrub_json", "rewrite.select"): (
        "a field of a Rewrite in REWRITES, a module-level dict whose statements are string literals"
    ),
    ("ledger/privacy/personal.py", "_scrub_json", "rewrite.update"): (
        "a field of a Rewrite in REWRITES, a module-level dict whose statements are string literals"
    ),
    ("ledger/ops/migrate.py", "ensure_database", "f'CREATE DATABASE \"{name}\"'"): (
        "CREATE DATABASE takes no parameters; the name is DATABASE_URL's last segment, the "
        "operator's configuration, never a request's input"
    ),
    ("ledger/ops/migrate.py", "migrate", "path.read_text(encoding='utf-8')"): (
        "the text of a numbered migration file under sql/ (NNN_name.sql, from the repository); DDL takes no parameters"
    ),
}

_PLACEHOLDER = re.compile(r"\$(\d+)")


def product_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


class NotConstant(Exception):
    """Why an expression is not constant text."""


@dataclass
class Scope:
    node: ast.AST  # Module, ClassDef, FunctionDef or Lambda
    parent: Scope | None


class Module:
    """One parsed product module, and what its names are bound to."""

    def __init__(self, rel: str, source: str, modules: dict[str, Module]) -> None:
        self.rel = rel
        self.tree = ast.parse(source, filename=rel)
        self.modules = modules
        self.scope = Scope(self.tree, None)

    # -- where a name is bound ------------------------------------------------------------------
    @staticmethod
    def _body_nodes(scope_node: ast.AST) -> Iterator[ast.AST]:
        """Nodes that bind names in this scope (not in nested functions or classes)."""
        stack = list(ast.iter_child_nodes(scope_node))
        while stack:
            node = stack.pop()
            yield node
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                stack.extend(ast.iter_child_nodes(node))

    def _bindings(self, scope_node: ast.AST, name: str) -> list[ast.AST] | None:
        """What `name` is bound to in this scope (None: not bound here). A parameter or any
        binding that is not a plain assignment comes back as the binding node itself."""
        if isinstance(scope_node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            a = scope_node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
            if any(p.arg == name for p in params):
                return [scope_node]
        found: list[ast.AST] = []
        for node in self._body_nodes(scope_node):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == name:
                        found.append(node.value)
                    elif any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(target)):
                        found.append(node)  # unpacked: not followed
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                found.append(node.value if node.value is not None else node)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                found.append(node)
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.target)):
                    found.append(node)
            elif isinstance(node, ast.NamedExpr) and node.target.id == name:
                found.append(node)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.optional_vars)):
                    found.append(node)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        found.append(node)
            elif isinstance(node, ast.Import):
                if any((alias.asname or alias.name).split(".")[0] == name for alias in node.names):
                    found.append(node)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
                found.append(node)
        return found or None

    # -- constant text --------------------------------------------------------------------------
    def text(self, expr: ast.AST, scope: Scope, seen: frozenset[int] = frozenset()) -> str:
        """The constant text of `expr`, or NotConstant saying why not."""
        if id(expr) in seen:
            raise NotConstant("refers to itself")
        seen = seen | {id(expr)}
        if isinstance(expr, ast.Constant):
            if isinstance(expr.value, str):
                return expr.value
            raise NotConstant(f"a {type(expr.value).__name__}, not text")
        if isinstance(expr, ast.JoinedStr):
            if any(isinstance(v, ast.FormattedValue) for v in expr.values):
                raise NotConstant("an f-string interpolating values")
            return "".join(self.text(v, scope, seen) for v in expr.values)
        if isinstance(expr, ast.BinOp):
            if isinstance(expr.op, ast.Add):
                return self.text(expr.left, scope, seen) + self.text(expr.right, scope, seen)
            if isinstance(expr.op, ast.Mod):
                raise NotConstant("%-formatting")
            raise NotConstant(f"a {type(expr.op).__name__} expression")
        if isinstance(expr, ast.Name):
            return self._name_text(expr.id, scope, seen)
        if isinstance(expr, ast.Attribute):
            return self._attribute_text(expr, scope, seen)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            if expr.func.attr == "format":
                raise NotConstant("str.format")
            if expr.func.attr == "join" and len(expr.args) == 1 and not expr.keywords:
                separator = self.text(expr.func.value, scope, seen)
                return separator.join(self.texts(expr.args[0], scope, seen))
        raise NotConstant(f"a {type(expr).__name__} computed at run time")

    def texts(self, expr: ast.AST, scope: Scope, seen: frozenset[int] = frozenset()) -> list[str]:
        """A constant tuple or list of texts (column names, parts to join)."""
        if isinstance(expr, ast.Tuple | ast.List):
            return [self.text(e, scope, seen) for e in expr.elts]
        if isinstance(expr, ast.Name):
            values = self._binding_values(expr.id, scope)
            if len(values) == 1:
                value, where = values[0]
                if isinstance(value, ast.ImportFrom):
                    source, name = self._imported(value, expr.id)
                    return source.texts(ast.Name(name, ast.Load()), source.scope)
                return self.texts(value, where, seen)
        raise NotConstant(f"`{ast.unparse(expr)}` is not a constant tuple of texts")

    def _binding_values(self, name: str, scope: Scope) -> list[tuple[ast.AST, Scope]]:
        """The expressions `name` is bound to, in the innermost scope that binds it."""
        s: Scope | None = scope
        while s is not None:
            # a class body's names are not visible in its methods' bodies
            if s is scope or not isinstance(s.node, ast.ClassDef):
                bindings = self._bindings(s.node, name)
                if bindings is not None:
                    return [(b, s) for b in bindings]
            s = s.parent
        raise NotConstant(f"`{name}` is not bound in this module")

    def _name_text(self, name: str, scope: Scope, seen: frozenset[int]) -> str:
        values = self._binding_values(name, scope)
        texts = set()
        for value, where in values:
            if isinstance(value, ast.ImportFrom):
                source, original = self._imported(value, name)
                texts.add(source.text(ast.Name(original, ast.Load()), source.scope))
            elif isinstance(value, ast.expr):
                try:
                    texts.add(self.text(value, where, seen))
                except NotConstant as exc:
                    raise NotConstant(f"`{name}` is bound to `{ast.unparse(value)}`: {exc}") from None
            elif isinstance(value, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                raise NotConstant(f"`{name}` is a parameter")
            else:
                raise NotConstant(f"`{name}` is bound by a {type(value).__name__}")
        if len(texts) != 1:
            raise NotConstant(f"`{name}` is bound to different texts")
        return texts.pop()

    def _imported(self, node: ast.ImportFrom, name: str) -> tuple[Module, str]:
        """The product module `name` is imported from, and its name there."""
        alias = next(a for a in node.names if (a.asname or a.name) == name)
        source = self.modules.get(node.module or "")
        if source is None or node.level:
            raise NotConstant(f"`{name}` comes from outside the product ({node.module})")
        return source, alias.name

    def _attribute_text(self, expr: ast.Attribute, scope: Scope, seen: frozenset[int]) -> str:
        """`self.X`, `cls.X` or `Class.X` inside that class: its class-level constant."""
        owner = expr.value
        s: Scope | None = scope
        while s is not None and not isinstance(s.node, ast.ClassDef):
            s = s.parent
        if s is None or not isinstance(owner, ast.Name) or owner.id not in ("self", "cls", s.node.name):
            raise NotConstant(f"`{ast.unparse(expr)}` is an attribute computed at run time")
        cls = s.node
        assert isinstance(cls, ast.ClassDef)
        bindings = self._bindings(cls, expr.attr)
        # a dataclass field's default, or an attribute a method sets, is the instance's to change
        dataclass = any("dataclass" in ast.unparse(d) for d in cls.decorator_list)
        set_on_instance = any(
            isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and n.attr == expr.attr for n in ast.walk(cls)
        )
        if not bindings or not all(isinstance(b, ast.expr) for b in bindings) or dataclass or set_on_instance:
            raise NotConstant(f"`{ast.unparse(expr)}` is not a class-level constant")
        return self._name_text(expr.attr, s, seen)


@dataclass
class SqlCall:
    module: Module
    function: str
    call: ast.Call
    method: str
    argument: ast.AST
    scope: Scope

    @property
    def where(self) -> str:
        return f"{self.module.rel}:{self.call.lineno}"


def _calls(module: Module) -> Iterator[SqlCall]:
    def visit(node: ast.AST, scope: Scope, qualname: str) -> Iterator[SqlCall]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{qualname}.{child.name}" if qualname else child.name
                yield from visit(child, Scope(child, scope), name)
                continue
            if isinstance(child, ast.Lambda):
                yield from visit(child, Scope(child, scope), qualname)
                continue
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                method = child.func.attr
                if method in SQL_METHODS | TABLE_METHODS:
                    argument: ast.AST | None = child.args[0] if child.args else None
                    for kw in child.keywords:
                        if kw.arg in SQL_KEYWORDS:
                            argument = kw.value
                    # no argument: a Redis pipeline's execute(), which carries no SQL
                    if argument is not None:
                        yield SqlCall(module, qualname or "<module>", child, method, argument, scope)
            yield from visit(child, scope, qualname)

    return visit(module.tree, module.scope, "")


def all_calls() -> list[SqlCall]:
    modules: dict[str, Module] = {}
    for path in product_files():
        rel = path.relative_to(ROOT).as_posix()
        modules[_module_name(path)] = Module(rel, path.read_text(encoding="utf-8"), modules)
    return [c for m in modules.values() for c in _calls(m)]


def _problem(c: SqlCall) -> str | None:
    """What is wrong with one call, or None."""
    if isinstance(c.argument, ast.Starred):
        return f"the SQL comes from `{ast.unparse(c.argument)}`, which cannot be checked"
    try:
        sql = c.module.text(c.argument, c.scope)
    except NotConstant as exc:
        return f"`{ast.unparse(c.argument)}` is not constant SQL: {exc}"
    if c.method in TABLE_METHODS:
        for kw in c.call.keywords:
            if kw.arg in ("columns", "schema_name") and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is None
            ):
                try:
                    if kw.arg == "columns":
                        c.module.texts(kw.value, c.scope)
                    else:
                        c.module.text(kw.value, c.scope)
                except NotConstant as exc:
                    return f"{kw.arg}=`{ast.unparse(kw.value)}`: {exc}"
        return None
    if c.method in VALUES_FOLLOW and not any(isinstance(a, ast.Starred) for a in c.call.args):
        wanted = max((int(n) for n in _PLACEHOLDER.findall(sql)), default=0)
        given = len(c.call.args) - 1
        if wanted != given:
            return f"the SQL uses ${wanted} at most but {given} value(s) are passed: every value goes in a $n"
    return None


def test_every_sql_statement_is_a_constant_with_parameters() -> None:
    calls = all_calls()
    assert calls, "found no SQL call in gateway/ or ledger/: the scan is broken, not the code clean"
    failures, used = [], set()
    for c in calls:
        problem = _problem(c)
        if problem is None:
            continue
        entry = (c.module.rel, c.function, ast.unparse(c.argument))
        if entry in ALLOWED:
            used.add(entry)
            continue
        failures.append(f"{c.where} in {c.function}(): .{c.method}({ast.unparse(c.argument)}) - {problem}")
    assert not failures, "SQL that is not a constant with $n parameters:\n  " + "\n  ".join(failures)
    stale = [f"{f} {fn}(): {expr}" for f, fn, expr in ALLOWED if (f, fn, expr) not in used]
    assert not stale, "ALLOWED entries that match no call any more (remove them):\n  " + "\n  ".join(stale)


def test_the_scan_sees_every_query_module() -> None:
    """The modules known to talk to Postgres all show up, so a change in how calls look (a
    new wrapper, a renamed method) cannot make the first test pass by seeing nothing."""
    modules = {c.module.rel for c in all_calls()}
    known = (
        "gateway/platform/postgres.py",
        "ledger/ops/migrate.py",
        "ledger/writer/fold.py",
        "ledger/writer/writer.py",
    )
    for rel in (*known, "ledger/ops/verify.py", "ledger/ops/rebuild.py"):
        assert rel in modules, f"no SQL call found in {rel}"


def test_the_checker_refuses_what_it_should() -> None:
    """The resolver itself: constants pass, every way of formatting a value in fails."""
    source = """
from queries import COUNT
SELECT = "SELECT * FROM t WHERE id = $1"
COLUMNS = ("a", "b")
JOINED = "SELECT " + ", ".join(COLUMNS) + " FROM t"
class Q:
    BY_ID = SELECT
    async def good(self, conn, x):
        local = "SELECT 1"
        await conn.fetch(SELECT, x)
        await conn.fetch(self.BY_ID, x)
        await conn.fetch(JOINED)
        await conn.fetch(local)
        await conn.fetch(f"SELECT 2" " + 2")
        await conn.copy_records_to_table("t", records=[], columns=COLUMNS)
        await conn.fetchval(COUNT)
    async def bad(self, conn, x, table):
        await conn.fetch(f"SELECT * FROM t WHERE id = {x}")
        await conn.fetch("SELECT * FROM t WHERE id = %s" % x)
        await conn.fetch("SELECT * FROM t WHERE id = {}".format(x))
        await conn.fetch("SELECT * FROM " + table)
        await conn.fetch(table)
        await conn.fetch(self.name)
        await conn.fetch(SELECT)
        await conn.execute(query=f"DROP TABLE {table}")
        await conn.copy_records_to_table(table, records=[])
        await conn.copy_records_to_table("t", records=[], columns=[table])
        sql = "SELECT * FROM t WHERE "
        sql += x
        await conn.fetch(sql)
"""
    modules: dict[str, Module] = {}
    modules["queries"] = Module("queries.py", 'COUNT = "SELECT count(*) FROM t"', modules)
    module = Module("example.py", source, modules)
    results = {(c.function, c.call.lineno): _problem(c) for c in _calls(module)}
    good = [p for (fn, _), p in results.items() if fn == "Q.good"]
    bad = [p for (fn, _), p in results.items() if fn == "Q.bad"]
    assert len(good) == 7 and good == [None] * 7, good
    assert len(bad) == 11 and all(bad), bad


# -- the allowlisted projections: their identifiers come from the code ----------------------------
def _projections() -> list[tuple[str, ast.Module]]:
    return [
        (p.relative_to(ROOT).as_posix(), ast.parse(p.read_text(encoding="utf-8")))
        for p in sorted((ROOT / "ledger" / "writer").glob("*.py"))
    ]


def _literal_keys(d: ast.Dict) -> bool:
    return all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in d.keys)


def test_projection_identifiers_are_named_in_code() -> None:
    """Table.write formats its table, key and column names into SQL (ALLOWED above): that is
    safe while every Table(...) is made from literals and every column a fold writes is the
    literal key of a dict in the code, never a key taken from an event's data."""
    tables, puts = 0, 0
    for rel, func in ((rel, f) for rel, tree in _projections() for f in ast.walk(tree)):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for call in ast.walk(func):
            if not isinstance(call, ast.Call):
                continue
            where = f"{rel}:{call.lineno}"
            if isinstance(call.func, ast.Name) and call.func.id == "Table":
                tables += 1
                name, pk = call.args
                assert isinstance(name, ast.Constant) and isinstance(name.value, str), f"{where}: table name"
                assert isinstance(pk, ast.Tuple) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in pk.elts
                ), f"{where}: primary key columns must be literals"
            if isinstance(call.func, ast.Attribute) and call.func.attr == "put" and func.name != "put":
                puts += 1
                columns = call.args[1]
                if isinstance(columns, ast.Dict):
                    assert _literal_keys(columns), f"{where}: column names must be literal keys"
                    continue
                assert isinstance(columns, ast.Name), f"{where}: columns from `{ast.unparse(columns)}`"
                for node in ast.walk(func):
                    target = None
                    if isinstance(node, ast.Assign):
                        target, value = node.targets[0], node.value
                    elif isinstance(node, ast.AnnAssign):
                        target, value = node.target, node.value
                    if isinstance(target, ast.Name) and target.id == columns.id:
                        assert isinstance(value, ast.Dict) and _literal_keys(value), f"{where}: {columns.id}"
                    if isinstance(target, ast.Subscript) and ast.unparse(target.value) == columns.id:
                        assert isinstance(target.slice, ast.Constant), f"{where}: {ast.unparse(target)}"
                    if (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and ast.unparse(node.func.value) == columns.id
                    ):
                        raise AssertionError(f"{where}: `{columns.id}` changed by {ast.unparse(node)}")
    assert tables >= 6 and puts >= 10, (tables, puts)
