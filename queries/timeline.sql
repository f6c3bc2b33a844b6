-- name: timeline
-- answers: how do the call rate and latency change over time? (find bursts; intervals without calls are left out)
-- param: interval (duration, default 1s): width of each interval
-- columns: time, calls, calls_per_s, errors, mean_ns, p99_ns, max_ns
-- drop: max_ns, mean_ns
-- One scan into rows per (interval, latency); p99 from their counts (queries/lib/percentiles.sql).
-- Counts are sums of `weight` (calls a row stands for: 1 unless recorded with --max-rate);
-- so are the counts mean and p99 come from: they estimate those of all the calls.
-- calls_per_s (analyzer/span.py): each recording's calls in the interval over the part of the
-- interval its recording span covers (the first and last intervals are partly outside it),
-- summed; each term rounded to a millionth of a call per second and summed as an integer, so
-- that the sum does not depend on its order (DuckDB and Spark agree).
WITH per_recording AS (
    SELECT ts_ns - ts_ns % $interval AS bucket_ns, recording_id, CAST(sum(weight) AS BIGINT) AS calls
    FROM events
    GROUP BY ts_ns - ts_ns % $interval, recording_id
),
rates AS (
    SELECT p.bucket_ns,
        sum(CAST(round(1e6 * p.calls / (nullif(
            least(p.bucket_ns + $interval, r.end_ns) - greatest(p.bucket_ns, r.start_ns), 0
        ) / 1e9)) AS BIGINT)) / 1e6 AS calls_per_s
    FROM per_recording AS p
    JOIN recordings AS r ON r.recording_id = p.recording_id
    GROUP BY p.bucket_ns
),
counts AS (
    SELECT ts_ns - ts_ns % $interval AS bucket_ns, latency_ns,
        CAST(sum(weight) AS BIGINT) AS weighed,
        CAST(sum(CASE WHEN ret < 0 THEN weight ELSE 0 END) AS BIGINT) AS errors
    FROM events
    GROUP BY ts_ns - ts_ns % $interval, latency_ns
),
ranked AS (
    SELECT *, {ranks(weighed, latency_ns, bucket_ns)}
    FROM counts
),
agg AS (
    SELECT bucket_ns,
        sum(weighed) AS calls,
        sum(errors) AS errors,
        CAST(sum(latency_ns * weighed) AS DOUBLE) / sum(weighed) AS mean_ns,
        {percentile(latency_ns, 0.99)} AS p99_ns,
        max(latency_ns) AS max_ns
    FROM ranked
    GROUP BY bucket_ns
)
SELECT ns_to_time(agg.bucket_ns) AS time, calls,
    rates.calls_per_s,
    errors, mean_ns,
    p99_ns,
    max_ns
FROM agg
JOIN rates ON rates.bucket_ns = agg.bucket_ns
ORDER BY agg.bucket_ns
