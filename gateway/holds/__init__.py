"""The checkout: the limit query, empenhos (holds on a convênio's balance) placed, committed and
cancelled, the limit windows they count in, the hold lifecycle both kinds of hold share, and expiry."""
