-- The entity tag the object store gave an output object (NULL for local files): a rerun
-- finds a remote output intact by its size and entity tag, without reading it back.
ALTER TABLE outputs ADD COLUMN e_tag TEXT;
