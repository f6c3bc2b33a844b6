// SPDX-License-Identifier: Apache-2.0
/* Kernel side of sockopt-trace: pair each getsockopt(2) entry with its exit per thread and send
 * one `struct event` per completed call through a BPF ring buffer.
 *
 * Compiled by bcc with these macros from recorder/probe.py:
 *   MODE_TRACEPOINT | MODE_KPROBE | MODE_FENTRY   how to attach
 *   ATTACH_FN, ATTACH_SYSCALL_WRAPPER              the kernel function kprobe/fentry attach to
 *   FILTER_PID, FILTER_COMM                        trace only listed tgids / comms (union)
 *   FOLLOW_FORKS                                   children of listed tgids join the pid filter
 *   CAPTURE_CALLSITE                               read the caller's return address (cheap)
 *   CAPTURE_STACKS, STACK_SAMPLE_PERIOD            full user stacks for 1 in N calls
 *   RINGBUF_PAGES, STACK_ENTRIES, WAKEUP_EVERY
 *   SAMPLING, SEEN_SITES                           --max-rate: record 1 in `period` calls
 *   CONTEXT                                        the cgroup id, *optval and TCP_INFO fields
 *   SOCKET_FIELDS, OFF_*                           the fd's socket, read at the running kernel's
 *                                                  offsets (recorder/sockets.py, from its BTF)
 *   UNIX_FIELDS                                    AF_UNIX: the inode numbers of it and its peer
 *   FILTER_CGROUP                                  trace only tasks under one cgroup (v2)
 *
 * Cost on the hot path matters (docs/design.md, targets): no stack walk unless asked for; the reader
 * of `events` is woken only every WAKEUP_EVERY events per CPU, otherwise it reads on a timer.
 * Where call sites are in which file is not found here but from the kernel's perf mapping
 * records (recorder/perfmaps.py), which outlive the processes.
 */
#include <uapi/linux/ptrace.h>
#include "getsockopt.h"

/* Only pointers to it are used (bpf_get_current_task_btf): <linux/sched.h> would double the
 * compile time (1.1 -> 2.1 s of CPU here; minutes under emulation, see tests/vm). */
struct task_struct;

/* The call in progress, kept in task-local storage: a direct pointer from the task, much cheaper
 * than a hash map keyed by tid (measured here: ~40 ns against ~290 ns for hash update+delete).
 * ts_ns == 0 means no call in progress. */
struct entry {
	u64 ts_ns;
	u64 optlen_ptr;
	u64 optval_ptr;
	s32 fd;
	s32 level;
	s32 optname;
	s32 optlen_in;
};

struct cpu_state {
	u64 counters[NR_COUNTERS];
	u64 since_wakeup;
	u32 last_site_tgid;  /* the last (process, call site) seen on this CPU (SAMPLING) */
	u32 pad;
	u64 last_site;
};

BPF_TASK_STORAGE(entries, struct entry);
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(state, struct cpu_state, 1);
/* Set by user space when the recording stops (CONTROL_STOPPING): entries are no longer taken,
 * calls already in flight still complete, and an exit without an entry is then not a loss (its
 * call began after the stop). Without it, every call starting between the detach of the entry
 * probe and that of the exit probe was counted as exit_without_entry. */
BPF_ARRAY(control, u32, NR_CONTROLS);

#ifdef FILTER_PID
BPF_HASH(pid_filter, u32, u8, 65536);
#endif
#ifdef FILTER_COMM
struct comm_key {
	char name[COMM_LEN];
};
BPF_HASH(comm_filter, struct comm_key, u8, 1024);
#endif
#ifdef CAPTURE_STACKS
BPF_STACK_TRACE(stacks, STACK_ENTRIES);
#endif
#ifdef FILTER_CGROUP
/* slot 0: the --cgroup directory; its descendants count (bpf_current_task_under_cgroup) */
BPF_CGROUP_ARRAY(cgroup_filter, 1);
#endif
#ifdef SAMPLING
/* The sampling period (control[CONTROL_SAMPLING_PERIOD]), written by user space every second
 * from the rate of sampleable calls (recorder/sampling.py): a sampleable call is recorded with
 * probability 1/period and then stands for `period` calls (its weight), which keeps every
 * estimate unbiased whatever the pattern of the calls (a counter's 1-in-N would alias with
 * periodic programs). Failed calls
 * and the first call of each (process, call site) are always recorded, with weight 1: errors
 * and new code are never sampled away. */
