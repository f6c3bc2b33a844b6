-- name: histogram
-- answers: how are latencies distributed, as bpftrace's hist() shows them? calls per power-of-two latency bucket, exact, per group (busiest first)
-- by: comm, level, optname
-- param: top (int, default 3): groups to show, most calls first (0: all)
-- columns: <by>, low_ns, high_ns, calls, pct
-- layout: histogram
-- keep: low_ns, high_ns, calls
-- A call of latency L ns falls in bucket b = floor(log2(L)), [2^b, 2^(b+1)) ns (L < 1 counts as
-- 1); every bucket from a group's fastest call to its slowest is shown, empty ones as 0 (the
-- zero rows are added by a UNION, not a join on the group keys, which would drop NULL keys).
-- Groups are ranked by calls, then their keys; pct is of the group's calls.
WITH grouped AS (
    SELECT {keys}, {weight} AS weight,
        CAST(floor(log2(greatest(latency_ns, 1))) AS INTEGER) AS bucket
    FROM events
),
binned AS (
    SELECT {keys}, bucket, sum(weight) AS calls
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}, bucket
),
ranges AS (
    SELECT {keys}, min(bucket) AS lo, max(bucket) AS hi
    FROM binned
    GROUP BY {keys}
),
buckets AS (
    SELECT bucket FROM (VALUES
        (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15), (16),
        (17), (18), (19), (20), (21), (22), (23), (24), (25), (26), (27), (28), (29), (30), (31),
        (32), (33), (34), (35), (36), (37), (38), (39), (40), (41), (42), (43), (44), (45), (46),
        (47), (48), (49), (50), (51), (52), (53), (54), (55), (56), (57), (58), (59), (60), (61),
        (62), (63)
    ) AS b (bucket)
),
zeros AS (
    SELECT {keys}, b.bucket, 0 AS calls
    FROM ranges
    JOIN buckets AS b ON b.bucket BETWEEN ranges.lo AND ranges.hi
),
filled AS (
    SELECT {keys}, bucket, sum(calls) AS calls
    FROM (
        SELECT {keys}, bucket, calls FROM binned
        UNION ALL
        SELECT {keys}, bucket, calls FROM zeros
    ) AS both_kinds
    GROUP BY {keys}, bucket
),
totals AS (
    SELECT *, sum(calls) OVER (PARTITION BY {keys}) AS group_calls
    FROM filled
),
ranked AS (
    SELECT *, dense_rank() OVER (ORDER BY group_calls DESC, {keys}) AS group_rank
    FROM totals
)
SELECT {labels},
    CAST(power(2, bucket) AS BIGINT) AS low_ns,
    CAST(power(2, bucket + 1) AS BIGINT) AS high_ns,
    calls,
    100.0 * calls / group_calls AS pct
FROM ranked
WHERE group_rank <= $top
ORDER BY group_rank, bucket
