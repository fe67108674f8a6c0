"""The back office's registry: convênios and their policies, participants, vehicles, movements,
limit-change requests and the change history of limits and statuses."""
