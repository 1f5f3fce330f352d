// SPDX-License-Identifier: GPL-2.0
/*
 * ima-abi.c - syscall-level conformance suite for the IMA measurement list
 * export/delete ("staging") interface under /sys/kernel/security/ima/.
 *
 * Run as root in a test VM (IMA, ima_policy=tcb, a TPM). Every case prints
 *
 *   CASE <name> PASS|FAIL|XFAIL|XPASS  expected=<...> observed=<...>  # <what>
 *
 * then "N xfail" and "N passed, N failed"; the exit status is 1 if anything
 * failed. Every record the suite deletes is read and kept first, so that
 * with --save FILE the suite ends by writing "saved ++ staged ++ current"
 * (FILE for sha1, FILE.sha256 for sha256), which must replay to PCR 10.
 *
 * Usage: ima-abi --scratch DIR [--dir DIR] [--staging=y|n] [--flush=y|n]
 *                [--only NAME_GLOB] [--xfail NAME,...] [--seed N] [--save FILE]
 * Build: gcc -O2 -Wall -Wextra -o ima-abi ima-abi.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define TEXTLEN		1024	/* expected= / observed= text of one case */
#define NFMT		32	/* rotating fmt() buffers */
#define FMTLEN		512
#define MAXENTS		256	/* directory entries scanned */
#define MAXXFAIL	64
#define INV_OPS		40	/* operations of the random invariant run */
#define STAGE_TRIES	5	/* attempts to catch an empty current list */
#define CMD_ROUNDS	20	/* A, D and N rounds under a reading child */
#define CMD_RECORDS	32	/* current records before its first round */
#define REAP_SECS	30	/* a child is waited for, then given up */

static struct {
	const char *dir;
	const char *scratch;
	const char *only;
	const char *save;
	const char *xfail[MAXXFAIL];
	int nxfail;
	bool staging;
	bool flush;
	unsigned long seed;
} opt = {
	.dir = "/sys/kernel/security/ima",
	.staging = true,
	.seed = 1,
};

/* ------------------------------------------------------------------ */
/* Formatting                                                          */

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
	static char bufs[NFMT][FMTLEN];
	static unsigned int next;
	char *b = bufs[next++ % NFMT];
	va_list ap;

	va_start(ap, f);
	vsnprintf(b, FMTLEN, f, ap);
	va_end(ap);
	return b;
}

#define ERRNAME(e) { e, #e }
static const struct {
	int no;
	const char *name;
} errnames[] = {
	ERRNAME(EPERM), ERRNAME(ENOENT), ERRNAME(ESRCH), ERRNAME(EINTR),
	ERRNAME(EIO), ERRNAME(ENXIO), ERRNAME(E2BIG), ERRNAME(EBADF),
	ERRNAME(ECHILD), ERRNAME(EAGAIN), ERRNAME(ENOMEM), ERRNAME(EACCES),
	ERRNAME(EFAULT), ERRNAME(EBUSY), ERRNAME(EEXIST), ERRNAME(EXDEV),
	ERRNAME(ENODEV), ERRNAME(ENOTDIR), ERRNAME(EISDIR), ERRNAME(EINVAL),
	ERRNAME(ENFILE), ERRNAME(EMFILE), ERRNAME(ENOTTY), ERRNAME(EFBIG),
	ERRNAME(ENOSPC), ERRNAME(ESPIPE), ERRNAME(EROFS), ERRNAME(EPIPE),
	ERRNAME(ERANGE), ERRNAME(ENAMETOOLONG), ERRNAME(ENOSYS),
	ERRNAME(ELOOP), ERRNAME(EOVERFLOW), ERRNAME(EBADMSG),
	ERRNAME(EOPNOTSUPP), ERRNAME(ESTALE), ERRNAME(EDQUOT),
};

static const char *errname(int e)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].no == e)
			return errnames[i].name;
	return fmt("E%d", e);
}

/* A counter value, or the errno name when it is a negative errno. */
static const char *fmt_count(long v)
{
	return v < 0 ? errname((int)-v) : fmt("%ld", v);
}

/* ------------------------------------------------------------------ */
/* Case context and checks                                             */

struct ctx {
	char exp[TEXTLEN];
	char obs[TEXTLEN];
	bool failed;
	bool quiet;		/* record failing checks only */
	char prefix[64];	/* prepended to labels */
};

struct scope {
	bool quiet;
	char prefix[64];
};

/* Nested steps (set-up, one invariant operation) only report failures. */
static struct scope enter(struct ctx *c, const char *prefix)
{
	struct scope s = { .quiet = c->quiet };

	memcpy(s.prefix, c->prefix, sizeof(s.prefix));
	snprintf(c->prefix, sizeof(c->prefix), "%s%s", s.prefix, prefix);
	c->quiet = true;
	return s;
}

static void leave(struct ctx *c, const struct scope *s)
{
	c->quiet = s->quiet;
	memcpy(c->prefix, s->prefix, sizeof(c->prefix));
}

static void append(char *dst, const char *label, const char *val)
{
	size_t l = strlen(dst);

	snprintf(dst + l, TEXTLEN - l, "%s%s:%s", l ? "," : "", label, val);
}

static bool note(struct ctx *c, const char *label, bool ok, const char *exp,
		 const char *obs)
{
	if (!ok || !c->quiet) {
		const char *l = fmt("%s%s", c->prefix, label);

		append(c->exp, l, exp);
		append(c->obs, l, obs);
	}
	if (!ok)
		c->failed = true;
	return ok;
}

static bool check(struct ctx *c, const char *label, const char *exp,
		  const char *obs)
{
	return note(c, label, strcmp(exp, obs) == 0, exp, obs);
}

static bool check_eq(struct ctx *c, const char *label, long exp, long obs)
{
	return note(c, label, exp >= 0 && obs == exp, fmt_count(exp),
		    fmt_count(obs));
}

static bool check_ge(struct ctx *c, const char *label, long lo, long obs)
{
	return note(c, label, lo >= 0 && obs >= lo,
		    fmt(">=%s", fmt_count(lo)), fmt_count(obs));
}

/* ------------------------------------------------------------------ */
/* Files and raw system calls                                          */

static const char *ipath(const char *name)
{
	return fmt("%s/%s", opt.dir, name);
}

static const char *bin_name(const char *algo, bool staged)
{
	return fmt("binary_runtime_measurements_%s%s", algo,
		   staged ? "_staged" : "");
}

static const char *asc_name(const char *algo, bool staged)
{
	return fmt("ascii_runtime_measurements_%s%s", algo,
		   staged ? "_staged" : "");
}

static int open_ima(const char *name, int flags)
{
	return open(ipath(name), flags | O_CLOEXEC);
}

/* "ok" if name opens with flags (closed again at once), else the errno. */
static const char *open_obs(const char *name, int flags)
{
	int fd = open_ima(name, flags);

	if (fd < 0)
		return errname(errno);
	close(fd);
	return "ok";
}

/* "ok" for a complete write, "partial:N" for a short one, else the errno. */
static const char *write_obs(int fd, const void *p, size_t len)
{
	ssize_t n = write(fd, p, len);

	if (n < 0)
		return errname(errno);
	if ((size_t)n != len)
		return fmt("partial:%zd", n);
	return "ok";
}

static const char *write_file_obs(const char *name, const char *payload)
{
	const char *obs;
	int fd = open_ima(name, O_WRONLY);

	if (fd < 0)
		return fmt("open:%s", errname(errno));
	obs = write_obs(fd, payload, strlen(payload));
	close(fd);
	return obs;
}

/* A decimal counter file; a negative errno if it cannot be read. */
static long read_long(const char *name)
{
	char b[64], *end;
	ssize_t n;
	long v;
	int fd = open_ima(name, O_RDONLY), e;

	if (fd < 0)
		return -errno;
	n = read(fd, b, sizeof(b) - 1);
	e = errno;
	close(fd);
	if (n < 0)
		return -e;
	b[n] = '\0';
	v = strtol(b, &end, 10);
	if (end == b || (*end != '\n' && *end != '\0') || v < 0)
		return -EBADMSG;
	return v;
}

static long count_now(void)
{
	return read_long("runtime_measurements_count");
}

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (!n)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) {
			perror("ima-abi: realloc");
			exit(2);
		}
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){ 0 };
}

/* Append everything from fd's position to EOF; 0 or an errno. */
static int buf_read_fd(struct buf *b, int fd)
{
	char tmp[65536];
	ssize_t n;

	for (;;) {
		n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return 0;
		buf_add(b, tmp, n);
	}
}

