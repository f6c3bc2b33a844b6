-- name: callsites
-- answers: which code calls getsockopt most, and where does the time go? (--by stack for full stacks, scaled when sampled)
-- by: callsite
-- param: top (int, default 20): call sites to show
-- param: sort (calls|time, default calls): rank by number of calls or by total time
-- columns: <by>, calls, calls_pct, total_ns, time_pct, mean_ns, p99_ns, processes
WITH grouped AS (
    SELECT {keys}, {weight} AS weight, latency_ns, row(host, pid) AS process
    FROM events
),
agg AS (
    SELECT {keys},
        sum(weight) AS calls,
        sum(latency_ns * weight) AS total_ns,
        quantile_cont(latency_ns, [0.99]) AS q,
        count(DISTINCT process) AS processes
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, calls,
        100.0 * calls / sum(calls) OVER () AS calls_pct,
        total_ns,
        100.0 * total_ns / sum(total_ns) OVER () AS time_pct,
        total_ns / calls AS mean_ns,
        q[1] AS p99_ns,
        processes
    FROM agg
)
SELECT *
FROM labelled
ORDER BY CASE WHEN $sort = 'time' THEN total_ns ELSE calls END DESC, {names}
LIMIT $top
