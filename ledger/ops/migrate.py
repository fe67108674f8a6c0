"""Applies the numbered SQL files under sql/ in order, each once, recorded in schema_migrations.

Each file runs in its own transaction; an advisory lock makes two concurrent `migrate` runs
safe. Applied files are never edited: a change is a new file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import asyncpg

SQL_DIR = Path(os.environ.get("CONVENIO_SQL_DIR", Path(__file__).resolve().parents[2] / "sql"))
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK = 7_321_001  # advisory lock id: "convenio migrate"


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(sql_dir.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise RuntimeError(f"{path.name}: migration files are named NNN_name.sql")
        files.append((m.group(1), path))
    versions = [v for v, _ in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migration files share a number")
    return files


async def ensure_database(database_url: str) -> bool:
    """Create the database the URL names when it does not exist; True when it was created."""
    try:
        conn = await asyncpg.connect(database_url)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    base, _, name = database_url.rpartition("/")
    name = name.split("?")[0]
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')  # noqa: S608 - a name, from our own config
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await admin.close()
    return True


async def migrate(database_url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply what is missing; returns the names of the files applied now."""
    await ensure_database(database_url)
    conn = await asyncpg.connect(database_url)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    text PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version_, path in migration_files(sql_dir):
            if version_ in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version_, path.name)
            applied_now.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
        await conn.close()
    return applied_now
