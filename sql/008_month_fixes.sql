-- 008_month_fixes: each attempt to give a duplicata's amount back counts itself, so a later
-- attempt knows an earlier one may have died half-way (and reads the journal to skip what
-- it did), whatever the clocks say.
ALTER TABLE duplicatas ADD COLUMN restore_attempts integer NOT NULL DEFAULT 0 CHECK (restore_attempts >= 0);
