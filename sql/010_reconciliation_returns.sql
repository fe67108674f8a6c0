-- 010_reconciliation_returns: the closing files' RETURN lines (devoluções), matched against the
-- ledger's empenho_returns like the SALE lines against the committed empenhos, and what a
-- reconciled return moves in the convênio's receivable. ledger/reconciliation/reconcile.py writes
-- these tables; the line's format is in docs/reconciliation.md. Money is bigint centavos.

-- A RETURN record names the return it reports (empenho_returns.id): a file line as the file
-- wrote it (kept whether matched or not), a ledger-side record the return no line reported.
-- Its amounts are negative, as the file writes them (-1200: R$ 12,00 given back); its
-- empenho_id is the sale returned, once matched. A return is claimed by one line at a time and
-- has at most one ledger-side record, as a sale.
ALTER TABLE reconciliation_records ADD COLUMN return_id text;

-- was: a ledger-side record is a sale's
ALTER TABLE reconciliation_records DROP CONSTRAINT reconciliation_records_check1;
ALTER TABLE reconciliation_records ADD CONSTRAINT reconciliation_records_ledger_side_check
    CHECK (origin = 'FILE' OR (empenho_id IS NOT NULL AND type IN ('SALE', 'RETURN')));
-- was: every line but a SALE is informative
ALTER TABLE reconciliation_records DROP CONSTRAINT reconciliation_records_check2;
ALTER TABLE reconciliation_records ADD CONSTRAINT reconciliation_records_informative_check
    CHECK ((state = 'INFORMATIVE') = (type NOT IN ('SALE', 'RETURN')));
ALTER TABLE reconciliation_records ADD CONSTRAINT reconciliation_records_return_check
    CHECK ((type = 'RETURN') = (return_id IS NOT NULL));
ALTER TABLE reconciliation_records ADD CONSTRAINT reconciliation_records_return_amount_check
    CHECK (type <> 'RETURN' OR amount < 0);
-- was: ledger_amount >= 0 (a sale's live amount, 0 when reversed); a return's is negative
ALTER TABLE reconciliation_records DROP CONSTRAINT reconciliation_records_ledger_amount_check;
ALTER TABLE reconciliation_records ADD CONSTRAINT reconciliation_records_ledger_amount_check
    CHECK (CASE WHEN type = 'RETURN' THEN ledger_amount < 0 ELSE ledger_amount >= 0 END);

-- the sale's claim and ledger side are a SALE record's; a return line names the sale too
DROP INDEX reconciliation_records_claim;
CREATE UNIQUE INDEX reconciliation_records_claim ON reconciliation_records (empenho_id)
    WHERE origin = 'FILE' AND type = 'SALE' AND state IN ('RECONCILED', 'DIVERGENT');
DROP INDEX reconciliation_records_ledger_side;
CREATE UNIQUE INDEX reconciliation_records_ledger_side ON reconciliation_records (empenho_id)
    WHERE origin = 'LEDGER' AND type = 'SALE';
CREATE UNIQUE INDEX reconciliation_records_return_claim ON reconciliation_records (return_id)
    WHERE origin = 'FILE' AND type = 'RETURN' AND state IN ('RECONCILED', 'DIVERGENT');
CREATE UNIQUE INDEX reconciliation_records_return_ledger_side ON reconciliation_records (return_id)
    WHERE origin = 'LEDGER' AND type = 'RETURN';

-- a file's return lines: how many, and the centavos they give back (the lines' amounts negated)
ALTER TABLE closing_files ADD COLUMN returns integer NOT NULL DEFAULT 0 CHECK (returns >= 0);
ALTER TABLE closing_files ADD COLUMN returns_amount bigint NOT NULL DEFAULT 0 CHECK (returns_amount >= 0);

-- The receivable: a reconciled return given back to the convênio's pool takes its amount off
-- (RETURN); undoing that reconciliation puts it back (RETURN_UNDONE). A return refunded as a
-- DEVOLUCAO credit moves nothing: the convênio still pays for the sale. `return_id` names the
-- return of a RETURN or RETURN_UNDONE movement.
ALTER TABLE receivable_movements ADD COLUMN return_id text;
ALTER TABLE receivable_movements DROP CONSTRAINT receivable_movements_kind_check;
ALTER TABLE receivable_movements ADD CONSTRAINT receivable_movements_kind_check
    CHECK (kind IN ('RECONCILED', 'UNDONE', 'REVERSED', 'RETURN', 'RETURN_UNDONE'));
-- was: (kind = 'RECONCILED') = (amount > 0)
ALTER TABLE receivable_movements DROP CONSTRAINT receivable_movements_check;
ALTER TABLE receivable_movements ADD CONSTRAINT receivable_movements_sign_check
    CHECK ((kind IN ('RECONCILED', 'RETURN_UNDONE')) = (amount > 0));
ALTER TABLE receivable_movements ADD CONSTRAINT receivable_movements_return_check
    CHECK ((kind IN ('RETURN', 'RETURN_UNDONE')) = (return_id IS NOT NULL));
