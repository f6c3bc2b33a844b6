-- name: processes
-- answers: which processes (or threads, --by tid,comm) call getsockopt, how often and how slowly?
-- by: host, pid, comm
-- param: top (int, default 20): processes to show
-- columns: <by>, calls, calls_per_s, errors, options, mean_ns, p99_ns, max_ns, first_time, last_time
WITH span AS (
    SELECT (max(ts_ns) - min(ts_ns)) / 1e9 AS seconds FROM events
),
grouped AS (
    SELECT {keys}, {weight} AS weight, latency_ns, ret, ts_ns, row(level, optname) AS option
    FROM events
),
agg AS (
    SELECT {keys},
        sum(weight) AS calls,
        sum(CASE WHEN ret < 0 THEN weight ELSE 0 END) AS errors,
        count(DISTINCT option) AS options,
        avg(latency_ns) AS mean_ns,
        quantile_cont(latency_ns, [0.99]) AS q,
        max(latency_ns) AS max_ns,
        min(ts_ns) AS first_ns,
        max(ts_ns) AS last_ns
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, calls,
        calls / nullif(span.seconds, 0) AS calls_per_s,
        errors, options, mean_ns,
        q[1] AS p99_ns,
        max_ns,
        ns_to_time(first_ns) AS first_time,
        ns_to_time(last_ns) AS last_time
    FROM agg
    CROSS JOIN span
)
SELECT *
FROM labelled
ORDER BY calls DESC, {names}
LIMIT $top
