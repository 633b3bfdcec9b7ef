-- adit 0012: dataset uploads through the writer.
--
-- The upload log names the dataset of a dataset upload; NULL is miner
-- telemetry (every row before this migration). Nullable without default:
-- no rewrite of the partitions.
ALTER TABLE upload_log ADD COLUMN dataset text;

-- Archive marks of dataset rows: the writer records, in the transaction
-- that writes a dataset's rows, every (dataset, site, UTC day of the time
-- column) it touched, when the dataset is archived; the dataset archiver
-- exports a marked day once it has closed and clears the mark if nothing
-- arrived meanwhile (marked_at unchanged). The archive's own migration
-- creates the same table if this one has not.
CREATE TABLE IF NOT EXISTS dataset_archive_dirty (
    dataset    text NOT NULL,
    site_id    int4 NOT NULL,
    day        date NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, site_id, day)
);
