"""Projections of the customers' credits, credit holds and orders (issue 7): registered in
ledger/projections.py's EXTENSIONS."""

from __future__ import annotations
