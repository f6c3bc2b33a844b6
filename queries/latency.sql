-- name: latency
-- answers: how slow are getsockopt calls, per group? exact percentiles, busiest groups first
-- by: comm, level, optname
-- param: top (int, default 20): groups to show
-- columns: <by>, calls, mean_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns
WITH grouped AS (
    SELECT {keys}, {weight} AS weight, latency_ns
    FROM events
),
agg AS (
    SELECT {keys},
        sum(weight) AS calls,
        avg(latency_ns) AS mean_ns,
        quantile_cont(latency_ns, [0.5, 0.9, 0.99, 0.999]) AS q,
        max(latency_ns) AS max_ns
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, calls, mean_ns,
        q[1] AS p50_ns, q[2] AS p90_ns, q[3] AS p99_ns, q[4] AS p999_ns,
        max_ns
    FROM agg
)
SELECT *
FROM labelled
ORDER BY calls DESC, {names}
LIMIT $top
