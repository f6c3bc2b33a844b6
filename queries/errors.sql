-- name: errors
-- answers: which calls fail, with which errno, on which option, in which process and call site?
-- by: errno, level, optname, comm
-- param: top (int, default 20): groups to show (0: all)
-- columns: <by>, errors, calls, error_pct, errors_share_pct, first_time, last_time, mean_ns
-- drop: last_time, first_time, mean_ns, errors_share_pct
WITH grouped AS (
    SELECT {keys}, {weight} AS weight, ret, ts_ns, latency_ns
    FROM events
),
agg AS (
    SELECT {keys},
        sum(CASE WHEN ret < 0 THEN weight ELSE 0 END) AS errors,
        sum(weight) AS calls,
        min(CASE WHEN ret < 0 THEN ts_ns END) AS first_ns,
        max(CASE WHEN ret < 0 THEN ts_ns END) AS last_ns,
        CAST(sum(CASE WHEN ret < 0 THEN latency_ns END) AS DOUBLE)
            / count(CASE WHEN ret < 0 THEN latency_ns END) AS mean_ns
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, errors, calls,
        100.0 * errors / calls AS error_pct,
        100.0 * errors / sum(errors) OVER () AS errors_share_pct,
        ns_to_time(first_ns) AS first_time,
        ns_to_time(last_ns) AS last_time,
        mean_ns
    FROM agg
)
SELECT *
FROM labelled
WHERE errors > 0
ORDER BY errors DESC, {names}
LIMIT $top