struct site_key {
	u64 site;
	u32 tgid;
	u32 pad;
};
BPF_TABLE("lru_hash", struct site_key, u8, seen_sites, SEEN_SITES);

/* 1 the first time this (process, call site) completes a call; a per-CPU memo of the last pair
 * spares the hash lookup in the common case of a loop calling from one place. */
static __always_inline int first_call(struct cpu_state *st, u32 tgid, u64 site)
{
	if (st->last_site == site && st->last_site_tgid == tgid)
		return 0;
	st->last_site = site;
	st->last_site_tgid = tgid;
	struct site_key key = {.site = site, .tgid = tgid};
	if (seen_sites.lookup(&key))
		return 0;
	u8 one = 1;
	seen_sites.update(&key, &one);
	return 1;
}

/* The weight of a call to record, or 0 to leave it out. */
static __always_inline u32 sample(struct cpu_state *st, u32 tgid, u64 site, long ret)
{
	if (ret < 0 || first_call(st, tgid, site))
		return 1;
	st->counters[CTR_SAMPLEABLE] += 1;
	int key = CONTROL_SAMPLING_PERIOD;
	u32 *period = control.lookup(&key);
	u32 p = period ? *period : 1;
	if (p <= 1)
		return 1;
	if (bpf_get_prandom_u32() % p) {
		st->counters[CTR_SAMPLED_OUT] += 1;
		return 0;
	}
	return p;
}
#endif

static __always_inline void count(int idx)
{
	int zero = 0;
	struct cpu_state *st = state.lookup(&zero);
	if (st)
		st->counters[idx] += 1;
}

static __always_inline int stopping(void)
{
	int key = CONTROL_STOPPING;
	u32 *flag = control.lookup(&key);
	return flag && *flag;
}

static __always_inline int traced(u32 tgid)
{
#if defined(FILTER_PID) || defined(FILTER_COMM) || defined(FILTER_CGROUP)
#ifdef FILTER_CGROUP
	if (cgroup_filter.check_current_task(0) == 1)
		return 1;
#endif
#ifdef FILTER_PID
	if (pid_filter.lookup(&tgid))
		return 1;
#endif
#ifdef FILTER_COMM
	struct comm_key key = {};
	bpf_get_current_comm(&key.name, sizeof(key.name));
	if (comm_filter.lookup(&key))
		return 1;
#endif
	return 0;
#else
	return 1;
#endif
}

static __always_inline int on_enter(int fd, int level, int optname, void *optval_ptr,
				    void *optlen_ptr)
{
	if (stopping() || !traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct entry *e = entries.task_storage_get(bpf_get_current_task_btf(), 0,
						   BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!e) {
		count(CTR_ENTRY_MAP_FULL);
		return 0;
	}
	if (!e->ts_ns)  /* a thread now inside the call; one whose exit was missed counts once */
		count(CTR_ENTRIES);
	e->optlen_ptr = (u64)optlen_ptr;
	e->optval_ptr = (u64)optval_ptr;
	e->fd = fd;
	e->level = level;
	e->optname = optname;
	if (bpf_probe_read_user(&e->optlen_in, sizeof(e->optlen_in), optlen_ptr))
		e->optlen_in = -1;
	e->ts_ns = bpf_ktime_get_ns();
	return 0;
}

/* The word at the user stack pointer on syscall entry is the return address into whoever called
 * libc's wrapper (the wrappers push nothing): two small reads name the call site exactly. */
static __always_inline u64 read_callsite(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	u64 ret = 0;
	/* a direct, BTF-checked load (pt_regs is ABI): cheaper than bpf_probe_read_kernel */
	if (bpf_probe_read_user(&ret, sizeof(ret), (void *)regs->sp))
		return 0;
	return ret;
}

#ifdef CONTEXT
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOL_TCP 6
#define TCP_INFO 11
/* struct tcp_info is UAPI: its offsets never change, later kernels only append */
#define TCPI_LEN 168  /* through tcpi_delivery_rate */
#define TCPI_AT(buf, off, type) (*(type *)((buf) + (off)))

/* A read at a byte offset from a kernel pointer (offsets: OFF_*, from the running kernel) */
#define KREAD(dst, base, off) \
	bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((char *)(base) + (off)))

