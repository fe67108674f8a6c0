"""Stores (lojas) and their terminals (PDVs) as records, and what a store-scoped API key may do."""