static const char *write_all_obs(int fd, const struct buf *b)
{
	size_t off = 0;
	ssize_t n;

	while (off < b->len) {
		n = write(fd, b->p + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errname(errno) : "short-write";
		off += n;
	}
	return "ok";
}

/* ------------------------------------------------------------------ */
/* Binary measurement list                                             */

/*
 * Records are native endian: pcr u32, template digest (dsize bytes), name
 * length u32, name, then data length u32 and data, except for the "ima"
 * template, whose 20-byte file digest precedes an u32-prefixed file name.
 */
static long rec_len(const unsigned char *p, size_t avail, size_t dsize)
{
	size_t off = 4 + dsize;
	uint32_t namelen, datalen;
	bool ima;

	if (avail < off + 4)
		return -1;
	memcpy(&namelen, p + off, 4);
	off += 4;
	if (namelen == 0 || namelen > 255 || avail - off < namelen)
		return -1;
	ima = namelen == 3 && memcmp(p + off, "ima", 3) == 0;
	off += namelen + (ima ? 20 : 0);
	if (avail < off + 4)
		return -1;
	memcpy(&datalen, p + off, 4);
	off += 4;
	if (datalen > avail - off)
		return -1;
	return off + datalen;
}

/* Records in the first *bytes of b, up to limit; -1 if malformed. */
static long walk(const struct buf *b, size_t dsize, long limit, size_t *bytes)
{
	size_t off = 0;
	long n = 0, l;

	while (n < limit && off < b->len) {
		l = rec_len(b->p + off, b->len - off, dsize);
		if (l < 0)
			return -1;
		off += l;
		n++;
	}
	if (bytes)
		*bytes = off;
	return n;
}

static long nrecords(const struct buf *b, size_t dsize)
{
	return walk(b, dsize, LONG_MAX, NULL);
}

/* Byte length of the first n records, -1 if b holds fewer. */
static long prefix_len(const struct buf *b, size_t dsize, long n)
{
	size_t bytes;

	return walk(b, dsize, n, &bytes) == n ? (long)bytes : -1;
}

/* Banks whose lists are saved; sha1 files always exist. */
static struct bank {
	const char *algo;
	size_t dsize;
	const char *suffix;	/* of the --save file */
	bool present;
	struct buf saved;	/* every chunk deleted by the suite, in order */
} banks[] = {
	{ .algo = "sha1", .dsize = 20, .suffix = "", .present = true },
	{ .algo = "sha256", .dsize = 32, .suffix = ".sha256" },
};
#define NBANKS (sizeof(banks) / sizeof(banks[0]))

/* The second bank used to show that mediation spans files. */
static const char *alt_algo(void)
{
	return banks[1].present ? "sha256" : "sha1";
}

static long records_made;	/* records make_records() confirmed */
static long initial_records;	/* sha1 staged + current at start */
static long viol_start, viol_last;
static char viol_drop[128];

/*
 * Read current (and staged) lists of every bank while holding all readers,
 * so that nothing is staged or deleted in between; 0 or an errno.
 */
static int snapshot(struct buf cur[NBANKS], struct buf stg[NBANKS])
{
	int fd[NBANKS][2], e = 0;

	for (size_t i = 0; i < NBANKS; i++)
		fd[i][0] = fd[i][1] = -1;
	for (size_t i = 0; i < NBANKS && !e; i++) {
		for (int s = 0; banks[i].present && s <= opt.staging && !e; s++) {
			fd[i][s] = open_ima(bin_name(banks[i].algo, s), O_RDONLY);
			if (fd[i][s] < 0)
				e = errno;
		}
	}
	for (size_t i = 0; i < NBANKS; i++) {
		if (!e && fd[i][0] >= 0)
			e = buf_read_fd(&cur[i], fd[i][0]);
		if (!e && fd[i][1] >= 0)
			e = buf_read_fd(&stg[i], fd[i][1]);
		for (int s = 0; s < 2; s++)
			if (fd[i][s] >= 0)
				close(fd[i][s]);
	}
	return e;
}

/* ------------------------------------------------------------------ */
/* Writer sets: binary files of every bank opened O_RDWR by this task  */

struct wset {
	int fd[NBANKS];
	struct buf data[NBANKS];
};

/* (Re)read every file of the set from the start. */
static bool wset_read(struct ctx *c, struct wset *s)
{
	for (size_t i = 0; i < NBANKS; i++) {
		int e;

		if (s->fd[i] < 0)
			continue;
		s->data[i].len = 0;
		e = lseek(s->fd[i], 0, SEEK_SET) < 0 ? errno :
			buf_read_fd(&s->data[i], s->fd[i]);
		if (e)
			return note(c, fmt("read-%s", banks[i].algo), false,
				    "ok", errname(e));
		if (nrecords(&s->data[i], banks[i].dsize) < 0)
			return note(c, fmt("parse-%s", banks[i].algo), false,
				    "ok", "malformed");
	}
	return true;
}

static void wset_close(struct wset *s)
{
	for (size_t i = 0; i < NBANKS; i++) {
		if (s->fd[i] >= 0)
			close(s->fd[i]);
		buf_free(&s->data[i]);
	}
}

/* Open (sha1 first, so it is the writer's primary file) and read. */
static bool wset_open(struct ctx *c, struct wset *s, bool staged)
{
	for (size_t i = 0; i < NBANKS; i++) {
		s->fd[i] = -1;
		s->data[i] = (struct buf){ 0 };
	}
	for (size_t i = 0; i < NBANKS; i++) {
		const char *name = bin_name(banks[i].algo, staged);

		if (!banks[i].present)
			continue;
		s->fd[i] = open_ima(name, O_RDWR);
		if (s->fd[i] < 0) {
			note(c, fmt("open-%s", name), false, "ok",
			     errname(errno));
			wset_close(s);
			return false;
		}
	}
	if (!wset_read(c, s)) {
		wset_close(s);
		return false;
	}
	return true;
}

/* Read the staged lists, write "D\n" and keep what it deleted. */
static bool wset_delete(struct ctx *c, struct wset *s)
{
	const char *obs;
	long n0;

	if (!wset_read(c, s))
		return false;
	n0 = nrecords(&s->data[0], banks[0].dsize);
	for (size_t i = 1; i < NBANKS; i++)
		if (banks[i].present &&
		    !check_eq(c, fmt("staged-%s", banks[i].algo), n0,
			      nrecords(&s->data[i], banks[i].dsize)))
			return false;
	obs = write_obs(s->fd[0], "D\n", 2);
	if (strcmp(obs, "ok") == 0)
		for (size_t i = 0; i < NBANKS; i++)
			buf_add(&banks[i].saved, s->data[i].p, s->data[i].len);
	return check(c, "D", n0 ? "ok" : "ENOENT", obs);
}

/*
 * Write payload (a request to delete n records) on the originals, keeping
 * the first n records of the lists read at open if it succeeds.
 */
static const char *wset_delete_n(struct ctx *c, struct wset *s, long n,
				 const char *payload)
{
	long len[NBANKS] = { 0 };
	const char *obs;

	for (size_t i = 0; i < NBANKS; i++) {
		if (!banks[i].present)
			continue;
		len[i] = prefix_len(&s->data[i], banks[i].dsize, n);
		if (len[i] < 0) {
			check_ge(c, fmt("records-%s", banks[i].algo), n,
				 nrecords(&s->data[i], banks[i].dsize));
			return "not-enough-records";
		}
	}
	obs = write_obs(s->fd[0], payload, strlen(payload));
	if (strcmp(obs, "ok") == 0)
		for (size_t i = 0; i < NBANKS; i++)
			buf_add(&banks[i].saved, s->data[i].p, len[i]);
	return obs;
}

/* Precondition: nothing staged; whatever was staged is saved first. */
static bool unstaged(struct ctx *c)
{
	struct scope sc = enter(c, "setup.");
	struct wset s;
	bool ok = wset_open(c, &s, true);

	if (ok) {
		if (s.data[0].len)
			ok = wset_delete(c, &s);
		wset_close(&s);
	}
	leave(c, &sc);
	return ok;
}

/* "A\n", read the staged lists, "D\n", through the open staged set s. */
static bool wset_stage_delete(struct ctx *c, struct wset *s)
{
	return check(c, "A", "ok", write_obs(s->fd[0], "A\n", 2)) &&
	       wset_delete(c, s);
}

/* wset_stage_delete() through a writer set of its own. */
static bool stage_save_delete(struct ctx *c)
{
	struct wset s;
	bool ok;

	if (!wset_open(c, &s, true))
		return false;
	ok = wset_stage_delete(c, &s);
	wset_close(&s);
	return ok;
}

/* ------------------------------------------------------------------ */
/* New measurement records                                             */

static bool make_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok;

	if (fd < 0)
		return false;
	ok = strcmp(write_obs(fd, content, strlen(content)), "ok") == 0;
	close(fd);
	return ok;
}