#ifdef SOCKET_FIELDS
/* The socket behind `fd` in the calling task, read at the running kernel's offsets. Each
 * step can fail (a closed fd, a file that is not a socket): then nothing is marked read. */
static __always_inline void read_socket(struct event *ev, int fd)
{
	void *task = (void *)bpf_get_current_task();
	void *files = 0, *fdt = 0, *fds = 0, *file = 0, *sock = 0, *back = 0, *sk = 0;
	u32 max_fds = 0;
	if (fd < 0 || KREAD(files, task, OFF_TASK_FILES) || !files)
		return;
	if (KREAD(fdt, files, OFF_FILES_FDT) || !fdt || KREAD(max_fds, fdt, OFF_FDT_MAX_FDS))
		return;
	if ((u32)fd >= max_fds || KREAD(fds, fdt, OFF_FDT_FD) || !fds)
		return;
	if (KREAD(file, fds, (u64)fd * 8) || !file || KREAD(sock, file, OFF_FILE_PRIVATE_DATA))
		return;
	/* a socket's file points at the socket, which points back at its file */
	if (!sock || KREAD(back, sock, OFF_SOCKET_FILE) || back != file)
		return;
	if (KREAD(sk, sock, OFF_SOCKET_SK) || !sk)
		return;
	u8 skc[OFF_SKC_BLOCK_LEN];
	u8 skt[OFF_SK_BLOCK_LEN];
	if (bpf_probe_read_kernel(skc, sizeof(skc), (char *)sk + OFF_SKC_BLOCK_START))
		return;
	if (bpf_probe_read_kernel(skt, sizeof(skt), (char *)sk + OFF_SK_BLOCK_START))
		return;
#define SKC(name, type) (*(type *)(skc + OFF_##name - OFF_SKC_BLOCK_START))
#define SKT(name, type) (*(type *)(skt + OFF_##name - OFF_SK_BLOCK_START))
	u16 family = SKC(SKC_FAMILY, u16);
	ev->family = family;
	ev->state = SKC(SKC_STATE, u8);
	ev->sock_type = SKT(SK_TYPE, u16);
	ev->protocol = SKT(SK_PROTOCOL, u16);
	if (family == AF_INET) {
		__builtin_memcpy(ev->local_addr, skc + OFF_SKC_RCV_SADDR - OFF_SKC_BLOCK_START, 4);
		__builtin_memcpy(ev->peer_addr, skc + OFF_SKC_DADDR - OFF_SKC_BLOCK_START, 4);
	} else if (family == AF_INET6) {
		bpf_probe_read_kernel(ev->local_addr, 16, (char *)sk + OFF_SKC_V6_RCV_SADDR);
		bpf_probe_read_kernel(ev->peer_addr, 16, (char *)sk + OFF_SKC_V6_DADDR);
	}
#ifdef UNIX_FIELDS
	else if (family == AF_UNIX) {
		/* inode numbers, named by path in user space (recorder/unixpaths.py): the socket's
		 * own, and its peer's (a struct sock without a socket, not yet accepted: none) */
		void *peer = 0, *peer_sock = 0;
		bpf_probe_read_kernel(ev->local_addr, 8, (char *)sock + OFF_UNIX_SOCKET_INO);
		if (!KREAD(peer, sk, OFF_UNIX_PEER) && peer &&
		    !KREAD(peer_sock, peer, OFF_UNIX_SK_SOCKET) && peer_sock)
			bpf_probe_read_kernel(ev->peer_addr, 8, (char *)peer_sock + OFF_UNIX_SOCKET_INO);
	}
#endif
	ev->local_port = SKC(SKC_NUM, u16);
	ev->peer_port = SKC(SKC_DPORT, u16);
	ev->context |= CTX_SOCKET;
}
#endif

/* What the caller got back: 8 bytes of *optval (4 where 8 cannot be read), or TCP_INFO's fields
 * as far as the returned length covers (user space drops those beyond it). */
