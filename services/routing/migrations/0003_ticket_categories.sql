-- The category of each ticket routing knows of: a category that open tickets use cannot
-- be deleted (WORKFLOW.md, "Categories and departments").
ALTER TABLE routing.tickets ADD COLUMN category_id text;
CREATE INDEX tickets_open_category ON routing.tickets (category_id) WHERE open;
