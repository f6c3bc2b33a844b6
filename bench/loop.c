/* Benchmark workload: THREADS threads each call getsockopt(SOL_SOCKET, SO_RCVBUF) CALLS times
 * in a tight loop (or, with SYSCALL=getppid, call getppid instead: the bystander tax).
 * Prints one JSON line: calls made, ns per call (mean per thread), and this process's own CPU
 * time (user+sys, all threads), which lets a harness subtract the workload from a tracer's usage.
 * usage: loop CALLS [THREADS] [getsockopt|getppid]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long calls;
static int use_getppid;
static double rate;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int v;
	socklen_t len;
	double *elapsed = arg;
	double t0 = now();
	for (long i = 0; i < calls; i++) {
		while (rate > 0 && now() - t0 < i / rate)
			;
		if (use_getppid) {
			syscall(SYS_getppid);
		} else {
			len = sizeof(v);
			getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len);
		}
	}
	*elapsed = now() - t0;
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	calls = argc > 1 ? atol(argv[1]) : 1000000;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	use_getppid = argc > 3 && strcmp(argv[3], "getppid") == 0;
	rate = argc > 4 ? atof(argv[4]) : 0;
	if (threads < 1 || threads > 64)
		threads = 1;
	pthread_t th[64];
	double elapsed[64];
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, &elapsed[i]);
	double sum = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		sum += elapsed[i];
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
		     ru.ru_stime.tv_usec / 1e6;
	printf("{\"calls\": %ld, \"threads\": %d, \"syscall\": \"%s\", \"ns_per_call\": %.1f, "
	       "\"cpu_s\": %.3f}\n",
	       calls * threads, threads, use_getppid ? "getppid" : "getsockopt",
	       sum / threads / calls * 1e9, cpu);
	return 0;
}