static __always_inline void read_value(struct event *ev, void *optval, int optlen)
{
	if (ev->level == SOL_TCP && ev->optname == TCP_INFO) {
		u8 ti[TCPI_LEN] = {};
		u32 len = optlen > 0 ? optlen : 0;
		if (len > TCPI_LEN)
			len = TCPI_LEN;
		if (bpf_probe_read_user(ti, len, optval))
			return;
		ev->tcpi_state = TCPI_AT(ti, 0, u8);
		ev->tcpi_retransmits = TCPI_AT(ti, 2, u8);
		ev->tcpi_lost = TCPI_AT(ti, 32, u32);
		ev->tcpi_rtt = TCPI_AT(ti, 68, u32);
		ev->tcpi_rttvar = TCPI_AT(ti, 72, u32);
		ev->tcpi_snd_cwnd = TCPI_AT(ti, 80, u32);
		ev->tcpi_total_retrans = TCPI_AT(ti, 100, u32);
		ev->tcpi_delivery_rate = TCPI_AT(ti, 160, u64);
		ev->context |= CTX_TCP_INFO;
		return;
	}
	if (!bpf_probe_read_user(&ev->value, 8, optval)) {
		ev->context |= CTX_VALUE;
	} else {
		u32 four = 0;
		if (!bpf_probe_read_user(&four, 4, optval)) {
			ev->value = four;
			ev->context |= CTX_VALUE4;
		}
	}
}

static __always_inline void read_context(struct event *ev, struct entry *e, long ret)
{
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->value = 0;
	ev->tcpi_delivery_rate = 0;
	__builtin_memset(ev->local_addr, 0, 16);
	__builtin_memset(ev->peer_addr, 0, 16);
	ev->tcpi_rtt = ev->tcpi_rttvar = ev->tcpi_snd_cwnd = ev->tcpi_lost = 0;
	ev->tcpi_total_retrans = 0;
	ev->family = ev->sock_type = ev->protocol = ev->local_port = ev->peer_port = 0;
	ev->state = ev->tcpi_state = ev->tcpi_retransmits = ev->context = 0;
	ev->pad2 = 0;
	ev->pad3 = 0;
#ifdef SOCKET_FIELDS
	read_socket(ev, e->fd);
#endif
	if (ret == 0 && e->optval_ptr && ev->optlen_out > 0)
		read_value(ev, (void *)e->optval_ptr, ev->optlen_out);
}
#endif

static __always_inline int on_exit(void *ctx, long ret)
{
	u64 now = bpf_ktime_get_ns();
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id, tgid = id >> 32;
	struct entry *e = entries.task_storage_get(bpf_get_current_task_btf(), 0, 0);
	if (!e || !e->ts_ns) {
		if (!stopping() && traced(tgid))
			count(CTR_EXIT_WITHOUT_ENTRY);
		return 0;
	}
	u64 start = e->ts_ns;
	e->ts_ns = 0;
	int zero = 0;
	struct cpu_state *st = state.lookup(&zero);
	if (!st)
		return 0;
#ifdef CAPTURE_CALLSITE
	u64 site = read_callsite();
#else
	u64 site = 0;
#endif
#ifdef SAMPLING
	u32 weight = sample(st, tgid, site, ret);
	if (!weight)
		return 0;
#else
	u32 weight = 1;
#endif
	struct event *ev = events.ringbuf_reserve(sizeof(struct event));
	if (!ev) {
		st->counters[CTR_RINGBUF_FULL] += weight;  /* the calls the record stood for */
		return 0;
	}
	ev->ts_ns = start;
	ev->latency_ns = now - start;
	ev->callsite = site;
	ev->weight = weight;
	ev->pad = 0;
	ev->pid = tgid;
	ev->tid = tid;
	ev->uid = (u32)bpf_get_current_uid_gid();
	ev->fd = e->fd;
	ev->level = e->level;
	ev->optname = e->optname;
	ev->optlen_in = e->optlen_in;
	if (bpf_probe_read_user(&ev->optlen_out, sizeof(ev->optlen_out), (void *)e->optlen_ptr))
		ev->optlen_out = -1;
	ev->ret = (s32)ret;
	ev->stack_id = -1;
#ifdef CONTEXT
	read_context(ev, e, ret);
#endif
#ifdef CAPTURE_STACKS
	if (STACK_SAMPLE_PERIOD <= 1 || (start / 64) % STACK_SAMPLE_PERIOD == 0) {
		ev->stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
		if (ev->stack_id < 0) {
			ev->stack_id = -2;
			st->counters[CTR_STACKS_LOST] += 1;
		}
	}
#endif
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));

	u64 flags = BPF_RB_NO_WAKEUP;
	if (++st->since_wakeup >= WAKEUP_EVERY) {
		st->since_wakeup = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	}
	st->counters[CTR_SUBMITTED] += 1;
	events.ringbuf_submit(ev, flags);
	return 0;
}

