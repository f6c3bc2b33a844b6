/* A getsockopt(2) call that is already inside the kernel when the recorder attaches.
 *
 * optlen points into a page registered with userfaultfd, so the kernel's first read of it
 * blocks inside getsockopt until we supply the page. The program prints "blocked", waits for a
 * line on stdin, releases the call (its exit is then seen without its entry), makes CALLS more
 * ordinary calls and prints {"pid": ..., "calls": CALLS}.
 * usage: stuck [CALLS]   (needs root or vm.unprivileged_userfaultfd=1)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sock;
static char *page;

static void *stuck_call(void *arg)
{
	int value;
	(void)arg;
	getsockopt(sock, SOL_SOCKET, SO_RCVBUF, &value, (socklen_t *)page);
	return NULL;
}

int main(int argc, char **argv)
{
	int calls = argc > 1 ? atoi(argv[1]) : 5;
	long pagesize = sysconf(_SC_PAGESIZE);
	sock = socket(AF_INET, SOCK_STREAM, 0);
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (sock < 0 || uffd < 0) {
		perror("setup");
		return 1;
	}
	struct uffdio_api api = {.api = UFFD_API};
	page = mmap(NULL, pagesize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_register reg = {
		.range = {.start = (unsigned long)page, .len = pagesize},
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		perror("userfaultfd");
		return 1;
	}
	pthread_t th;
	pthread_create(&th, NULL, stuck_call, NULL);
	struct uffd_msg msg;
	if (read(uffd, &msg, sizeof(msg)) != sizeof(msg)) { /* the call is now blocked */
		perror("read");
		return 1;
	}
	printf("blocked\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	char *src = aligned_alloc(pagesize, pagesize);
	memset(src, 0, pagesize);
	*(socklen_t *)src = sizeof(int);
	struct uffdio_copy copy = {
		.dst = (unsigned long)page, .src = (unsigned long)src, .len = pagesize};
	if (ioctl(uffd, UFFDIO_COPY, &copy)) {
		perror("UFFDIO_COPY");
		return 1;
	}
	pthread_join(th, NULL);
	for (int i = 0; i < calls; i++) {
		int value;
		socklen_t len = sizeof(value);
		getsockopt(sock, SOL_SOCKET, SO_RCVBUF, &value, &len);
	}
	printf("{\"pid\": %d, \"calls\": %d}\n", getpid(), calls);
	return 0;
}
