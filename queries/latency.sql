-- name: latency
-- answers: how slow are getsockopt calls, per group? exact percentiles, busiest groups first
-- by: comm, level, optname
-- param: top (int, default 20): groups to show (0: all)
-- columns: <by>, calls, mean_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns
-- drop: p999_ns, mean_ns, p90_ns, max_ns
-- One scan into rows per (group, latency): as many as distinct latencies, not calls; every
-- column below comes from those counts (percentiles: queries/lib/percentiles.sql). The counts
-- are calls, sums of {weight} (what a row stands for: --max-rate sampling, sampled stacks), so
-- percentiles and the mean are those of the calls, as if every sampled-out call were there.
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
agg AS (
    SELECT {keys},
        sum(calls) AS calls,
        CAST(sum(latency_ns * calls) AS DOUBLE) / sum(calls) AS mean_ns,
        {percentile(latency_ns, 0.5)} AS p50_ns,
        {percentile(latency_ns, 0.9)} AS p90_ns,
        {percentile(latency_ns, 0.99)} AS p99_ns,
        {percentile(latency_ns, 0.999)} AS p999_ns,
        max(latency_ns) AS max_ns
    FROM ranked
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, calls, mean_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns
    FROM agg
)
SELECT *
FROM labelled
ORDER BY calls DESC, {names}
LIMIT $top
