-- adit 0007: who is writing an archive file.
--
-- A file recorded as 'writing' becomes live only through the connection
-- that recorded it (it uploads the object, then claims the batches in a
-- transaction on the same connection). So the file is abandoned exactly
-- when that connection's backend is gone, and recovery may then delete it;
-- while the backend lives (another node, `adit archive compact`), however
-- long its upload takes, the file is left alone. The column defaults to
-- the recording backend; rows from before it stay NULL and fall back to an
-- age limit.
ALTER TABLE archive_files ADD COLUMN writer_pid int4;
ALTER TABLE archive_files ALTER COLUMN writer_pid SET DEFAULT pg_backend_pid();
