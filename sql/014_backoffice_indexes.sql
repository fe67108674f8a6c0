-- 014_backoffice_indexes: what the back office's lists filter and order by. The decision log is
-- the large table: listed newest first by store (and terminal), which only the request names,
-- and by kind or outcome; the limit requests' worklist takes the open ones, urgent then oldest.
-- Convênios and participants are searched by a part of their code or name (LIKE '%q%'), which a
-- b-tree cannot serve: they are scanned (pg_trgm would, where a deployment has it).

CREATE INDEX decisions_by_store ON decisions ((request ->> 'store'), (request ->> 'terminal'), at DESC, protocol DESC);
CREATE INDEX decisions_by_kind ON decisions (kind, outcome, at DESC, protocol DESC);
CREATE INDEX limit_requests_worklist ON limit_requests (status, urgent DESC, requested_at, id);
CREATE INDEX convenios_newest ON convenios (created_at DESC, code DESC);
