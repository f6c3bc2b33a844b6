/* A workload with known getsockopt calls, for the real-kernel recording tests.
 *
 * usage: calls [ROUNDS] [THREADS] [LINGER_MS]   (defaults 100, 2, 0)
 * Each thread does, per round, from distinct named functions:
 *   poll_so_error      SOL_SOCKET  SO_ERROR    on a TCP socket   -> 0
 *   query_rcvbuf       SOL_SOCKET  SO_RCVBUF   on a TCP socket   -> 0
 *   query_tcp_info     IPPROTO_TCP TCP_INFO    on a TCP socket   -> 0
 *   bad_fd             SOL_SOCKET  SO_TYPE     on fd -1          -> -EBADF
 *   not_a_socket       SOL_SOCKET  SO_TYPE     on a pipe         -> -ENOTSOCK
 *   unknown_option     SOL_SOCKET  12345       on a TCP socket   -> -ENOPROTOOPT
 * and prints one line of JSON with the pid, the thread ids and the counts it made, then waits
 * LINGER_MS before exiting (as most real programs do some work after their last call).
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int rounds = 100;
static int tcp_fd, pipe_fds[2];

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

__attribute__((noinline)) int bad_fd(void)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(-1, SOL_SOCKET, SO_TYPE, &v, &len);
}

__attribute__((noinline)) int not_a_socket(void)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(pipe_fds[0], SOL_SOCKET, SO_TYPE, &v, &len);
}

__attribute__((noinline)) int unknown_option(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, 12345, &v, &len);
}

static void *worker(void *arg)
{
	long *tid = arg;
	*tid = syscall(SYS_gettid);
	for (int i = 0; i < rounds; i++) {
		poll_so_error(tcp_fd);
		query_rcvbuf(tcp_fd);
		query_tcp_info(tcp_fd);
		bad_fd();
		not_a_socket();
		unknown_option(tcp_fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rounds = atoi(argv[1]);
	int nthreads = argc > 2 ? atoi(argv[2]) : 2;
	tcp_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (tcp_fd < 0 || pipe(pipe_fds) < 0) {
		perror("setup");
		return 1;
	}
	pthread_t th[64];
	long tids[64];
	if (nthreads > 64)
		nthreads = 64;
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, &tids[i]);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("{\"pid\": %d, \"fd\": %d, \"rounds\": %d, \"tids\": [", getpid(), tcp_fd, rounds);
	for (int i = 0; i < nthreads; i++)
		printf("%s%ld", i ? ", " : "", tids[i]);
	printf("], \"calls_per_function\": %d}\n", rounds * nthreads);
	fflush(stdout);
	if (argc > 3)
		usleep(atoi(argv[3]) * 1000);
	return 0;
}
