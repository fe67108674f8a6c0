"""Projections of limit and status changes and limit-change requests (issue 7): registered in
ledger/projections.py's EXTENSIONS."""

from __future__ import annotations
