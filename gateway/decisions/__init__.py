"""The decision log read back: every decision the gateway took (a hold, a commit, a password
check, a registry change), approved or declined, under its protocol, as the ledger stored it."""
