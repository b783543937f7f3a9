-- Issue 23: a label of a window nobody suggested (the analyst chose it) is stored with its own
-- source, `free`, not `suggestion`. Kept in step with ../sqlite/0007_ui_free_labels.sql.
ALTER TABLE labeling_labels DROP CONSTRAINT IF EXISTS labeling_labels_source_check;
ALTER TABLE labeling_labels ADD CONSTRAINT labeling_labels_source_check
    CHECK (source IN ('suggestion', 'interval', 'edit', 'free'));
