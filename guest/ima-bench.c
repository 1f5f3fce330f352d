// SPDX-License-Identifier: GPL-2.0
/*
 * Guest side of scripts/bench: the timings of the measurement list as user
 * space sees them.
 *
 *   ima-bench fill FILE N            add N records: FILE (on a file system
 *                                    the policy measures) rewritten with a
 *                                    new content and read back by root, N
 *                                    times; prints the time and the rate
 *   ima-bench read LIST BUFSIZE      read LIST (binary: the sha1 binary
 *                                    list, or ascii) whole twice with reads
 *                                    of BUFSIZE bytes; prints the time of
 *                                    each pass and the bytes (and records
 *                                    of a binary one)
 *   ima-bench stage FILE             as a writer of the _staged list: A, two
 *                                    reads of _staged (64 KiB reads), then
 *                                    D, each timed while a thread adds
 *                                    records (rewriting FILE) and times each
 *   ima-bench delete FILE            as a writer of the current list: N with
 *                                    N = the number of records, likewise
 *   ima-bench stall SECONDS          the longest a thread that only reads
 *                                    the clock went without running, over
 *                                    SECONDS: what the guest alone does to
 *                                    the latency of anything in it
 *
 * Every result is one line of KEY=VALUE words after a tag (FILL, READ, CMD,
 * STALL);
 * anything that goes wrong prints "ERROR ..." and exits 1: scripts/bench
 * reports that figure as failed, never as a number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IMA "/sys/kernel/security/ima/"

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("ERROR ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	exit(1);
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * One new record: FILE rewritten with a content never used before, then
 * opened and read by root, which is when IMA measures it. Returns how long
 * the open took: the add itself (hashing a few bytes, and the list).
 */
static unsigned long long add_one(const char *file, unsigned long seq)
{
	static unsigned long long boot;
	unsigned long long t0, t1;
	char content[96], b[128];
	int fd, len;

	if (!boot)
		boot = now_ns();
	len = snprintf(content, sizeof(content), "ima-bench %llu %lu\n", boot, seq);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, content, len) != len || close(fd))
		die("writing %s: %s", file, strerror(errno));
	t0 = now_ns();
	fd = open(file, O_RDONLY | O_CLOEXEC);
	t1 = now_ns();
	if (fd < 0)
		die("opening %s: %s", file, strerror(errno));
	while (read(fd, b, sizeof(b)) > 0)
		;
	close(fd);
	return t1 - t0;
}

static long count(void)
{
	char b[32];
	ssize_t n;
	int fd;

	fd = open(IMA "runtime_measurements_count", O_RDONLY);
	if (fd < 0)
		die("opening the count: %s", strerror(errno));
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		die("reading the count");
	b[n] = 0;
	return atol(b);
}

static unsigned long sequence;

/*
 * Records in a binary sha1 list: PCR (4 bytes), template digest (20), name
 * length (4), name, data length (4), data; numbers in the guest's order.
 */
static long binary_records(const char *p, size_t len)
{
	size_t off = 0;
	unsigned int field;
	long records = 0;
	int i;

	while (off < len) {
		off += 4 + 20;
		for (i = 0; i < 2; i++) {
			if (off + 4 > len)
				die("binary list cut short at byte %zu", off);
			memcpy(&field, p + off, 4);
			off += 4 + field;
		}
		if (off > len)
			die("binary list cut short at byte %zu", len);
		records++;
	}
	return records;
}

static void fill(const char *file, long n)
{
	long before = count(), added;
	unsigned long long t0 = now_ns(), t;
	long i;

	for (i = 0; i < n; i++)
		add_one(file, sequence++);
	t = now_ns() - t0;
	added = count() - before;
	/* More is possible: something else in the guest may read a file. */
	if (added < n)
		die("%ld reads of new contents made %ld records", n, added);
	printf("FILL records=%ld seconds=%.3f per_second=%.0f\n", n, t / 1e9,
	       n / (t / 1e9));
}

/*
 * Read FD from its start to its end with reads of BUFSIZE bytes into ALL
 * (grown as needed); returns the nanoseconds spent in read() alone (not in
 * keeping the bytes) and sets *TOTAL to the bytes read.
 */
static unsigned long long read_pass(int fd, const char *what, size_t bufsize,
				    char *buf, char **all, size_t *cap,
				    size_t *total)
{
	unsigned long long t0, t = 0;
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) != 0)
		die("seeking to the start of %s: %s", what, strerror(errno));
	*total = 0;
	for (;;) {
		t0 = now_ns();
		n = read(fd, buf, bufsize);
		t += now_ns() - t0;
		if (n <= 0)
			break;
		if (*total + n > *cap) {
			*cap = 2 * (*total + n);
			*all = realloc(*all, *cap);
			if (!*all)
				die("no memory");
		}
		memcpy(*all + *total, buf, n);
		*total += n;
	}
	if (n < 0)
		die("reading %s: %s", what, strerror(errno));
	return t;
}

/*
 * Read FD whole twice with reads of BUFSIZE bytes; prints the time of the
 * second pass (seconds) and of the first (first_seconds), the bytes and,
 * for a binary sha1 list (WHAT "binary" or "staged"), the records they
 * hold. The first pass after other work is the one in which QEMU's TCG
 * translates the code of the read path again: the second pass times the
 * list. The passes must read the same bytes.
 */
