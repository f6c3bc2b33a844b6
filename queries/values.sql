-- name: values
-- answers: what do successful calls return? each option's values (which SO_ERROR errnos, which buffer sizes) and TCP_INFO's rtt, retransmissions and delivery rate, per group (--by peer: per remote endpoint)
-- by: value
-- param: top (int, default 20): groups to show (0: all)
-- columns: <by>, option, calls, option_pct, value_p50, value_p99, rtt_p50_us, rtt_p90_us, rtt_p99_us, rttvar_p50_us, total_retrans_max, lost_max, delivery_rate_p50
-- drop: rttvar_p50_us, lost_max, delivery_rate_p50, rtt_p90_us, option_pct, value_p99
-- Percentiles of four columns per group (queries/lib/percentiles.sql): each successful call
-- becomes one row per measured column (measure 1 value, 2 tcpi_rtt_us, 3 tcpi_rttvar_us,
-- 4 tcpi_delivery_rate; NULLs left out, as quantile_cont leaves them), counted per (group,
-- measure, x) and ranked within (group, measure). Measure 0 carries every call (x NULL) for
-- the counts and maxima. One scan of events; one aggregation per step, no join on the group
-- keys (a join would drop groups whose keys are NULL, e.g. a value not recorded).
WITH grouped AS (
    SELECT {keys}, {weight} AS weight, level AS opt_level, optname AS opt_name,
        value AS returned, tcpi_rtt_us, tcpi_rttvar_us, tcpi_total_retrans, tcpi_lost,
        tcpi_delivery_rate
    FROM events
    WHERE ret = 0
),
measured AS (
    SELECT {keys}, opt_level, opt_name, m.measure, weight, tcpi_total_retrans, tcpi_lost,
        CAST(CASE m.measure
            WHEN 1 THEN returned
            WHEN 2 THEN tcpi_rtt_us
            WHEN 3 THEN tcpi_rttvar_us
            WHEN 4 THEN tcpi_delivery_rate
        END AS BIGINT) AS x
    FROM grouped
    CROSS JOIN (VALUES (0), (1), (2), (3), (4)) AS m(measure)
    WHERE weight IS NOT NULL
),
counts AS (
    SELECT {keys}, opt_level, opt_name, measure, x, sum(weight) AS calls,
        max(tcpi_total_retrans) AS total_retrans_max, max(tcpi_lost) AS lost_max
    FROM measured
    WHERE measure = 0 OR x IS NOT NULL
    GROUP BY {keys}, opt_level, opt_name, measure, x
),
ranked AS (
    SELECT *, {ranks(calls, x, {keys}, opt_level, opt_name, measure)}
    FROM counts
),
measures AS (
    SELECT {keys}, opt_level, opt_name, measure,
        sum(calls) AS calls,
        max(total_retrans_max) AS total_retrans_max,
        max(lost_max) AS lost_max,
        {percentile(x, 0.5)} AS p50,
        {percentile(x, 0.9)} AS p90,
        {percentile(x, 0.99)} AS p99
    FROM ranked
    GROUP BY {keys}, opt_level, opt_name, measure
),
agg AS (
    SELECT {keys}, opt_level, opt_name,
        max(CASE WHEN measure = 0 THEN calls END) AS calls,
        max(CASE WHEN measure = 1 THEN p50 END) AS value_p50,
        max(CASE WHEN measure = 1 THEN p99 END) AS value_p99,
        max(CASE WHEN measure = 2 THEN p50 END) AS rtt_p50_us,
        max(CASE WHEN measure = 2 THEN p90 END) AS rtt_p90_us,
        max(CASE WHEN measure = 2 THEN p99 END) AS rtt_p99_us,
        max(CASE WHEN measure = 3 THEN p50 END) AS rttvar_p50_us,
        max(CASE WHEN measure = 0 THEN total_retrans_max END) AS total_retrans_max,
        max(CASE WHEN measure = 0 THEN lost_max END) AS lost_max,
        max(CASE WHEN measure = 4 THEN p50 END) AS delivery_rate_p50
    FROM measures
    GROUP BY {keys}, opt_level, opt_name
),
labelled AS (
    SELECT {labels},
        optname_label(opt_level, opt_name) AS option,
        calls,
        100.0 * calls / sum(calls) OVER (PARTITION BY opt_level, opt_name) AS option_pct,
        value_p50, value_p99, rtt_p50_us, rtt_p90_us, rtt_p99_us, rttvar_p50_us,
        total_retrans_max, lost_max, delivery_rate_p50
    FROM agg
)
SELECT *
FROM labelled
ORDER BY calls DESC, {names}, option
LIMIT $top
