// SPDX-License-Identifier: BSD-2-Clause
/*
 * http_get - HTTP/1.1 fetch load: one TCP connection per request.
 *
 *   http_get -a ADDR -p PORT -u PATH [-t SECONDS | -n COUNT] [-c CONC]
 *            [-T TIMEOUT] [-e BODY_BYTES]
 *
 * CONC threads each loop: connect, send "GET PATH" with Connection: close,
 * read the whole response until the server closes, close.  A request
 * counts as done when the status is 200 and (with -e) the body has exactly
 * BODY_BYTES bytes; otherwise it counts as an error.  Runs for SECONDS
 * (default 3) or until COUNT requests were made.  Prints
 *   requests=N errors=E bytes=B seconds=S
 * bytes are body bytes of the successful requests.
 */
#include "common.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/time.h>

static struct sockaddr_in target;
static char request[512];
static size_t request_len;
static double deadline, timeout_s = 5;
static long long expect_body = -1, max_count = -1;
static long long issued;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct result {
	unsigned long long ok, errors, bytes;
};

static int take_ticket(void)
{
	int ok = 1;

	pthread_mutex_lock(&lock);
	if (max_count >= 0 && issued >= max_count)
		ok = 0;
	else
		issued++;
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Returns body bytes, or -1 on any failure. */
static long long fetch(void)
{
	static __thread char buf[65536];
	struct timeval tv = { .tv_sec = (time_t)timeout_s,
			      .tv_usec = (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6) };
	long long total = 0, hdr_end = -1;
	char head[1024];
	size_t head_len = 0;
	ssize_t n;
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1, status = 0;

	if (s < 0)
		return -1;
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s, (struct sockaddr *)&target, sizeof(target)) ||
	    send(s, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
		close(s);
		return -1;
	}
	while ((n = recv(s, buf, sizeof(buf), 0)) > 0) {
		if (hdr_end < 0) {
			size_t k = (size_t)n < sizeof(head) - 1 - head_len ?
				   (size_t)n : sizeof(head) - 1 - head_len;
			char *e;

			memcpy(head + head_len, buf, k);
			head_len += k;
			head[head_len] = 0;
			e = strstr(head, "\r\n\r\n");
			if (e) {
				hdr_end = (e - head) + 4;
				sscanf(head, "HTTP/%*d.%*d %d", &status);
			}
		}
		total += n;
	}
	close(s);
	if (n < 0 || hdr_end < 0 || status != 200)
		return -1;
	total -= hdr_end;
	if (expect_body >= 0 && total != expect_body)
		return -1;
	return total;
}

static void *worker(void *arg)
{
	struct result *r = arg;
	long long b;

	while (now_s() < deadline && take_ticket()) {
		b = fetch();
		if (b < 0) {
			r->errors++;
		} else {
			r->ok++;
			r->bytes += (unsigned long long)b;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *addr = NULL, *path = NULL;
	double secs = 3, t0, t1;
	int port = 0, conc = 1, opt, i;
	pthread_t th[256];
	struct result res[256], tot = { 0, 0, 0 };

	while ((opt = getopt(argc, argv, "a:p:u:t:n:c:T:e:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'u': path = optarg; break;
		case 't': secs = atof(optarg); break;
		case 'n': max_count = atoll(optarg); secs = 3600; break;
		case 'c': conc = atoi(optarg); break;
		case 'T': timeout_s = atof(optarg); break;
		case 'e': expect_body = atoll(optarg); break;
		default:
			fprintf(stderr, "usage: see the comment in bench/http_get.c\n");
			return 2;
		}
	}
	if (!addr || !port || !path || conc < 1 || conc > 256) {
		fprintf(stderr, "http_get: need -a ADDR -p PORT -u PATH\n");
		return 2;
	}
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &target.sin_addr) != 1) {
		fprintf(stderr, "http_get: bad address %s\n", addr);
		return 2;
	}
	request_len = (size_t)snprintf(request, sizeof(request),
		"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: multistack-bench\r\n"
		"Connection: close\r\n\r\n", path, addr, port);
	memset(res, 0, sizeof(res));
	t0 = now_s();
	deadline = t0 + secs;
	for (i = 0; i < conc; i++)
		if (pthread_create(&th[i], NULL, worker, &res[i]))
			die("pthread_create");
	for (i = 0; i < conc; i++) {
		pthread_join(th[i], NULL);
		tot.ok += res[i].ok;
		tot.errors += res[i].errors;
		tot.bytes += res[i].bytes;
	}
	t1 = now_s();
	printf("requests=%llu errors=%llu bytes=%llu seconds=%.6f\n", tot.ok,
	       tot.errors, tot.bytes, t1 - t0);
	return 0;
}
