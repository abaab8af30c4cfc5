-- French full-text search over subject, description and public comments, accent-insensitive.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION tickets.french_unaccent (COPY = pg_catalog.french);
ALTER TEXT SEARCH CONFIGURATION tickets.french_unaccent
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem;

ALTER TABLE tickets.ticket_view ADD COLUMN search tsvector NOT NULL DEFAULT ''::tsvector;
CREATE INDEX ticket_view_search ON tickets.ticket_view USING gin (search);
CREATE INDEX ticket_view_activity ON tickets.ticket_view (updated_at DESC, id DESC);

-- The tickets service's copy of the category catalogue and department labels, which the
-- routing service owns and will feed from its events; read to refuse unknown categories
-- and to show labels, never routing's own tables.
CREATE TABLE tickets.categories (
    id       text PRIMARY KEY,
    label_fr text NOT NULL,
    label_en text
);
CREATE TABLE tickets.departments (
    id       text PRIMARY KEY,
    label_fr text NOT NULL,
    label_en text
);
