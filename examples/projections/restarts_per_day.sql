-- Kernel restarts per day, host and kernel: a SQL-only projection.
-- Each batch's `kernel_restarted` events are appended; the view counts them.
--
--   grace replay --projection examples/projections/restarts_per_day.sql --into restarts.duckdb
--   duckdb -readonly restarts.duckdb "SELECT * FROM restarts_per_day"
--
-- name: restarts_per_day
-- version: 1
-- handles: kernel_restarted
-- tables
CREATE TABLE kernel_restarts (seq BIGINT, time TIMESTAMP, host VARCHAR, kernel VARCHAR,
                              instance INTEGER, pid BIGINT);
CREATE VIEW restarts_per_day AS
    SELECT CAST(time AS DATE) AS day, host, kernel, count(*) AS restarts
    FROM kernel_restarts GROUP BY ALL ORDER BY day, host, kernel;
-- apply
INSERT INTO kernel_restarts
SELECT seq, time, host, data->>'kernel', coalesce(CAST(data->>'instance' AS INTEGER), 0),
       CAST(data->>'pid' AS BIGINT)
FROM batch;
