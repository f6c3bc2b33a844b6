/* A program to be stripped, for the tests of naming call sites from debug information (and
 * sample_traces/stripped): three functions ask options, one of them through a function the
 * compiler inlines, as servers do.
 *
 * usage: layers [ROUNDS]   (default 100)
 * Per round: check_connected asks SO_ERROR, log_request asks TCP_INFO through the inlined
 * peer_rtt, buffer_size asks SO_RCVBUF; all on one TCP socket, all succeed. Prints one line of
 * JSON with its pid and the calls each function made. Each getsockopt line is marked CALL.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) int check_connected(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len); /* CALL check_connected */
}

static inline unsigned peer_rtt(int fd)
{
	struct tcp_info info;
	socklen_t len = sizeof(info);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len)) /* CALL peer_rtt */
		return 0;
	return info.tcpi_rtt;
}

__attribute__((noinline)) unsigned log_request(int fd)
{
	return peer_rtt(fd) / 1000;
}

__attribute__((noinline)) int buffer_size(int fd)
{
	int size = 0;
	socklen_t len = sizeof(size);
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &len); /* CALL buffer_size */
	return size;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 100;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	long sum = 0;
	for (int i = 0; i < rounds; i++)
		sum += check_connected(fd) + log_request(fd) + buffer_size(fd);
	printf("{\"pid\": %d, \"calls_per_function\": %d, \"sum\": %ld}\n", getpid(), rounds, sum);
	return 0;
}
