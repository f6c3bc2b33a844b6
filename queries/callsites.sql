-- name: callsites
-- answers: which code calls getsockopt most, and where does the time go? (--by stack for full stacks, scaled when sampled)
-- by: callsite
-- param: top (int, default 20): call sites to show (0: all)
-- param: sort (calls|time, default calls): rank by number of calls or by total time
-- columns: <by>, calls, calls_pct, total_ns, time_pct, mean_ns, p99_ns, processes
-- drop: total_ns, processes, mean_ns, time_pct
-- Calls, time and p99 come from rows counted per (group, latency) (percentiles:
-- queries/lib/percentiles.sql); processes from distinct (group, host, pid). The two are put
-- together by a UNION and a GROUP BY, not a join, which would drop groups with NULL keys.
WITH counts AS (
    SELECT {keys}, latency_ns, {count} AS calls
    FROM events
    WHERE {weight} IS NOT NULL
    GROUP BY {keys}, latency_ns
),
ranked AS (
    SELECT *, {ranks(calls, latency_ns, {keys})}
    FROM counts
),
latencies AS (
    SELECT {keys},
        sum(calls) AS calls,
        sum(latency_ns * calls) AS total_ns,
        {percentile(latency_ns, 0.99)} AS p99_ns
    FROM ranked
    GROUP BY {keys}
),
processes AS (
    SELECT {keys}, count(*) AS processes
    FROM (
        SELECT DISTINCT {keys}, host, pid
        FROM events
        WHERE {weight} IS NOT NULL
    ) AS p
    GROUP BY {keys}
),
agg AS (
    SELECT {keys}, max(calls) AS calls, max(total_ns) AS total_ns, max(p99_ns) AS p99_ns,
        max(processes) AS processes
    FROM (
        SELECT {keys}, calls, total_ns, p99_ns, CAST(NULL AS BIGINT) AS processes
        FROM latencies
        UNION ALL
        SELECT {keys}, NULL, NULL, NULL, processes
        FROM processes
    ) AS both_parts
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, calls,
        100.0 * calls / sum(calls) OVER () AS calls_pct,
        total_ns,
        100.0 * total_ns / sum(total_ns) OVER () AS time_pct,
        total_ns / calls AS mean_ns,
        p99_ns,
        processes
    FROM agg
)
SELECT *
FROM labelled
ORDER BY CASE WHEN $sort = 'time' THEN total_ns ELSE calls END DESC, {names}
LIMIT $top