static bool read_path(const char *path)
{
	char b[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	while ((n = read(fd, b, sizeof(b))) > 0)
		;
	close(fd);
	return n == 0;
}

/*
 * Create path afresh (a new inode, so no cached IMA state) and read it as
 * root; returns how many records that added, or -1 after noting a failure.
 */
static long measure_new(struct ctx *c, const char *label, const char *path,
			const char *content)
{
	long before, after;
	int e = 0;

	unlink(path);
	if (!make_file(path, content))
		e = errno;
	before = count_now();
	if (!e && !read_path(path))
		e = errno;
	after = count_now();
	if (e) {
		note(c, label, false, "measured", fmt("scratch:%s", errname(e)));
		return -1;
	}
	if (before < 0 || after < 0) {
		note(c, label, false, "count",
		     fmt_count(before < 0 ? before : after));
		return -1;
	}
	return after - before;
}

/* Add n records by reading n new unique files in the scratch directory. */
static bool make_records(struct ctx *c, long n)
{
	static unsigned long seq;
	long added = 0, d;
	struct timespec ts;

	for (long i = 0; i < n; i++) {
		const char *path = fmt("%s/ima-abi-%ld-%lu", opt.scratch,
				       (long)getpid(), seq);

		clock_gettime(CLOCK_REALTIME, &ts);
		d = measure_new(c, "added", path,
				fmt("ima-abi record %ld %lu %lld.%09ld\n",
				    (long)getpid(), seq++,
				    (long long)ts.tv_sec, ts.tv_nsec));
		unlink(path);
		if (d < 0)
			return false;
		added += d;
	}
	if (!note(c, "added", added >= n, fmt(">=%ld", n),
		  added ? fmt("%ld", added) : "no-records-added"))
		return false;
	records_made += n;
	return true;
}

/* Precondition: at least n records in the current list. */
static bool ensure_records(struct ctx *c, long n)
{
	struct scope sc = enter(c, "setup.");
	long cnt = count_now();
	bool ok = cnt >= 0 ? cnt >= n || make_records(c, n) :
		  note(c, "count", false, "readable", fmt_count(cnt));

	leave(c, &sc);
	return ok;
}

/*
 * Delete n records with payload on the originals and check the counter;
 * with ima_flush_htable the request must be refused with EINVAL instead.
 */
static bool delete_n_checked(struct ctx *c, long n, const char *payload)
{
	char req[32];
	struct wset s;
	const char *obs;
	long before, after;

	snprintf(req, sizeof(req), "%s", payload);	/* may be a fmt() buffer */
	if (!ensure_records(c, n) || !wset_open(c, &s, false))
		return false;
	before = count_now();
	obs = wset_delete_n(c, &s, n, req);
	after = count_now();
	wset_close(&s);
	if (opt.flush)
		return check(c, "N", "EINVAL", obs) &&
		       check_ge(c, "count", before, after);
	return check(c, "N", "ok", obs) &&
	       check_eq(c, "count", before - n, after);
}

/* ------------------------------------------------------------------ */
/* Child processes                                                     */

static bool drop_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	const int i = CAP_TO_INDEX(CAP_SYS_ADMIN);
	const __u32 m = CAP_TO_MASK(CAP_SYS_ADMIN);

	if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) ||
	    syscall(SYS_capget, &h, d))
		return false;
	d[i].effective &= ~m;
	d[i].permitted &= ~m;
	d[i].inheritable &= ~m;
	if (syscall(SYS_capset, &h, d) || syscall(SYS_capget, &h, d))
		return false;
	return !(d[i].effective & m);
}

/*
 * open_obs() in a forked child (another task), optionally without
 * CAP_SYS_ADMIN. The parent keeps its descriptors until the child is
 * reaped, so the child never drops the last reference to them.
 */
static const char *child_open_obs(const char *name, int flags, bool drop_admin)
{
	char out[128];
	ssize_t n;
	pid_t pid;
	int p[2], st;

	if (pipe2(p, O_CLOEXEC))
		return fmt("pipe:%s", errname(errno));
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return fmt("fork:%s", errname(errno));
	}
	if (pid == 0) {
		const char *r = drop_admin && !drop_sys_admin() ?
				"capdrop-failed" : open_obs(name, flags);

		_exit(write(p[1], r, strlen(r)) < 0);
	}
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	close(p[0]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) || n <= 0)
		return "child-failed";
	out[n] = '\0';
	return fmt("%s", out);
}

/*
 * "ok" once pid has exited with status 0, else how it ended. A child that
 * oopsed in the kernel may never exit (D state, or a lock it died with):
 * after REAP_SECS it is killed and left behind, so that the suite goes on.
 */
static const char *reap_obs(pid_t pid)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };
	int st, ticks = 0;
	pid_t r;

	while ((r = waitpid(pid, &st, WNOHANG)) == 0 ||
	       (r < 0 && errno == EINTR)) {
		if (ticks++ == REAP_SECS * 100) {
			kill(pid, SIGKILL);
			return "child-did-not-exit";
		}
		nanosleep(&tick, NULL);
	}
	if (r != pid)
		return fmt("waitpid:%s", errname(errno));
	if (WIFSIGNALED(st))
		return fmt("signal:%d", WTERMSIG(st));
	return WEXITSTATUS(st) ? fmt("exit:%d", WEXITSTATUS(st)) : "ok";
}

/*
 * Unlike child_open_obs(), fork a child meant to drop the last reference:
 * it inherits all our descriptors, waits until the parent closes *go (its
 * end of a pipe), then closes fd[0..n-1] itself and exits. Whatever the
 * parent closed first is thus released in the child. Returns the pid, or
 * -1 after noting the failure.
 */
