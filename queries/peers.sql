-- name: peers
-- answers: which remote endpoints are the calls about? calls, time, errors and the top option per peer (inet: address:port; Unix: the peer's path; empty: no peer)
-- by: peer
-- param: top (int, default 20): groups to show (0: all)
-- columns: <by>, calls, calls_pct, total_ns, time_pct, mean_ns, errors, error_pct, options, top_option, top_option_pct
-- drop: total_ns, options, top_option_pct, mean_ns, time_pct, error_pct
WITH grouped AS (
    SELECT {keys}, {weight} AS weight, latency_ns, ret,
        level AS opt_level, optname AS opt_name
    FROM events
),
per_option AS (
    SELECT {keys}, opt_level, opt_name,
        sum(weight) AS calls,
        sum(latency_ns * weight) AS total_ns,
        sum(CASE WHEN ret < 0 THEN weight ELSE 0 END) AS errors
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}, opt_level, opt_name
),
agg AS (
    SELECT {keys},
        sum(calls) AS calls,
        sum(total_ns) AS total_ns,
        sum(errors) AS errors,
        count(*) AS options,
        arg_max(optname_label(opt_level, opt_name), calls) AS top_option,
        max(calls) AS top_calls
    FROM per_option
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, calls,
        100.0 * calls / sum(calls) OVER () AS calls_pct,
        total_ns,
        100.0 * total_ns / sum(total_ns) OVER () AS time_pct,
        total_ns / calls AS mean_ns,
        errors,
        100.0 * errors / calls AS error_pct,
        options,
        top_option,
        100.0 * top_calls / calls AS top_option_pct
    FROM agg
)
SELECT *
FROM labelled
ORDER BY calls DESC, {names}
LIMIT $top
