-- name: slowest
-- answers: which single calls were slowest, and what were they doing?
-- param: top (int, default 20): calls to show
-- columns: time, latency_ns, host, comm, pid, tid, fd, level, optname, errno, optlen_in, optlen_out, callsite
SELECT time, latency_ns, host, comm, pid, tid, fd,
    level_name AS level,
    optname_name AS optname,
    errno_name AS errno,
    optlen_in, optlen_out, callsite
FROM events
ORDER BY latency_ns DESC, ts_ns, tid
LIMIT $top
