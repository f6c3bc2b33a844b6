/* The event record the kernel side sends to user space: defined once, here.
 * recorder/events.py parses this struct to build its numpy dtype, so the two cannot drift.
 * Keep fields naturally aligned and the size a multiple of 8 (ring buffer records are 8-aligned).
 */
#ifndef SOCKOPT_TRACE_GETSOCKOPT_H
#define SOCKOPT_TRACE_GETSOCKOPT_H

#define COMM_LEN 16

struct event {
	u64 ts_ns;       /* syscall entry, CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	u64 latency_ns;  /* entry to exit */
	u64 callsite;    /* return address into the caller of libc's getsockopt wrapper, 0 if unread */
	u32 pid;         /* tgid */
	u32 tid;
	u32 uid;
	s32 fd;
	s32 level;
	s32 optname;
	s32 optlen_in;   /* *optlen at entry, -1 if unreadable */
	s32 optlen_out;  /* *optlen at exit, -1 if unreadable */
	s32 ret;         /* 0 or -errno */
	s32 stack_id;    /* user stack in the stacks map, or -1 (stacks off) or -2 (lost) */
	char comm[COMM_LEN];
	u32 weight;      /* calls this record stands for: 1, or the sampling period (--max-rate) */
	u32 pad;
#ifdef CONTEXT
	/* What the call was about (record --context); `context` says which were read (CTX_*). */
	u64 cgroup_id;   /* bpf_get_current_cgroup_id(): the caller's cgroup v2 */
	u64 value;       /* the first 8 bytes of *optval on return (CTX_VALUE: 8 read; CTX_VALUE4: 4) */
	u64 tcpi_delivery_rate;  /* TCP_INFO fields at their UAPI offsets, as far as optlen covers */
	u8 local_addr[16];  /* IPv4: the first 4 bytes; IPv6: all 16; network order */
	u8 peer_addr[16];   /* AF_UNIX (UNIX_FIELDS): both hold a u64 inode number in their first 8
			     * bytes (the socket's, its peer's; 0: none or unread), which user space
			     * names by path from /proc/net/unix (recorder/unixpaths.py) */
	u32 tcpi_rtt;
	u32 tcpi_rttvar;
	u32 tcpi_snd_cwnd;
	u32 tcpi_lost;
	u32 tcpi_total_retrans;
	u16 family;
	u16 sock_type;
	u16 protocol;
	u16 local_port;  /* host order (skc_num) */
	u16 peer_port;   /* network order (skc_dport) */
	u8 state;
	u8 tcpi_state;
	u8 tcpi_retransmits;
	u8 context;
	u16 pad2;
	u32 pad3;
#endif
};

/* Bits of event.context */
#define CTX_SOCKET 1    /* family, sock_type, protocol, state, addresses and ports were read */
#define CTX_VALUE 2     /* value holds 8 bytes of *optval */
#define CTX_VALUE4 4    /* value holds only 4 (the other 4 could not be read) */
#define CTX_TCP_INFO 8  /* the tcpi_* fields were read (those beyond optlen_out are not valid) */

/* Per-CPU counters, indexes into struct cpu_state.counters. Order matches recorder/probe.py. */
enum counter {
	CTR_SUBMITTED = 0,        /* events put into the ring buffer */
	CTR_RINGBUF_FULL,         /* completed calls dropped: no ring buffer space */
	CTR_ENTRY_MAP_FULL,       /* calls dropped: no task storage for the entry (out of memory) */
	CTR_EXIT_WITHOUT_ENTRY,   /* exits whose entry was not seen */
	CTR_STACKS_LOST,          /* events kept without their stack */
	CTR_ENTRIES,              /* entries taken: minus exits seen, the calls in flight */
	CTR_SAMPLEABLE,           /* completed calls subject to sampling (not failed, not first) */
	CTR_SAMPLED_OUT,          /* of those, calls sampling chose not to record (not a loss) */
	NR_COUNTERS,
};

/* Indexes into the `control` array, which user space writes. */
enum control {
	CONTROL_STOPPING = 0,     /* 1: the recording is stopping (see getsockopt.bpf.c) */
	CONTROL_SAMPLING_PERIOD,  /* --max-rate: record 1 in this many sampleable calls */
	NR_CONTROLS,
};

#endif
