"""A person's data (LGPD): everything held about a customer, exported as JSON, and erased (name,
document, password hash) while the ledger's amounts stay whole under a pseudonym."""
