-- name: latency
-- answers: how are each group's latencies distributed in each of two recordings? calls per latency bin (bins 0.5% wide), for the percentile tests and intervals of diff
-- by: comm, level, optname
-- param: min_calls (int, default 20): leave out groups with fewer calls than this in either recording (they are not tested)
-- columns: <by>, side, bin, latency_ns, calls
-- Reads base_events (side 0) and new_events (side 1). A bin holds the latencies whose natural
-- logarithm times 200 rounds down to the same integer, so it is at most 0.5% wide and equal
-- latencies always share one: counts at or below a bin's largest latency (latency_ns) are
-- exact. Real recordings have a few hundred distinct latencies per group (the clock ticks in
-- steps of ~10 ns, over 0.5% below 2 us), so there the bins are mostly the exact distribution.
-- Calls are rows, not weighted: with sampled stacks the rows are the sample, and the tests
-- count what was sampled.
WITH sides AS (
    SELECT {keys}, {weight} AS weight, 0 AS side, latency_ns,
        floor(ln(greatest(latency_ns, 1)) * 200) AS bin
    FROM base_events
    UNION ALL
    SELECT {keys}, {weight} AS weight, 1 AS side, latency_ns,
        floor(ln(greatest(latency_ns, 1)) * 200) AS bin
    FROM new_events
),
bins AS (
    SELECT {keys}, side, bin, max(latency_ns) AS latency_ns, count(*) AS calls
    FROM sides
    WHERE weight IS NOT NULL
    GROUP BY {keys}, side, bin
),
sized AS (
    SELECT {keys}, side, bin, latency_ns, calls,
        sum(CASE WHEN side = 0 THEN calls ELSE 0 END) OVER (PARTITION BY {keys}) AS base_calls,
        sum(CASE WHEN side = 1 THEN calls ELSE 0 END) OVER (PARTITION BY {keys}) AS new_calls
    FROM bins
),
labelled AS (
    SELECT {labels}, side, bin, latency_ns, calls
    FROM sized
    WHERE base_calls >= $min_calls AND new_calls >= $min_calls
)
SELECT *
FROM labelled
ORDER BY {names}, side, bin
