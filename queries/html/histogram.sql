-- name: histogram
-- answers: how are latencies distributed in the busiest groups? calls per logarithmic latency bin
-- by: comm, level, optname
-- param: top (int, default 8): groups to show, most calls first (0: all)
-- param: bins_per_decade (int, default 100): bins per factor of ten of latency
-- columns: <by>, group_rank, group_calls, bin, bin_low_ns, bin_high_ns, calls
-- Bin b holds latencies in [10^(b / bins_per_decade), 10^((b + 1) / bins_per_decade)) ns, so
-- bins are equally wide on a logarithmic axis; a latency below 1 ns counts as 1 ns. Groups are
-- ranked like the latency report's (calls, then names); only bins with calls are returned.
WITH grouped AS (
    SELECT {keys}, {weight} AS weight,
        floor(log10(greatest(latency_ns, 1)) * $bins_per_decade) AS bin
    FROM events
),
binned AS (
    SELECT {keys}, bin, sum(weight) AS calls
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}, bin
),
labelled AS (
    SELECT {labels}, bin, calls,
        sum(calls) OVER (PARTITION BY {keys}) AS group_calls
    FROM binned
),
ranked AS (
    SELECT *, dense_rank() OVER (ORDER BY group_calls DESC, {names}) AS group_rank
    FROM labelled
)
SELECT {names}, group_rank, group_calls,
    CAST(bin AS BIGINT) AS bin,
    power(10, bin / $bins_per_decade) AS bin_low_ns,
    power(10, (bin + 1) / $bins_per_decade) AS bin_high_ns,
    calls
FROM ranked
WHERE group_rank <= $top
ORDER BY group_rank, bin
