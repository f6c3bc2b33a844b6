-- name: slowest
-- answers: which single calls were slowest, and what were they doing?
-- param: top (int, default 20): calls to show (0: all)
-- columns: time, latency_ns, host, comm, pid, tid, fd, level, level_name, optname, optname_name, errno, errno_name, optlen_in, optlen_out, callsite
-- keep: time, latency_ns, comm, optname_name
-- drop: optlen_in, optlen_out, host, tid, fd, level_name, errno_name, pid
SELECT time, latency_ns, host, comm, pid, tid, fd,
    level, level_name,
    optname, optname_name,
    errno, errno_name,
    optlen_in, optlen_out, callsite
FROM events
ORDER BY latency_ns DESC, ts_ns, tid
LIMIT $top