static pid_t fork_closer(struct ctx *c, const int *fd, int n, int *go)
{
	pid_t pid;
	int p[2];

	if (pipe2(p, O_CLOEXEC)) {
		note(c, "pipe", false, "ok", errname(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		note(c, "fork", false, "ok", errname(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int st = 0;
		char b;

		close(p[1]);
		if (read(p[0], &b, 1) != 0)	/* EOF: the parent closed */
			st = 3;
		for (int i = 0; i < n; i++)
			if (close(fd[i]))
				st = 4;
		_exit(st);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

/* Send fd over the Unix socket sock with SCM_RIGHTS; "ok" or the errno. */
static const char *send_fd_obs(int sock, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	char byte = 'f';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr m = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.b,
		.msg_controllen = sizeof(u.b),
	};
	struct cmsghdr *cm;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	n = sendmsg(sock, &m, MSG_NOSIGNAL);
	if (n < 0)
		return errname(errno);
	return n == 1 ? "ok" : fmt("partial:%zd", n);
}

/* "ok" for one byte read from fd, "eof", or the errno. */
static const char *recv_byte_obs(int fd)
{
	ssize_t n;
	char b;

	n = read(fd, &b, 1);
	return n < 0 ? errname(errno) : n ? "ok" : "eof";
}

/*
 * Child side of mediation_scm_rights: receive one descriptor over sock,
 * acknowledge it with a byte, hold it until the parent sends a byte (or
 * closes its end), then close it. Returns the exit status.
 */
static int scm_holder(int sock)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr m = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.b,
		.msg_controllen = sizeof(u.b),
	};
	struct cmsghdr *cm;
	int fd = -1;

	memset(&u, 0, sizeof(u));
	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1)
		return 3;
	cm = CMSG_FIRSTHDR(&m);
	if (cm && cm->cmsg_level == SOL_SOCKET &&
	    cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (fd < 0)
		return 4;
	if (send(sock, "r", 1, MSG_NOSIGNAL) != 1) {
		close(fd);
		return 5;
	}
	if (read(sock, &byte, 1) < 0) {
		close(fd);
		return 6;
	}
	return close(fd) ? 7 : 0;
}

/* What the reading child of writer_reads_during_commands did, shared. */
struct reads {
	long n;		/* reads that returned >= 0 (EOF included) */
	long errors;
	int first;	/* errno of the first failed read */
};

/*
 * Child side of writer_reads_during_commands: pread() fd[0..n-1] in turn,
 * never writing, until the parent closes its end of the non-blocking pipe
 * stop. A pread() anywhere but where the seq_file stopped walks the list
 * from its head again, to the offset or, past the end, through all of it.
 * n is 4 or 8, coprime to the 3 lengths and the 7 offsets, so every file is
 * read at every length and offset. Returns the exit status.
 */
static int list_reader(const int *fd, int n, int stop, struct reads *r)
{
	static const size_t len[] = { 1, 700, 4096 };
	static const off_t off[] = { 0, 1, 99, 1000, 5000, 40000, 1L << 30 };
	char b[4096], x;

	for (unsigned long k = 0; read(stop, &x, 1) < 0 && errno == EAGAIN;
	     k++) {
		if (pread(fd[k % n], b, len[k % 3], off[k % 7]) >= 0)
			r->n++;
		else if (!r->errors++)
			r->first = errno;
	}
	return r->errors != 0;
}

/* ------------------------------------------------------------------ */
/* Cases: files                                                        */

struct dent {
	char name[NAME_MAX + 1];
	mode_t mode;
};

static bool is_list(const char *name)
{
	return !strncmp(name, "ascii_runtime_measurements", 26) ||
	       !strncmp(name, "binary_runtime_measurements", 27);
}

static bool is_staged(const char *name)
{
	size_t l = strlen(name);

	return l > 7 && strcmp(name + l - 7, "_staged") == 0;
}

/* Measurement list entries of DIR with their lstat() modes. */
static bool scan_dir(struct ctx *c, struct dent *ents, size_t *n)
{
	DIR *d = opendir(opt.dir);
	struct dirent *de;
	struct stat st;

	*n = 0;
	if (!d)
		return note(c, "scan", false, "ok", errname(errno));
	while ((de = readdir(d)) && *n < MAXENTS) {
		if (!is_list(de->d_name) ||
		    lstat(ipath(de->d_name), &st))
			continue;
		snprintf(ents[*n].name, sizeof(ents[*n].name), "%s",
			 de->d_name);
		ents[(*n)++].mode = st.st_mode;
	}
	closedir(d);
	return true;
}

static const struct dent *find_dent(const struct dent *ents, size_t n,
				    const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ents[i].name, name) == 0)
			return &ents[i];
	return NULL;
}

static void case_files_present(struct ctx *c)
{
	static const char *const need[] = {
		"ascii_runtime_measurements_sha1",
		"binary_runtime_measurements_sha1",
		"ascii_runtime_measurements",
		"binary_runtime_measurements",
		"runtime_measurements_count",
		"violations",
	};
	const char *missing = "none";
	struct stat st;

	if (!check(c, "dir", "ok", stat(opt.dir, &st) ? errname(errno) :
		   S_ISDIR(st.st_mode) ? "ok" : "not-a-directory"))
		return;
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (lstat(ipath(need[i]), &st)) {
			missing = need[i];
			break;
		}
	check(c, "missing", "none", missing);
	check_ge(c, "count", 0, count_now());
	check_ge(c, "violations", 0, read_long("violations"));
}

static void case_files_staged_twins(struct ctx *c)
{
	static const char *const links[][2] = {
		{ "binary_runtime_measurements_staged",
		  "binary_runtime_measurements_sha1_staged" },
		{ "ascii_runtime_measurements_staged",
		  "ascii_runtime_measurements_sha1_staged" },
	};
	struct dent ents[MAXENTS];
	const struct dent *twin;
	long originals = 0, twins = 0, staged = 0;
	char missing[NAME_MAX + 8] = "none";
	size_t n;

	if (!scan_dir(c, ents, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (is_staged(ents[i].name)) {
			staged++;
			continue;
		}
		if (!S_ISREG(ents[i].mode))
			continue;
		originals++;
		twin = find_dent(ents, n, fmt("%s_staged", ents[i].name));
		if (twin && S_ISREG(twin->mode))
			twins++;
		else if (!strcmp(missing, "none"))
			snprintf(missing, sizeof(missing), "%s_staged",
				 ents[i].name);
	}
	check_ge(c, "originals", 2, originals);
	if (!opt.staging) {
		check_eq(c, "staged-entries", 0, staged);
		return;
	}
	check_eq(c, "twins", originals, twins);
	check(c, "missing", "none", missing);
	for (size_t i = 0; i < 2; i++) {
		char target[NAME_MAX + 1];
		ssize_t l = readlink(ipath(links[i][0]), target,
				     sizeof(target) - 1);

		if (l >= 0)
			target[l] = '\0';
		check(c, links[i][0], links[i][1],
		      l < 0 ? errname(errno) : target);
	}
}

static void case_files_modes(struct ctx *c)
{
	const unsigned int want_orig = opt.staging ? 0660 : 0440;
	const char *bad_orig = NULL, *bad_staged = NULL;
	struct dent ents[MAXENTS];
	long originals = 0;
	size_t n;

	if (!scan_dir(c, ents, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		unsigned int m = ents[i].mode & 07777;
		bool staged = is_staged(ents[i].name);
		const char **bad = staged ? &bad_staged : &bad_orig;

		if (!S_ISREG(ents[i].mode))
			continue;
		originals += !staged;
		if (m != (staged ? 0660u : want_orig) && !*bad)
			*bad = fmt("%s=%04o", ents[i].name, m);
	}
	check_ge(c, "originals", 2, originals);
	check(c, "originals", fmt("%04o", want_orig),
	      bad_orig ? bad_orig : fmt("%04o", want_orig));
	if (opt.staging)
		check(c, "staged", "0660", bad_staged ? bad_staged : "0660");
}

static void case_nostaging_write_refused(struct ctx *c)
{
	long before;
	const char *obs;

	if (!ensure_records(c, 1))
		return;
	before = count_now();
	obs = write_file_obs(bin_name("sha1", false), "1\n");
	note(c, "write-1", strcmp(obs, "ok") != 0, "open-or-write-fails", obs);
	check_ge(c, "count", before, count_now());
}

/* ------------------------------------------------------------------ */
/* Cases: capability and open mediation                                */

static void case_cap_sys_admin(struct ctx *c)
{
	check(c, "rdonly", "ok",
	      child_open_obs(asc_name("sha1", false), O_RDONLY, true));
	if (!opt.staging)
		return;
	check(c, "wronly-staged", "EPERM",
	      child_open_obs(bin_name("sha1", true), O_WRONLY, true));
	check(c, "rdwr-original", "EPERM",
	      child_open_obs(bin_name("sha1", false), O_RDWR, true));
}

/* Open and keep name; -1 after noting the failure. */
static int hold(struct ctx *c, const char *label, const char *name, int flags)
{
	int fd = open_ima(name, flags);

	note(c, label, fd >= 0, "ok", fd < 0 ? errname(errno) : "ok");
	return fd;
}

static void case_mediation_two_readers(struct ctx *c)
{
	char b[16];
	ssize_t n;
	int r1, r2;

	r1 = hold(c, "reader", asc_name("sha1", false), O_RDONLY);
	if (r1 < 0)
		return;
	r2 = hold(c, "reader2", bin_name(alt_algo(), false), O_RDONLY);
	if (r2 >= 0) {
		check(c, "child-reader", "ok",
		      child_open_obs(bin_name("sha1", opt.staging), O_RDONLY,
				     false));
		n = read(r2, b, sizeof(b));
		check(c, "read", "ok", n < 0 ? errname(errno) :
		      n ? "ok" : "eof");
		close(r2);
	}
	close(r1);
}

static void case_mediation_reader_blocks_writer(struct ctx *c)
{
	int r = hold(c, "reader", asc_name("sha1", false), O_RDONLY);

	if (r < 0)
		return;
	check(c, "writer", "EBUSY",
	      open_obs(bin_name(alt_algo(), true), O_WRONLY));
	check(c, "rdwr", "EBUSY", open_obs(bin_name("sha1", false), O_RDWR));
	check(c, "child-writer", "EBUSY",
	      child_open_obs(bin_name(alt_algo(), true), O_WRONLY, false));
	close(r);
}

static void case_mediation_writer_blocks_reader(struct ctx *c)
{
	int w = hold(c, "writer", bin_name(alt_algo(), true), O_WRONLY);

	if (w < 0)
		return;
	check(c, "own-reader", "EBUSY",
	      open_obs(asc_name("sha1", false), O_RDONLY));
	check(c, "child-reader", "EBUSY",
	      child_open_obs(asc_name("sha1", false), O_RDONLY, false));
	check(c, "child-writer", "EBUSY",
	      child_open_obs(bin_name("sha1", false), O_WRONLY, false));
	close(w);
}

static void case_mediation_writer_extra_opens(struct ctx *c)
{
	int w[3] = { -1, -1, -1 };

	w[0] = hold(c, "writer", bin_name("sha1", true), O_WRONLY);
	if (w[0] >= 0)
		w[1] = hold(c, "extra-rdwr", bin_name(alt_algo(), false),
			    O_RDWR);
	if (w[1] >= 0)
		w[2] = hold(c, "extra-wronly", asc_name("sha1", true),
			    O_WRONLY);
	if (w[2] >= 0) {
		check(c, "own-reader", "EBUSY",
		      open_obs(asc_name(alt_algo(), false), O_RDONLY));
		close(w[0]);
		w[0] = -1;
		check(c, "own-reader-after-first-close", "EBUSY",
		      open_obs(asc_name(alt_algo(), false), O_RDONLY));
		check(c, "child-reader-after-first-close", "EBUSY",
		      child_open_obs(asc_name("sha1", false), O_RDONLY,
				     false));
	}
	for (int i = 0; i < 3; i++)
		if (w[i] >= 0)
			close(w[i]);
}

static void case_mediation_released_on_close(struct ctx *c)
{
	int fd = hold(c, "writer", bin_name(alt_algo(), true), O_WRONLY);

	if (fd < 0)
		return;
	close(fd);
	check(c, "reader-after-writer", "ok",
	      open_obs(asc_name("sha1", false), O_RDONLY));
	check(c, "child-writer-after-writer", "ok",
	      child_open_obs(bin_name("sha1", true), O_WRONLY, false));
	fd = hold(c, "reader", asc_name("sha1", false), O_RDONLY);
	if (fd < 0)
		return;
	close(fd);
	check(c, "writer-after-reader", "ok",
	      open_obs(bin_name(alt_algo(), true), O_RDWR));
	check(c, "child-reader-after-reader", "ok",
	      child_open_obs(asc_name(alt_algo(), false), O_RDONLY, false));
}

/* Readers and writers, this task and another, can open again. */
static void check_reopen(struct ctx *c, const char *when)
{
	check(c, fmt("reader-%s", when), "ok",
	      open_obs(asc_name("sha1", false), O_RDONLY));
	check(c, fmt("child-reader-%s", when), "ok",
	      child_open_obs(bin_name(alt_algo(), false), O_RDONLY, false));
	check(c, fmt("writer-%s", when), "ok",
	      open_obs(bin_name("sha1", true), O_WRONLY));
	check(c, fmt("child-writer-%s", when), "ok",
	      child_open_obs(bin_name(alt_algo(), true), O_RDWR, false));
}

/*
 * The writer's files are last closed by a forked child, so they are
 * released by a task that never opened them: the writer must be gone
 * after that, not kept (all writer opens EBUSY from then on).
 */
static void case_mediation_fork_child_closes_last(struct ctx *c)
{
	int w[2] = { -1, -1 }, go;
	pid_t pid = -1;

	w[0] = hold(c, "writer", bin_name("sha1", true), O_WRONLY);
	if (w[0] >= 0)
		w[1] = hold(c, "extra-rdwr", bin_name(alt_algo(), false),
			    O_RDWR);
	if (w[1] >= 0)
		pid = fork_closer(c, w, 2, &go);
	for (int i = 0; i < 2; i++)
		if (w[i] >= 0)
			close(w[i]);
	if (pid < 0)
		return;
	close(go);
	check(c, "child-closed-last", "ok", reap_obs(pid));
	check_reopen(c, "after-child-closed");
}

/*
 * A forked child releases one of the writer's files while the writer
 * still holds another: the writer must stay, readers stay excluded.
 */
static void case_mediation_fork_child_releases_one(struct ctx *c)
{
	int a, b, go;
	pid_t pid;

	a = hold(c, "writer", bin_name("sha1", true), O_WRONLY);
	if (a < 0)
		return;
	b = hold(c, "extra-rdwr", bin_name(alt_algo(), false), O_RDWR);
	if (b < 0) {
		close(a);
		return;
	}
	pid = fork_closer(c, &a, 1, &go);
	close(a);
	if (pid < 0) {
		close(b);
		return;
	}
	close(go);
	check(c, "child-released-first", "ok", reap_obs(pid));
	check(c, "child-reader-beside-writer", "EBUSY",
	      child_open_obs(asc_name("sha1", false), O_RDONLY, false));
	check(c, "own-reader-beside-writer", "EBUSY",
	      open_obs(asc_name(alt_algo(), false), O_RDONLY));
	check(c, "child-writer-beside-writer", "EBUSY",
	      child_open_obs(bin_name("sha1", true), O_WRONLY, false));
	close(b);
	check_reopen(c, "after-writer-closed");
}

/*
 * The writer passes its only file to another task with SCM_RIGHTS and
 * closes it: the file stays held by a writer until that task, which
 * never opened it, closes it, and is released then.
 */
static void case_mediation_scm_rights(struct ctx *c)
{
	int sv[2], w;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		note(c, "socketpair", false, "ok", errname(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		note(c, "fork", false, "ok", errname(errno));
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		_exit(scm_holder(sv[1]));
	}
	close(sv[1]);
	w = hold(c, "writer", bin_name("sha1", true), O_WRONLY);
	if (w < 0) {
		close(sv[0]);		/* the child gets EOF and exits */
		reap_obs(pid);
		return;
	}
	if (check(c, "send", "ok", send_fd_obs(sv[0], w))) {
		close(w);
		if (check(c, "child-received", "ok", recv_byte_obs(sv[0]))) {
			check(c, "child-reader-while-passed", "EBUSY",
			      child_open_obs(asc_name("sha1", false),
					     O_RDONLY, false));
			check(c, "own-reader-while-passed", "EBUSY",
			      open_obs(asc_name(alt_algo(), false),
				       O_RDONLY));
		}
		check(c, "go", "ok", send(sv[0], "g", 1, MSG_NOSIGNAL) == 1 ?
		      "ok" : errname(errno));
	} else {
		close(w);
	}
	close(sv[0]);
	check(c, "child-closed-passed", "ok", reap_obs(pid));
	check_reopen(c, "after-passed-closed");
}

/*
 * Every list of every bank, binary and ascii, current and _staged, opened
 * O_RDWR as further files of the writer: how many are in fd[], or -1 after
 * noting the failure, with none left open.
 */
static int hold_lists(struct ctx *c, int *fd)
{
	struct scope sc = enter(c, "setup.");
	int n = 0, want = 0;

	for (size_t i = 0; i < NBANKS; i++) {
		for (int k = 0; banks[i].present && k < 4; k++, want++) {
			const char *algo = banks[i].algo;
			const char *name = k & 1 ? asc_name(algo, k & 2) :
					   bin_name(algo, k & 2);

			fd[n] = hold(c, name, name, O_RDWR);
			if (fd[n] >= 0)
				n++;
		}
	}
	leave(c, &sc);
	if (n == want)
		return n;
	while (n)
		close(fd[--n]);
	return -1;
}

/*
 * The mediation keeps other tasks' readers away from a command, but not
 * reads through the writer's own files: here a forked child reads all of
 * them while the writer stages, deletes and cuts records through its sets.
 * Unless walks and commands are kept apart, a command frees records under
 * a walk and the read oopses: the child is killed, or hangs. The child
 * reads files of its own (the writer's still), which the writer never
 * reads itself: a child killed in a walk dies holding that file's seq_file
 * mutex, and the writer's next read of the file would hang for good.
 */
static void case_writer_reads_during_commands(struct ctx *c)
{
	int fd[4 * NBANKS], n, p[2], i;
	struct wset stg, cur;
	struct scope sc;
	struct reads *r;
	bool ok = true;
	pid_t pid;

	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED) {
		note(c, "mmap", false, "ok", errname(errno));
		return;
	}
	if (!unstaged(c) || !ensure_records(c, CMD_RECORDS) ||
	    !wset_open(c, &stg, true))
		goto out_unmap;
	if (!wset_open(c, &cur, false))
		goto out_stg;
	n = hold_lists(c, fd);
	if (n < 0)
		goto out_cur;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK)) {
		note(c, "pipe", false, "ok", errname(errno));
		goto out_fds;
	}
	pid = fork();
	if (pid < 0) {
		note(c, "fork", false, "ok", errname(errno));
		close(p[0]);
		close(p[1]);
		goto out_fds;
	}
	if (pid == 0) {
		close(p[1]);
		_exit(list_reader(fd, n, p[0], r));
	}
	close(p[0]);
	/*
	 * N cuts the head of the current list while nothing is staged, and
	 * A+D then take the rest, so the records are saved in their order.
	 */
	for (i = 0; i < CMD_ROUNDS && ok; i++) {
		long cut = 1 + i % 2;

		sc = enter(c, fmt("round%d.", i));
		ok = make_records(c, 3) && wset_read(c, &cur) &&
		     check(c, "N", opt.flush ? "EINVAL" : "ok",
			   wset_delete_n(c, &cur, cut, fmt("%ld\n", cut))) &&
		     wset_stage_delete(c, &stg);
		leave(c, &sc);
	}
	check_eq(c, "rounds", CMD_ROUNDS, ok ? i : i - 1);
	close(p[1]);
	check(c, "child-reader", "ok", reap_obs(pid));
	check_ge(c, "child-reads", 1, r->n);
	note(c, "child-read-errors", !r->errors, "0", r->errors ?
	     fmt("%ld,first:%s", r->errors, errname(r->first)) : "0");
out_fds:
	while (n)
		close(fd[--n]);
out_cur:
	wset_close(&cur);
out_stg:
	wset_close(&stg);
	check_reopen(c, "after-reads");
out_unmap:
	munmap(r, sizeof(*r));
}

/* ------------------------------------------------------------------ */
/* Cases: write commands                                               */

static void expect_write(struct ctx *c, const char *label, const char *name,
			 const char *payload, const char *err)
{
	check(c, label, err, write_file_obs(name, payload));
}

/*
 * A request to delete records on the sha1 original that must fail with
 * err, EINVAL under ima_flush_htable (checked before the number is parsed),
 * and must not remove anything.
 */
static void expect_n_refused(struct ctx *c, const char *label,
			     const char *payload, const char *err)
{
	long before = count_now();

	expect_write(c, label, bin_name("sha1", false), payload,
		     opt.flush ? "EINVAL" : err);
	check_ge(c, fmt("%s-count", label), before, count_now());
}

static void case_cmd_stage_on_original(struct ctx *c)
{
	expect_write(c, "binary", bin_name("sha1", false), "A\n", "EINVAL");
	expect_write(c, "ascii", asc_name(alt_algo(), false), "A\n", "EINVAL");
}

static void case_cmd_delete_on_original(struct ctx *c)
{
	expect_write(c, "binary", bin_name("sha1", false), "D\n", "EINVAL");
	expect_write(c, "ascii", asc_name(alt_algo(), false), "D\n", "EINVAL");
}

static void case_cmd_number_on_staged(struct ctx *c)
{
	long before = count_now();

	expect_write(c, "binary", bin_name("sha1", true), "1\n", "EINVAL");
	expect_write(c, "ascii", asc_name(alt_algo(), true), "1\n", "EINVAL");
	check_ge(c, "count", before, count_now());
}

static void case_write_len_1(struct ctx *c)
{
	expect_write(c, "A", bin_name("sha1", true), "A", "EINVAL");
	expect_write(c, "newline", bin_name("sha1", false), "\n", "EINVAL");
	expect_n_refused(c, "1", "1", "EINVAL");
}

static void case_write_len_2_accepted(struct ctx *c)
{
	if (unstaged(c) && ensure_records(c, 1))
		stage_save_delete(c);
}

static void case_write_len_21_accepted(struct ctx *c)
{
	delete_n_checked(c, 1, "00000000000000000001\n");
}

static void case_write_len_22_rejected(struct ctx *c)
{
	char big[4097];

	memset(big, '1', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	expect_n_refused(c, "22", "000000000000000000001\n", "EINVAL");
	expect_n_refused(c, "4096", big, "EINVAL");
}

static void case_write_no_newline(struct ctx *c)
{
	expect_n_refused(c, "11", "11", "EINVAL");
	expect_n_refused(c, "21-digits", "000000000000000000001", "EINVAL");
	expect_write(c, "AX", bin_name("sha1", true), "AX", "EINVAL");
	expect_write(c, "DX", asc_name(alt_algo(), true), "DX", "EINVAL");
}

static void case_write_garbage(struct ctx *c)
{
	expect_n_refused(c, "x", "x\n", "EINVAL");
	expect_n_refused(c, "1x", "1x\n", "EINVAL");
	expect_n_refused(c, "space-1", " 1\n", "EINVAL");
	expect_n_refused(c, "0x1", "0x1\n", "EINVAL");
	expect_write(c, "staged-x", bin_name("sha1", true), "x\n", "EINVAL");
	expect_write(c, "staged-AA", bin_name("sha1", true), "AA\n", "EINVAL");
	expect_write(c, "staged-a", asc_name(alt_algo(), true), "a\n",
		     "EINVAL");
}

static void case_write_bad_pointer(struct ctx *c)
{
	void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	long before = count_now();

	if (!note(c, "mmap", page != MAP_FAILED, "ok",
		  page == MAP_FAILED ? errname(errno) : "ok"))
		return;
	for (int staged = 0; staged < 2; staged++) {
		int fd = open_ima(bin_name("sha1", staged), O_WRONLY);

		check(c, staged ? "staged" : "original", "EFAULT",
		      fd < 0 ? fmt("open:%s", errname(errno)) :
		      write_obs(fd, page, 2));
		if (fd >= 0)
			close(fd);
	}
	check_ge(c, "count", before, count_now());
	munmap(page, 4096);
}

static void case_write_n_zero(struct ctx *c)
{
	expect_n_refused(c, "0", "0\n", "EINVAL");
}

static void case_write_n_negative(struct ctx *c)
{
	expect_n_refused(c, "-1", "-1\n", "EINVAL");
}

static void case_write_n_ulong_max(struct ctx *c)
{
	expect_n_refused(c, "ULONG_MAX", "18446744073709551615\n", "ENOENT");
}

static void case_write_n_overflow(struct ctx *c)
{
	expect_n_refused(c, "ULONG_MAX+1", "18446744073709551616\n", "ERANGE");
}

static void case_write_n_too_large(struct ctx *c)
{
	long cnt = count_now();

	if (check_ge(c, "count", 0, cnt))
		expect_n_refused(c, "count+1000", fmt("%ld\n", cnt + 1000),
				 "ENOENT");
}

/* ------------------------------------------------------------------ */
/* Cases: staging semantics and counters                               */

static void case_stage_twice(struct ctx *c)
{
	struct wset s;

	if (!unstaged(c) || !ensure_records(c, 1) || !wset_open(c, &s, true))
		return;
	if (check(c, "A", "ok", write_obs(s.fd[0], "A\n", 2))) {
		check(c, "A-again", "EEXIST", write_obs(s.fd[0], "A\n", 2));
		expect_write(c, "A-again-ascii", asc_name(alt_algo(), true),
			     "A\n", "EEXIST");
		wset_delete(c, &s);
	}
	wset_close(&s);
}

/*
 * One attempt: empty the current list (A, save, D), then, if the counter
 * says it is still empty, A must fail with ENOENT. Returns true when the
 * case is decided, false when a record slipped in and it must be retried.
 */
static bool stage_empty_attempt(struct ctx *c)
{
	struct wset s;
	struct scope sc;
	const char *obs;
	bool decided = true, raced, emptied;
	long cnt;

	if (!unstaged(c) || !wset_open(c, &s, true))
		return true;
	sc = enter(c, "setup.");
	obs = write_obs(s.fd[0], "A\n", 2);
	emptied = strcmp(obs, "ok") == 0 ? wset_delete(c, &s) :
		  note(c, "A", !strcmp(obs, "ENOENT"), "ok|ENOENT", obs);
	leave(c, &sc);
	if (!emptied)
		goto out;
	cnt = count_now();
	if (cnt < 0) {
		note(c, "count", false, "readable", fmt_count(cnt));
		goto out;
	}
	if (cnt > 0) {		/* a record came in meanwhile: retry */
		decided = false;
		goto out;
	}
	obs = write_obs(s.fd[0], "A\n", 2);
	if (strcmp(obs, "ok") != 0) {
		check(c, "A-empty", "ENOENT", obs);
		goto out;
	}
	if (!wset_read(c, &s))
		goto out;
	raced = s.data[0].len != 0;
	if (!wset_delete(c, &s))
		goto out;
	if (!raced)
		note(c, "A-empty", false, "ENOENT", "ok-staged-nothing");
	decided = !raced;
out:
	wset_close(&s);
	return decided;
}

static void case_stage_empty(struct ctx *c)
{
	for (int i = 0; i < STAGE_TRIES; i++)
		if (stage_empty_attempt(c))
			return;
	note(c, "A-empty", false, "ENOENT", "current-list-never-quiet");
}

static void case_delete_nothing_staged(struct ctx *c)
{
	struct wset s;

	if (!unstaged(c) || !wset_open(c, &s, true))
		return;
	check(c, "D", "ENOENT", write_obs(s.fd[0], "D\n", 2));
	expect_write(c, "D-ascii", asc_name(alt_algo(), true), "D\n",
		     "ENOENT");
	wset_close(&s);
}

static void case_write_read_write(struct ctx *c)
{
	struct wset s;
	char b[64];
	ssize_t n;

	if (!unstaged(c) || !ensure_records(c, 1) || !wset_open(c, &s, true))
		return;
	if (check(c, "A", "ok", write_obs(s.fd[0], "A\n", 2))) {
		n = read(s.fd[0], b, sizeof(b));
		check(c, "read", fmt("%zu", sizeof(b)),
		      n < 0 ? errname(errno) : fmt("%zd", n));
		/* rereads to EOF, so "D\n" is written at a non-zero position */
		wset_delete(c, &s);
	}
	wset_close(&s);
}

static void case_count_after_stage(struct ctx *c)
{
	struct wset s;
	long before;

	if (!unstaged(c) || !ensure_records(c, 1) || !wset_open(c, &s, true))
		return;
	before = count_now();
	if (check(c, "A", "ok", write_obs(s.fd[0], "A\n", 2))) {
		check_eq(c, "count-after-A", 0, count_now());
		if (wset_read(c, &s))
			check_eq(c, "staged-records", before,
				 nrecords(&s.data[0], banks[0].dsize));
		wset_delete(c, &s);
	}
	wset_close(&s);
}

/*
 * runtime_measurements_count equals the records of the current list (read
 * through the writer's own write opens of the originals), and there are at
 * least @made. The count is read before and after the list and must agree:
 * another process may cause a measurement meanwhile (with ima_flush_htable,
 * anything it runs again after D), and then the reading is taken again.
 */
static void check_count_is_current(struct ctx *c, long made)
{
	long n = -1, before = -1, after = -2;
	struct wset cur;

	for (int tries = 0; tries < 3 && before != after; tries++) {
		before = count_now();
		if (!wset_open(c, &cur, false))
			return;
		n = nrecords(&cur.data[0], banks[0].dsize);
		wset_close(&cur);
		after = count_now();
	}
	note(c, "count-after-D", before == after && n == after && n >= made,
	     fmt("list(>=%ld)", made), fmt("%ld,list=%ld", after, n));
}

static void case_count_after_delete(struct ctx *c)
{
	struct wset s;
	bool made;

	if (!unstaged(c) || !ensure_records(c, 1) || !wset_open(c, &s, true))
		return;
	if (check(c, "A", "ok", write_obs(s.fd[0], "A\n", 2))) {
		made = make_records(c, 2);
		if (wset_delete(c, &s) && made)
			check_count_is_current(c, 2);
	}
	wset_close(&s);
}

static void case_count_after_delete_n(struct ctx *c)
{
	delete_n_checked(c, 2, "2\n");
}

static void case_digest_table_after_delete(struct ctx *c)
{
	char path[PATH_MAX], content[128];
	struct timespec ts;
	long d;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(path, sizeof(path), "%s/ima-abi-dup-%ld", opt.scratch,
		 (long)getpid());
	snprintf(content, sizeof(content), "ima-abi duplicate %ld %lld.%09ld\n",
		 (long)getpid(), (long long)ts.tv_sec, ts.tv_nsec);
	if (!unstaged(c))
		return;
	d = measure_new(c, "first-read", path, content);
	if (d >= 0 && note(c, "first-read", d >= 1, ">=1",
			   d ? fmt("%ld", d) : "no-records-added") &&
	    stage_save_delete(c)) {
		d = measure_new(c, "reread", path, content);
		if (d >= 0)
			check_eq(c, "reread", opt.flush ? 1 : 0, d);
	}
	unlink(path);
}

static void case_violations_monotonic(struct ctx *c)
{
	long now = read_long("violations");

	note(c, "violations", viol_start >= 0 && now >= viol_start &&
	     !viol_drop[0], "nondecreasing",
	     viol_drop[0] ? viol_drop :
	     fmt("%s->%s", fmt_count(viol_start), fmt_count(now)));
}

/* ------------------------------------------------------------------ */
/* Cases: the invariant                                                */

static uint64_t rng_state;

static uint32_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (rng_state * 0x2545F4914F6CDD1DULL) >> 32;
}

/* Read the sha1 list: it parses and has as many records as the counter. */
static bool read_list_checked(struct ctx *c)
{
	struct buf b = { 0 };
	long before = count_now(), after, n;
	int fd = open_ima(bin_name("sha1", false), O_RDONLY), e;
	bool ok;

	if (fd < 0)
		return note(c, "open", false, "ok", errname(errno));
	e = buf_read_fd(&b, fd);
	close(fd);
	after = count_now();
	n = e ? -e : nrecords(&b, banks[0].dsize);
	ok = note(c, "records", n >= 0 && before >= 0 && before <= n &&
		  n <= after, fmt("%s..%s", fmt_count(before),
				  fmt_count(after)),
		  e ? errname(e) : n < 0 ? "malformed" : fmt("%ld", n));
	buf_free(&b);
	return ok;
}

static void case_invariant_random_ops(struct ctx *c)
{
	static const char *const opname[] = { "add", "read", "stage", "del-n" };
	int done[4] = { 0 }, i;
	struct scope sc;
	bool ok = true;

	rng_state = opt.seed * 0x9E3779B97F4A7C15ULL + 1;
	printf("# invariant: seed=%lu ops=%d\n", opt.seed, INV_OPS);
	if (!unstaged(c))
		return;
	for (i = 0; i < INV_OPS && ok; i++) {
		int op = rng() % 4;
		long n = 1 + rng() % 4;

		sc = enter(c, fmt("op%d.%s.", i, opname[op]));
		switch (op) {
		case 0:
			ok = make_records(c, n);
			break;
		case 1:
			ok = read_list_checked(c);
			break;
		case 2:
			ok = ensure_records(c, 1) && stage_save_delete(c);
			break;
		default:
			ok = delete_n_checked(c, n, fmt("%ld\n", n));
			break;
		}
		leave(c, &sc);
		done[op]++;
	}
	printf("# invariant: add=%d read=%d stage=%d del-n=%d\n",
	       done[0], done[1], done[2], done[3]);
	check_eq(c, "ops", INV_OPS, ok ? i : i - 1);
}

static void save_bank(struct ctx *c, struct bank *b, const struct buf *stg,
		      const struct buf *cur, long saved0)
{
	const char *path = fmt("%s%s", opt.save, b->suffix), *obs;
	long ns = nrecords(&b->saved, b->dsize), nst = nrecords(stg, b->dsize);
	long nc = nrecords(cur, b->dsize);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		obs = errname(errno);
	} else {
		obs = write_all_obs(fd, &b->saved);
		if (!strcmp(obs, "ok"))
			obs = write_all_obs(fd, stg);
		if (!strcmp(obs, "ok"))
			obs = write_all_obs(fd, cur);
		if (close(fd) && !strcmp(obs, "ok"))
			obs = errname(errno);
	}
	printf("# save %s: saved=%ld staged=%ld current=%ld total=%ld records (initial=%ld, created-by-suite=%ld)\n",
	       path, ns, nst, nc, ns + nst + nc, initial_records, records_made);
	check(c, fmt("%s-write", b->algo), "ok", obs);
	if (check(c, fmt("%s-parse", b->algo), "ok",
		  ns >= 0 && nst >= 0 && nc >= 0 ? "ok" : "malformed"))
		check_ge(c, fmt("%s-total", b->algo),
			 initial_records < 0 ? initial_records :
			 initial_records + records_made, ns + nst + nc);
	if (b != &banks[0])
		check_eq(c, fmt("%s-saved", b->algo), saved0, ns);
}