#ifdef FOLLOW_FORKS
/* A new child of a traced process is traced from its first instruction: the tracepoint runs in
 * the parent before the child is first scheduled. Threads share the tgid and need nothing. */
TRACEPOINT_PROBE(sched, sched_process_fork)
{
	u32 parent = bpf_get_current_pid_tgid() >> 32;
	u32 child = args->child_pid;
	u8 one = 1;
	if (pid_filter.lookup(&parent))
		pid_filter.update(&child, &one);
	return 0;
}
#endif

#if defined(MODE_TRACEPOINT)
TRACEPOINT_PROBE(syscalls, sys_enter_getsockopt)
{
	return on_enter(args->fd, args->level, args->optname, (void *)args->optval,
			(void *)args->optlen);
}

TRACEPOINT_PROBE(syscalls, sys_exit_getsockopt)
{
	return on_exit(args, args->ret);
}
#elif defined(MODE_KPROBE) || defined(MODE_FENTRY)
/* ATTACH_FN is the kernel function probe.py found on the running kernel: __sys_getsockopt
 * (fd, level, optname, optval, optlen), or, where that is inlined or renamed, the syscall's own
 * entry __x64_sys_getsockopt (ATTACH_SYSCALL_WRAPPER), whose one argument is the caller's saved
 * registers. Either way: entry to return of the whole call, minus the syscall entry/exit path. */
#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
#ifdef ATTACH_SYSCALL_WRAPPER
static __always_inline int on_enter_regs(const struct pt_regs *regs)
{
	struct pt_regs r = {};
	bpf_probe_read_kernel(&r, sizeof(r), regs);
	return on_enter((int)r.di, (int)r.si, (int)r.dx, (void *)r.r10, (void *)r.r8);
}
#endif
#if defined(MODE_KPROBE)
#ifdef ATTACH_SYSCALL_WRAPPER
int CONCAT(kprobe__, ATTACH_FN)(struct pt_regs *ctx)
{
	return on_enter_regs((const struct pt_regs *)PT_REGS_PARM1(ctx));
}
#else
int CONCAT(kprobe__, ATTACH_FN)(struct pt_regs *ctx, int fd, int level, int optname,
				char __user *optval, int __user *optlen)
{
	return on_enter(fd, level, optname, optval, optlen);
}
#endif
int CONCAT(kretprobe__, ATTACH_FN)(struct pt_regs *ctx)
{
	return on_exit(ctx, PT_REGS_RC(ctx));
}
#else /* MODE_FENTRY: KFUNC_PROBE pastes its first argument, so expand ATTACH_FN first */
#define KFUNC_AT(fn, args...) KFUNC_PROBE(fn, ##args)
#define KRETFUNC_AT(fn, args...) KRETFUNC_PROBE(fn, ##args)
#ifdef ATTACH_SYSCALL_WRAPPER
KFUNC_AT(ATTACH_FN, const struct pt_regs *regs)
{
	return on_enter_regs(regs);
}

KRETFUNC_AT(ATTACH_FN, const struct pt_regs *regs, long ret)
{
	return on_exit(ctx, ret);
}
#else
KFUNC_AT(ATTACH_FN, int fd, int level, int optname, char *optval, int *optlen)
{
	return on_enter(fd, level, optname, optval, optlen);
}

KRETFUNC_AT(ATTACH_FN, int fd, int level, int optname, char *optval, int *optlen, int ret)
{
	return on_exit(ctx, ret);
}
#endif
#endif
#endif