static void read_to_end(int fd, const char *what, size_t bufsize)
{
	size_t first_total, total, cap = 1 << 20;
	char *buf = malloc(bufsize), *all = malloc(cap);
	unsigned long long first, t;

	if (!buf || !all)
		die("no memory");
	first = read_pass(fd, what, bufsize, buf, &all, &cap, &first_total);
	t = read_pass(fd, what, bufsize, buf, &all, &cap, &total);
	if (total != first_total)
		die("%s read twice: %zu then %zu bytes", what, first_total, total);
	printf("READ what=%s bytes=%zu bufsize=%zu seconds=%.6f first_seconds=%.6f",
	       what, total, bufsize, t / 1e9, first / 1e9);
	if (!strcmp(what, "binary") || !strcmp(what, "staged"))
		printf(" records=%ld", binary_records(all, total));
	putchar('\n');
	free(all);
	free(buf);
}

/*
 * The adder thread of a timed command, and what it saw. The command's start
 * and end are 0 until the main thread knows them.
 */
struct adder {
	const char *file;
	unsigned long long cmd_start, cmd_end;
	unsigned long adds, during, after;
	unsigned long long worst_during, worst_before, worst_after;
};

/* Adds before the command, and at least as many after it. */
#define IDLE_ADDS 20

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

/*
 * Adds until the command has ended and as many adds as overlapped it (at
 * least IDLE_ADDS) have run after it: the worst of those is the worst add
 * of a window of the same size without a command, which the worst add
 * during the command is to be compared with.
 */
static void *adder_thread(void *arg)
{
	struct adder *a = arg;
	unsigned long long s, e, lat, start, end;

	do {
		s = now_ns();
		lat = add_one(a->file, sequence++);
		e = now_ns();
		STORE(a->adds, a->adds + 1);
		start = LOAD(a->cmd_start);
		end = LOAD(a->cmd_end);
		/* An add that overlapped the command: it may have waited for it. */
		if (start && e > start && (!end || s < end)) {
			a->during++;
			if (lat > a->worst_during)
				a->worst_during = lat;
		} else if (end && s >= end) {
			a->after++;
			if (lat > a->worst_after)
				a->worst_after = lat;
		} else if (!start && lat > a->worst_before) {
			a->worst_before = lat;
		}
	} while (!end || a->after < (a->during > IDLE_ADDS ? a->during : IDLE_ADDS));
	return NULL;
}

/*
 * Write CMD to FD while the adder runs; prints the command's time and the
 * worst add latency during it (at least the add in progress when it began).
 */
static void timed_command(const char *file, int fd, const char *name,
			  const char *cmd)
{
	struct adder a = { .file = file };
	unsigned long long t0, t1;
	pthread_t th;
	ssize_t n;

	if (pthread_create(&th, NULL, adder_thread, &a))
		die("pthread_create");
	/* Some adds before, for the latency of an add with no command. */
	while (LOAD(a.adds) < IDLE_ADDS)
		usleep(1000);
	t0 = now_ns();
	STORE(a.cmd_start, t0);
	n = write(fd, cmd, strlen(cmd));
	t1 = now_ns();
	STORE(a.cmd_end, t1);
	if (n != (ssize_t)strlen(cmd))
		die("%s: write returned %zd (%s)", name, n, strerror(errno));
	pthread_join(th, NULL);
	printf("CMD op=%s seconds=%.6f adds_during=%lu worst_add_us=%.0f idle_worst_add_us=%.0f adds_after=%lu after_worst_add_us=%.0f\n",
	       name, (t1 - t0) / 1e9, a.during, a.worst_during / 1e3,
	       a.worst_before / 1e3, a.after, a.worst_after / 1e3);
}

/*
 * Reads the clock for SECONDS and prints the longest gap between two reads:
 * an add can take that long with no command, and no list, involved.
 */
static void stall(double seconds)
{
	unsigned long long t, prev = now_ns(), end, worst = 0;

	end = prev + (unsigned long long)(seconds * 1e9);
	do {
		t = now_ns();
		if (t - prev > worst)
			worst = t - prev;
		prev = t;
	} while (t < end);
	printf("STALL seconds=%.3f worst_us=%.0f\n", seconds, worst / 1e3);
}

static int open_writer(const char *path)
{
	int fd = open(path, O_RDWR);

	if (fd < 0)
		die("opening %s for writing: %s", path, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	char cmd[32], path[128];
	long n;
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "fill")) {
		n = atol(argv[3]);
		if (n <= 0)
			die("bad count %s", argv[3]);
		fill(argv[2], n);
	} else if (argc == 4 && !strcmp(argv[1], "read")) {
		n = atol(argv[3]);
		if (n <= 0)
			die("bad buffer size %s", argv[3]);
		if (strcmp(argv[2], "binary") && strcmp(argv[2], "ascii"))
			die("no list %s", argv[2]);
		snprintf(path, sizeof(path), IMA "%s_runtime_measurements", argv[2]);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("opening %s: %s", path, strerror(errno));
		read_to_end(fd, argv[2], n);
		close(fd);
	} else if (argc == 3 && !strcmp(argv[1], "stage")) {
		fd = open_writer(IMA "binary_runtime_measurements_staged");
		timed_command(argv[2], fd, "A", "A\n");
		read_to_end(fd, "staged", 65536);
		timed_command(argv[2], fd, "D", "D\n");
		close(fd);
	} else if (argc == 3 && !strcmp(argv[1], "delete")) {
		fd = open_writer(IMA "binary_runtime_measurements");
		n = count();
		snprintf(cmd, sizeof(cmd), "%ld\n", n);
		timed_command(argv[2], fd, "N", cmd);
		printf("INFO deleted the first %ld records\n", n);
		close(fd);
	} else if (argc == 3 && !strcmp(argv[1], "stall")) {
		if (!(atof(argv[2]) > 0))
			die("bad duration %s", argv[2]);
		stall(atof(argv[2]));
	} else {
		fprintf(stderr, "usage: ima-bench fill FILE N | read binary|ascii BUFSIZE | stage FILE | delete FILE | stall SECONDS\n");
		return 2;
	}
	return 0;
}
