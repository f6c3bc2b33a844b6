-- name: values
-- answers: what do successful calls return? each option's values (which SO_ERROR errnos, which buffer sizes) and TCP_INFO's rtt, retransmissions and delivery rate, per group (--by peer: per remote endpoint)
-- by: value
-- param: top (int, default 20): groups to show (0: all)
-- columns: <by>, option, calls, option_pct, value_p50, value_p99, rtt_p50_us, rtt_p90_us, rtt_p99_us, rttvar_p50_us, total_retrans_max, lost_max, delivery_rate_p50
-- drop: rttvar_p50_us, lost_max, delivery_rate_p50, rtt_p90_us, option_pct, value_p99
WITH grouped AS (
    SELECT {keys}, {weight} AS weight, level AS opt_level, optname AS opt_name,
        value, tcpi_rtt_us, tcpi_rttvar_us, tcpi_total_retrans, tcpi_lost, tcpi_delivery_rate
    FROM events
    WHERE ret = 0
),
agg AS (
    SELECT {keys}, opt_level, opt_name,
        sum(weight) AS calls,
        quantile_cont(value, [0.5, 0.99]) AS v,
        quantile_cont(tcpi_rtt_us, [0.5, 0.9, 0.99]) AS rtt,
        quantile_cont(tcpi_rttvar_us, [0.5]) AS rttvar,
        max(tcpi_total_retrans) AS total_retrans_max,
        max(tcpi_lost) AS lost_max,
        quantile_cont(tcpi_delivery_rate, [0.5]) AS rate
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}, opt_level, opt_name
),
labelled AS (
    SELECT {labels},
        optname_label(opt_level, opt_name) AS option,
        calls,
        100.0 * calls / sum(calls) OVER (PARTITION BY opt_level, opt_name) AS option_pct,
        v[1] AS value_p50,
        v[2] AS value_p99,
        rtt[1] AS rtt_p50_us,
        rtt[2] AS rtt_p90_us,
        rtt[3] AS rtt_p99_us,
        rttvar[1] AS rttvar_p50_us,
        total_retrans_max,
        lost_max,
        rate[1] AS delivery_rate_p50
    FROM agg
)
SELECT *
FROM labelled
ORDER BY calls DESC, {names}, option
LIMIT $top
