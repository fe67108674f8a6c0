"""Who may call: API keys and their permission codes, the integration key, and the participant's
password check with its lockout and single-use proof."""