/*
 * Copy the bank's PCR 10 next to the --save file (FILE[.sha256].pcr10), read
 * right after the lists: this process execs nothing in between, so nothing
 * can be measured between the two reads.
 */
static int save_pcr10(const struct bank *b)
{
	char value[256];
	FILE *in, *out;
	int e = 0;

	in = fopen(fmt("/sys/class/tpm/tpm0/pcr-%s/10", b->algo), "r");
	if (!in)
		return errno;
	if (!fgets(value, sizeof(value), in))
		e = EIO;
	fclose(in);
	if (e)
		return e;
	out = fopen(fmt("%s%s.pcr10", opt.save, b->suffix), "w");
	if (!out)
		return errno;
	if (fputs(value, out) < 0)
		e = EIO;
	if (fclose(out))
		e = e ? e : errno;
	return e;
}

static void case_save_archive(struct ctx *c)
{
	struct buf cur[NBANKS] = { 0 }, stg[NBANKS] = { 0 };
	int e = snapshot(cur, stg);

	for (size_t i = 0; i < NBANKS && !e; i++)
		if (banks[i].present)
			e = save_pcr10(&banks[i]);

	if (check(c, "snapshot", "ok", e ? errname(e) : "ok"))
		for (size_t i = 0; i < NBANKS; i++)
			if (banks[i].present)
				save_bank(c, &banks[i], &stg[i], &cur[i],
					  nrecords(&banks[0].saved,
						   banks[0].dsize));
	for (size_t i = 0; i < NBANKS; i++) {
		buf_free(&cur[i]);
		buf_free(&stg[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Table and runner                                                    */

enum {
	NEED_STAGING = 1,	/* only with --staging=y */
	NEED_NOSTAGING = 2,	/* only with --staging=n */
	NEED_SAVE = 4,		/* only with --save */
};

static const struct tcase {
	const char *name;
	const char *desc;
	void (*fn)(struct ctx *c);
	unsigned int need;
} cases[] = {
	{ "files_present", "DIR, the sha1 lists, their symlinks and the counters exist",
	  case_files_present, 0 },
	{ "files_staged_twins", "every list has a _staged twin and the _staged symlinks point at sha1 (none without staging)",
	  case_files_staged_twins, 0 },
	{ "files_modes", "originals are 0660 (0440 without staging), _staged files 0660",
	  case_files_modes, 0 },
	{ "cap_sys_admin", "without CAP_SYS_ADMIN O_RDONLY works, O_WRONLY/O_RDWR get EPERM",
	  case_cap_sys_admin, 0 },
	{ "mediation_two_readers", "readers coexist, also across tasks and files",
	  case_mediation_two_readers, 0 },
	{ "mediation_reader_blocks_writer", "a reader makes writer opens of other files fail with EBUSY",
	  case_mediation_reader_blocks_writer, NEED_STAGING },
	{ "mediation_writer_blocks_reader", "a writer makes reader opens (own and other tasks) and other writers fail with EBUSY",
	  case_mediation_writer_blocks_reader, NEED_STAGING },
	{ "mediation_writer_extra_opens", "the writer task may add write opens, its own O_RDONLY gets EBUSY until all are closed",
	  case_mediation_writer_extra_opens, NEED_STAGING },
	{ "mediation_released_on_close", "after close, readers and writers can open again",
	  case_mediation_released_on_close, NEED_STAGING },
	{ "mediation_fork_child_closes_last", "a forked child closing the writer's files last releases the writer",
	  case_mediation_fork_child_closes_last, NEED_STAGING },
	{ "mediation_fork_child_releases_one", "a forked child releasing one writer file keeps readers out until the writer closes the rest",
	  case_mediation_fork_child_releases_one, NEED_STAGING },
	{ "mediation_scm_rights", "a writer file passed with SCM_RIGHTS keeps readers out until the receiver closes it",
	  case_mediation_scm_rights, NEED_STAGING },
	{ "writer_reads_during_commands", "reads of the writer's files during A, D and N succeed",
	  case_writer_reads_during_commands, NEED_STAGING },
	{ "cmd_stage_on_original", "A on original files is EINVAL",
	  case_cmd_stage_on_original, NEED_STAGING },
	{ "cmd_delete_on_original", "D on original files is EINVAL",
	  case_cmd_delete_on_original, NEED_STAGING },
	{ "cmd_number_on_staged", "N on _staged files is EINVAL and deletes nothing",
	  case_cmd_number_on_staged, NEED_STAGING },
	{ "write_len_1", "1-byte writes are EINVAL",
	  case_write_len_1, NEED_STAGING },
	{ "write_len_2_accepted", "2-byte A is accepted (then saved and deleted with D)",
	  case_write_len_2_accepted, NEED_STAGING },
	{ "write_len_21_accepted", "21-byte 00000000000000000001 deletes one record (EINVAL with flush)",
	  case_write_len_21_accepted, NEED_STAGING },
	{ "write_len_22_rejected", "22-byte and 4096-byte writes are EINVAL",
	  case_write_len_22_rejected, NEED_STAGING },
	{ "write_no_newline", "writes without a trailing newline are EINVAL",
	  case_write_no_newline, NEED_STAGING },
	{ "write_garbage", "non-numeric N and malformed A/D are EINVAL",
	  case_write_garbage, NEED_STAGING },
	{ "write_bad_pointer", "a write from an unmapped buffer is EFAULT",
	  case_write_bad_pointer, NEED_STAGING },
	{ "write_n_zero", "N=0 is EINVAL",
	  case_write_n_zero, NEED_STAGING },
	{ "write_n_negative", "N=-1 is EINVAL",
	  case_write_n_negative, NEED_STAGING },
	{ "write_n_ulong_max", "N=ULONG_MAX (21 bytes) is ENOENT, nothing deleted (EINVAL with flush)",
	  case_write_n_ulong_max, NEED_STAGING },
	{ "write_n_overflow", "N=ULONG_MAX+1 is ERANGE (EINVAL with flush)",
	  case_write_n_overflow, NEED_STAGING },
	{ "write_n_too_large", "N above the record count is ENOENT, nothing deleted (EINVAL with flush)",
	  case_write_n_too_large, NEED_STAGING },
	{ "stage_twice", "A with something staged is EEXIST, also through another file",
	  case_stage_twice, NEED_STAGING },
	{ "stage_empty", "A on an empty current list is ENOENT",
	  case_stage_empty, NEED_STAGING },
	{ "delete_nothing_staged", "D with nothing staged is ENOENT",
	  case_delete_nothing_staged, NEED_STAGING },
	{ "write_read_write", "A, read, D on one O_RDWR fd all succeed",
	  case_write_read_write, NEED_STAGING },
	{ "count_after_stage", "runtime_measurements_count is 0 after A, the staged list holds the old count",
	  case_count_after_stage, NEED_STAGING },
	{ "count_after_delete", "D leaves runtime_measurements_count unchanged",
	  case_count_after_delete, NEED_STAGING },
	{ "count_after_delete_n", "N=2 lowers runtime_measurements_count by 2 (EINVAL and unchanged with flush)",
	  case_count_after_delete_n, NEED_STAGING },
	{ "digest_table_after_delete", "after A+D a re-measured identical file adds no record (one with flush)",
	  case_digest_table_after_delete, NEED_STAGING },
	{ "nostaging_write_refused", "without staging, writing 1 to an original fails and deletes nothing",
	  case_nostaging_write_refused, NEED_NOSTAGING },
	{ "invariant_random_ops", "seeded random adds, reads, A+D and N keep every deleted record",
	  case_invariant_random_ops, NEED_STAGING },
	{ "violations_monotonic", "the violations counter never decreased during the run",
	  case_violations_monotonic, 0 },
	{ "save_archive", "write saved ++ staged ++ current to --save FILE and FILE.sha256",
	  case_save_archive, NEED_SAVE },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static bool applies(const struct tcase *t)
{
	if ((t->need & NEED_STAGING) && !opt.staging)
		return false;
	if ((t->need & NEED_NOSTAGING) && opt.staging)
		return false;
	if ((t->need & NEED_SAVE) && !opt.save)
		return false;
	return !opt.only || fnmatch(opt.only, t->name, 0) == 0;
}

static bool is_xfail(const char *name)
{
	for (int i = 0; i < opt.nxfail; i++)
		if (strcmp(opt.xfail[i], name) == 0)
			return true;
	return false;
}

static void sample_violations(const char *after)
{
	long v = read_long("violations");

	if (v >= 0 && viol_last >= 0 && v < viol_last && !viol_drop[0])
		snprintf(viol_drop, sizeof(viol_drop), "%ld->%ld-after-%s",
			 viol_last, v, after);
	if (v >= 0)
		viol_last = v;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s --scratch DIR [--dir DIR] [--staging=y|n] [--flush=y|n]\n"
		"          [--only NAME_GLOB] [--xfail NAME,NAME...] [--seed N] [--save FILE]\n"
		"  --scratch DIR  writable directory on a measured (non-tmpfs) filesystem\n"
		"                 (default: $IMA_ABI_SCRATCH)\n"
		"  --dir DIR      IMA securityfs directory (default /sys/kernel/security/ima)\n"
		"  --staging=y|n  kernel built with CONFIG_IMA_STAGING (default y)\n"
		"  --flush=y|n    booted with ima_flush_htable (default n)\n"
		"  --seed N       seed of invariant_random_ops (default 1)\n"
		"  --save FILE    finally write saved ++ staged ++ current lists to FILE\n"
		"                 (sha1) and FILE.sha256\n",
		argv0);
	exit(2);
}

static bool parse_yn(const char *s)
{
	if (strcmp(s, "y") && strcmp(s, "n")) {
		fprintf(stderr, "ima-abi: expected y or n, got '%s'\n", s);
		exit(2);
	}
	return s[0] == 'y';
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "scratch", required_argument, NULL, 'c' },
		{ "staging", required_argument, NULL, 's' },
		{ "flush", required_argument, NULL, 'f' },
		{ "only", required_argument, NULL, 'o' },
		{ "xfail", required_argument, NULL, 'x' },
		{ "seed", required_argument, NULL, 'r' },
		{ "save", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end, *tok;
	int o;

	opt.scratch = getenv("IMA_ABI_SCRATCH");
	while ((o = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (o) {
		case 'd':
			opt.dir = optarg;
			break;
		case 'c':
			opt.scratch = optarg;
			break;
		case 's':
			opt.staging = parse_yn(optarg);
			break;
		case 'f':
			opt.flush = parse_yn(optarg);
			break;
		case 'o':
			opt.only = optarg;
			break;
		case 'x':
			for (tok = strtok(optarg, ","); tok;
			     tok = strtok(NULL, ","))
				if (opt.nxfail < MAXXFAIL)
					opt.xfail[opt.nxfail++] = tok;
			break;
		case 'r':
			errno = 0;
			opt.seed = strtoul(optarg, &end, 0);
			if (errno || *end || end == optarg)
				usage(argv[0]);
			break;
		case 'w':
			opt.save = optarg;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind != argc || !opt.scratch || !*opt.scratch)
		usage(argv[0]);
	for (int i = 0; i < opt.nxfail; i++) {
		size_t j = 0;

		while (j < NCASES && strcmp(cases[j].name, opt.xfail[i]))
			j++;
		if (j == NCASES)
			fprintf(stderr, "ima-abi: --xfail: unknown case '%s'\n",
				opt.xfail[i]);
	}
}

/* Records present at start (sha1, staged + current), or -errno. */
static long count_initial(void)
{
	struct buf cur[NBANKS] = { 0 }, stg[NBANKS] = { 0 };
	int e = snapshot(cur, stg);
	long n = e ? -e : nrecords(&stg[0], banks[0].dsize) +
			  nrecords(&cur[0], banks[0].dsize);

	for (size_t i = 0; i < NBANKS; i++) {
		buf_free(&cur[i]);
		buf_free(&stg[i]);
	}
	return n;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, xfails = 0;
	struct statfs sf;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	banks[1].present = access(ipath(bin_name("sha256", false)), F_OK) == 0;
	if (statfs(opt.scratch, &sf))
		printf("# warning: scratch %s: %s\n", opt.scratch,
		       errname(errno));
	else if (sf.f_type == TMPFS_MAGIC)
		printf("# warning: scratch %s is tmpfs, not measured by the tcb policy\n",
		       opt.scratch);
	initial_records = count_initial();
	viol_start = viol_last = read_long("violations");
	printf("# ima-abi: dir=%s staging=%c flush=%c scratch=%s banks=sha1%s initial-records=%s violations=%s\n",
	       opt.dir, opt.staging ? 'y' : 'n', opt.flush ? 'y' : 'n',
	       opt.scratch, banks[1].present ? ",sha256" : "",
	       fmt_count(initial_records), fmt_count(viol_start));

	for (size_t i = 0; i < NCASES; i++) {
		const struct tcase *t = &cases[i];
		struct ctx c = { 0 };
		bool xf = is_xfail(t->name);
		const char *status;

		if (!applies(t))
			continue;
		t->fn(&c);
		if (!c.exp[0])
			note(&c, "checks", false, "some", "none");
		if (c.failed) {
			status = xf ? "XFAIL" : "FAIL";
			xfails += xf;
			passed += xf;
			failed += !xf;
		} else {
			status = xf ? "XPASS" : "PASS";
			passed += !xf;
			failed += xf;
		}
		printf("CASE %s %s  expected=%s observed=%s  # %s\n", t->name,
		       status, c.exp, c.obs, t->desc);
		sample_violations(t->name);
	}
	printf("%d xfail\n", xfails);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
