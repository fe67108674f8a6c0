-- 013_personal_data: a participant's document (CPF/CNPJ) is no longer kept in clear. The gateway
-- stores a keyed digest (HMAC-SHA-256, for the search), a sealed copy (AES-GCM, for the privacy
-- export) and a mask (for screens); the key is outside the database (CONVENIO_DATA_KEY), so this
-- migration cannot digest or seal a document already stored. It keeps the mask of each existing
-- one and removes the clear value from the column, the registry records, the decisions and the
-- journal: such a participant is shown masked and is found by the search once its document is
-- entered again (PATCH), or after `convenio privacy seal-legacy` while Redis still holds it.

ALTER TABLE participants
    ADD COLUMN document_digest text,
    ADD COLUMN document_sealed text,
    ADD COLUMN document_masked text NOT NULL DEFAULT '';

UPDATE participants AS p
SET document_masked = CASE length(n.doc)
        WHEN 11 THEN '***.' || substr(n.doc, 4, 3) || '.' || substr(n.doc, 7, 3) || '-**'
        WHEN 14 THEN '**.' || substr(n.doc, 3, 3) || '.' || substr(n.doc, 6, 3) || '/****-**'
        ELSE ''
    END
FROM (SELECT convenio, participant, upper(regexp_replace(document, '[.\-/[:space:]]', '', 'g')) AS doc
      FROM participants WHERE document <> '') AS n
WHERE p.convenio = n.convenio AND p.participant = n.participant;

UPDATE participants
SET record = (record - 'document')
    || CASE WHEN document_masked <> '' THEN jsonb_build_object('doc_masked', document_masked) ELSE '{}' END
WHERE record ? 'document';

ALTER TABLE participants DROP COLUMN document;

CREATE INDEX participants_by_document ON participants (document_digest) WHERE document_digest IS NOT NULL;

UPDATE journal
SET data = data #- '{record,document}' #- '{changed,document}'
WHERE type IN ('participant.created', 'participant.updated')
  AND (data -> 'record' ? 'document' OR data -> 'changed' ? 'document');

UPDATE decisions
SET request = request - 'document', answer = answer - 'document'
WHERE kind IN ('participant.created', 'participant.updated')
  AND (request ? 'document' OR answer ? 'document');
