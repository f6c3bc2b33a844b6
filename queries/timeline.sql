-- name: timeline
-- answers: how do the call rate and latency change over time? (find bursts; intervals without calls are left out)
-- param: interval (duration, default 1s): width of each interval
-- columns: time, calls, calls_per_s, errors, mean_ns, p99_ns, max_ns
-- One scan into rows per (interval, latency); p99 from their counts (queries/lib/percentiles.sql).
WITH counts AS (
    SELECT ts_ns - ts_ns % $interval AS bucket_ns, latency_ns,
        count(*) AS n,
        sum(CASE WHEN ret < 0 THEN 1 ELSE 0 END) AS errors
    FROM events
    GROUP BY ts_ns - ts_ns % $interval, latency_ns
),
ranked AS (
    SELECT *, {ranks(n, latency_ns, bucket_ns)}
    FROM counts
),
agg AS (
    SELECT bucket_ns,
        sum(n) AS calls,
        sum(errors) AS errors,
        CAST(sum(latency_ns * n) AS DOUBLE) / sum(n) AS mean_ns,
        {percentile(latency_ns, 0.99)} AS p99_ns,
        max(latency_ns) AS max_ns
    FROM ranked
    GROUP BY bucket_ns
)
SELECT ns_to_time(bucket_ns) AS time, calls,
    calls / ($interval / 1e9) AS calls_per_s,
    errors, mean_ns,
    p99_ns,
    max_ns
FROM agg
ORDER BY bucket_ns
