/* A fixed getsockopt workload, run several times to calibrate diff on real recordings
 * (tests/kernel/test_diff_noise.py, bench/diff_noise.py).
 *
 * usage: steady [ROUNDS] [THREADS] [CHANGES]   (defaults 1500, 3, none)
 * Each thread does, per round, from distinct named functions, then some arithmetic:
 *   poll_so_error      SOL_SOCKET  SO_ERROR       on a TCP socket               -> 0
 *   query_rcvbuf       SOL_SOCKET  SO_RCVBUF      on a TCP socket               -> 0
 *   query_tcp_info     IPPROTO_TCP TCP_INFO       on a TCP socket               -> 0
 *   query_type         SOL_SOCKET  SO_TYPE        on the socket; fd -1 one round in 10 -> -EBADF
 *   query_peer_groups  SOL_SOCKET  SO_PEERGROUPS  on a Unix socket pair         -> 0
 * CHANGES (letters) makes the real changes diff must find:
 *   x  an extra call site: check_sndbuf asks SOL_SOCKET SO_SNDBUF once per round
 *   r  a rate change: query_rcvbuf is called twice per round
 *   s  a latency change: the socket pair is made with 14 supplementary groups instead of 1,
 *      which SO_PEERGROUPS copies out one by one (about twice the time per call)
 *   S  a large latency change: 56 supplementary groups (about 6x the time per call, measured
 *      with a plain timing loop: 1 group 340 ns, 14 820 ns, 64 2700 ns per call incl. syscall)
 * It prints one line of JSON (pid, calls per function) when done. Needs root for setgroups.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int rounds = 1500, extra_site, double_rate;
static int tcp_fd, unix_fd;
static volatile unsigned long sink;

__attribute__((noinline)) int poll_so_error(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len);
}

__attribute__((noinline)) int query_rcvbuf(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len);
}

__attribute__((noinline)) int query_tcp_info(int fd)
{
	struct tcp_info info;
	socklen_t len = sizeof(info);
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len);
}

__attribute__((noinline)) int query_type(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len);
}

__attribute__((noinline)) int query_peer_groups(int fd)
{
	gid_t groups[64];
	socklen_t len = sizeof(groups);
	return getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
}

__attribute__((noinline)) int check_sndbuf(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len);
}

static void work(void)
{
	unsigned long x = sink;
	for (int i = 0; i < 50000; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < rounds; i++) {
		poll_so_error(tcp_fd);
		query_rcvbuf(tcp_fd);
		if (double_rate)
			query_rcvbuf(tcp_fd);
		query_tcp_info(tcp_fd);
		query_type(i % 10 == 0 ? -1 : tcp_fd);
		query_peer_groups(unix_fd);
		if (extra_site)
			check_sndbuf(tcp_fd);
		work();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rounds = atoi(argv[1]);
	int nthreads = argc > 2 ? atoi(argv[2]) : 3;
	const char *changes = argc > 3 ? argv[3] : "";
	extra_site = strchr(changes, 'x') != NULL;
	double_rate = strchr(changes, 'r') != NULL;
	gid_t groups[56];
	int ngroups = strchr(changes, 'S') ? 56 : strchr(changes, 's') ? 14 : 1;
	for (int i = 0; i < ngroups; i++)
		groups[i] = 60000 + i;
	int pair[2];
	if (setgroups(ngroups, groups) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0) {
		perror("steady: setgroups/socketpair (run as root)");
		return 1;
	}
	unix_fd = pair[0];
	tcp_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (tcp_fd < 0) {
		perror("steady: socket");
		return 1;
	}
	pthread_t th[64];
	if (nthreads > 64)
		nthreads = 64;
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("{\"pid\": %d, \"calls_per_function\": %d}\n", getpid(), rounds * nthreads);
	fflush(stdout);
	usleep(50000); /* real programs do some work after their last call */
	return 0;
}
