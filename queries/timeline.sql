-- name: timeline
-- answers: how do the call rate and latency change over time? (find bursts; intervals without calls are left out)
-- param: interval (duration, default 1s): width of each interval
-- columns: time, calls, calls_per_s, errors, mean_ns, p99_ns, max_ns
WITH bucketed AS (
    SELECT ts_ns - ts_ns % $interval AS bucket_ns, latency_ns, ret
    FROM events
),
agg AS (
    SELECT bucket_ns,
        count(*) AS calls,
        sum(CASE WHEN ret < 0 THEN 1 ELSE 0 END) AS errors,
        avg(latency_ns) AS mean_ns,
        quantile_cont(latency_ns, [0.99]) AS q,
        max(latency_ns) AS max_ns
    FROM bucketed
    GROUP BY bucket_ns
)
SELECT ns_to_time(bucket_ns) AS time, calls,
    calls / ($interval / 1e9) AS calls_per_s,
    errors, mean_ns,
    q[1] AS p99_ns,
    max_ns
FROM agg
ORDER BY bucket_ns
