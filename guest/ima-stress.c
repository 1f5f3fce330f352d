// SPDX-License-Identifier: GPL-2.0
/*
 * ima-stress.c - concurrent stress of the IMA measurement list export/delete
 * ("staging") interface under /sys/kernel/security/ima/.
 *
 * Run as root in a test VM (IMA, ima_policy=tcb, a TPM). For --seconds, all
 * at once:
 *
 *  - adder threads rewrite and read back one file each on a measured file
 *    system (--scratch), a unique content every time: one new record each;
 *  - reader threads read every list file (binary and ascii, current and
 *    _staged, every bank) in random read sizes from 1 byte to 64 KiB and
 *    check what they read; EBUSY while the writer holds the files is
 *    counted and retried;
 *  - counter threads read runtime_measurements_count, violations (every
 *    *_count file) in tight loops and check each value;
 *  - one writer process stages, saves and deletes (A, read _staged, D) and
 *    cuts the current list (read, N), saving every deleted record once and
 *    in order, while two threads of it read through and write malformed
 *    commands to the same descriptors; it hands its descriptors to forked
 *    children and, with SCM_RIGHTS, to another process, which close them
 *    last, and checks each time that the mediation is idle again;
 *  - a flood of malformed writes from the writer (between its commands and
 *    from a thread) and from unprivileged processes (uid/gid 65534, and
 *    root without CAP_SYS_ADMIN), each checked against the errors the ABI
 *    allows for it.
 *
 * With --faults, guest/stress.sh has set up the kernel's fault injection
 * (failslab, fail_page_alloc, for marked tasks only) and this program marks
 * itself (make-it-fail) before it starts the workers, so that every thread
 * and child fails some of its allocations, and unmarks itself before the
 * final phase. Its own operations that fail for want of memory are counted
 * and retried or skipped; an add may then leave no record (each content at
 * most once, the missing counted); a command that fails must leave the
 * lists as they were (re-read after every failed A, D, N).
 *
 * Then the account: every record the writer deleted ++ the live lists at
 * the end go to OUT/full.sha1 and OUT/full.sha256 (PCR 10 read right after
 * them to OUT/full.<bank>.pcr10) for guest/stress.sh to replay; every
 * record this program created is there exactly once and in order, no
 * record twice, every malformed write was refused, the mediation is idle.
 * The account goes to stdout and OUT/report.txt; failures seen during the
 * run are printed as "FAIL ..." lines and kept in OUT/failures.txt. The
 * exit status is 0 only if every check passed (2: usage).
 *
 * Usage: ima-stress [--seconds N] [--seed N] [--out DIR] [--scratch DIR]
 *                   [--flush] [--strict-n] [--adders N] [--readers N]
 *                   [--min-malformed N] [--faults]
 * Build: gcc -O2 -Wall -Wextra -Werror -pthread -o ima-stress ima-stress.c
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
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

#define MAXFILES	48	/* list files (symlinks included) */
#define MAXCOUNTERS	8	/* counter files */
#define MAXTHREADS	16	/* adders, readers */
#define NBANKS		2	/* banks saved for the replay: sha1, sha256 */
#define CHUNK_MAX	65536	/* largest read */
#define REQ_MAX		21	/* longest command, newline included */
#define NERR		256	/* errno histogram */
#define FAIL_PRINT	200	/* FAIL lines printed (all are counted) */
#define OPEN_TIMEOUT	20	/* seconds a writer open may get EBUSY */
#define EXIT_TIMEOUT	180	/* seconds the workers get to finish */
#define BIG_N		1000000000000UL	/* never that many records */
#define DMAX		32	/* largest file digest kept per content */

/* --faults: this program's own operations refused, by kind */
enum { FK_MALLOC, FK_MMAP, FK_FORK, FK_THREAD, FK_PIPE, FK_SOCKET, FK_CRED,
       FK_WRITE, FK_N };
static const char *const fk_name[FK_N] = {
	"malloc", "mmap", "fork", "pthread_create", "pipe", "socket",
	"credentials", "write",
};

static struct {
	const char *dir;
	char tpm[PATH_MAX];
	const char *out;
	const char *scratch;
	unsigned long seconds;
	unsigned long long seed;
	int adders, readers;
	long min_malformed;
	bool flush, strict_n, faults, root;
} opt = {
	.dir = "/sys/kernel/security/ima",
	.tpm = "/sys/class/tpm/tpm0",
	.out = "/tmp/ima-stress",
	.seconds = 60,
	.adders = 2,
	.readers = 4,
};

/* ------------------------------------------------------------------ */
/* Shared state: counters of every process, failure count, stop flag   */

struct stats {
	long adds, add_errors;
	long rd_full[2][2], rd_part[2][2];	/* [binary][staged] */
	long rd_pairs, rd_preads, rd_busy, rd_bytes, rd_backoff;
	long cnt_reads[MAXCOUNTERS];
	long w_cycles, w_busy, w_A, w_A_empty, w_A_exist, w_D, w_D_empty,
	     w_D_nomem, w_D_recs, w_keep, w_N, w_N_recs, w_N_refused,
	     w_N_none, w_own_busy, w_helper_busy, w_idle;
	long h_close, h_fork, h_fork_partial, h_scm;
	long helper_preads, helper_errs, helper_last_err;
	long mal_priv, mal_unpriv, mal_ok, mal_badno, mal_regen;
	long strict_probes, strict_accepted;
	long un_busy, un_opens;
	long saved_recs[NBANKS], saved_bytes[NBANKS];
	/* --faults: this program's own operations refused for want of memory */
	long f_list_open, f_list_read, f_counter, f_cmd[3], f_adder_io,
	     f_unpriv, f_own[FK_N], f_probe, f_wopen, mal_nomem, h_scm_trunc;
	/* failed commands, the lists re-read after them */
	long v_runs, v_same, v_done, v_changed, v_skipped;
};

static struct shared {
	int stop;		/* workers finish */
	int writer_waiting;	/* readers back off */
	long fails, printed;
	long err[3][NERR];	/* malformed writes: [0] privileged, [1] not;
				 * [2] the adders' own file I/O (--faults) */
	struct stats st;
} *sh;

#define INC(f)		__atomic_add_fetch(&sh->st.f, 1, __ATOMIC_RELAXED)
#define ADD(f, n)	__atomic_add_fetch(&sh->st.f, (long)(n), __ATOMIC_RELAXED)
#define GET(f)		__atomic_load_n(&sh->st.f, __ATOMIC_RELAXED)

static bool stopping(void)
{
	return __atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE);
}

/* --faults: an operation on a list or counter file refused for memory. */
static bool nomem(int e)
{
	return opt.faults && e == ENOMEM;
}

/*
 * --faults: one of this program's own operations (malloc, mmap, fork,
 * pthread_create, pipe, socket, credentials) refused because an injected
 * allocation failure: ENOMEM, or what the failure becomes there (EAGAIN
 * from clone, ENFILE from a pipe or socket inode, ENOBUFS from a socket).
 */
static bool fault_errno(int e)
{
	return opt.faults && (e == ENOMEM || e == EAGAIN || e == ENFILE ||
			      e == ENOBUFS);
}

/* --faults: how often a refused operation is retried, 1 ms apart. */
#define FAULT_RETRIES	1000

/* ------------------------------------------------------------------ */
/* Formatting, failures, memory                                        */

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

/* The errno's name; 0 is ok, -1 a short write. */
static const char *errname(int e)
{
	static __thread char b[24];

	if (e == 0)
		return "ok";
	if (e == -1)
		return "short-write";
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].no == e)
			return errnames[i].name;
	snprintf(b, sizeof(b), "E%d", e);
	return b;
}

static int failfd = -1;

/* Write all of p, ignoring errors (diagnostics only). */
static void put(int fd, const void *p, size_t n)
{
	const char *c = p;
	int tries = 0;
	ssize_t w;

	while (n) {
		w = write(fd, c, n);
		if (w < 0 && (errno == EINTR ||
			      (fault_errno(errno) && tries++ < FAULT_RETRIES)))
			continue;
		if (w <= 0)
			return;
		c += w;
		n -= w;
	}
}

/* A failure seen during the run: counted, and printed while few. */
static void fail(const char *who, const char *f, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(const char *who, const char *f, ...)
{
	char line[1024];
	va_list ap;
	int n, m;

	__atomic_add_fetch(&sh->fails, 1, __ATOMIC_RELAXED);
	if (__atomic_add_fetch(&sh->printed, 1, __ATOMIC_RELAXED) > FAIL_PRINT)
		return;
	n = snprintf(line, sizeof(line), "FAIL %s: ", who);
	va_start(ap, f);
	m = vsnprintf(line + n, sizeof(line) - n - 1, f, ap);
	va_end(ap);
	n += m < 0 ? 0 : m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	put(1, line, n);
	if (failfd >= 0)
		put(failfd, line, n);
}

static void die(const char *f, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *f, ...)
{
	va_list ap;

	fputs("ima-stress: ", stderr);
	va_start(ap, f);
	vfprintf(stderr, f, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	void *q;

	for (int t = 0;; t++) {
		q = realloc(p, n ? n : 1);
		if (q)
			return q;
		if (!opt.faults || t >= FAULT_RETRIES)
			break;
		if (sh)
			INC(f_own[FK_MALLOC]);
		usleep(1000);
	}
	put(2, "ima-stress: out of memory\n", 26);
	_exit(3);
}

/* pthread_create, retried under --faults. */
static void xthread(pthread_t *th, void *(*fn)(void *), void *arg)
{
	int e;

	for (int t = 0; (e = pthread_create(th, NULL, fn, arg)); t++) {
		if (!fault_errno(e) || t >= FAULT_RETRIES)
			die("pthread_create: %s", strerror(e));
		INC(f_own[FK_THREAD]);
		usleep(1000);
	}
}

/* fork, retried under --faults; -1 with errno if it still fails. */
static pid_t xfork(void)
{
	pid_t pid;

	for (int t = 0; (pid = fork()) < 0; t++) {
		if (!fault_errno(errno) || t >= FAULT_RETRIES)
			return -1;
		INC(f_own[FK_FORK]);
		usleep(1000);
	}
	return pid;
}

/* A call that returns < 0 with errno, retried under --faults (kind k). */
#define RETRY(k, call) ({						\
	int r_, t_ = 0;							\
	while ((r_ = (call)) < 0 && fault_errno(errno) &&		\
	       t_++ < FAULT_RETRIES) {					\
		INC(f_own[k]);						\
		usleep(1000);						\
	}								\
	r_;								\
})

static void *xzalloc(size_t n)
{
	return memset(xrealloc(NULL, n), 0, n);
}

/* snprintf into a path buffer; a path that does not fit is fatal. */
static void pathf(char *dst, size_t n, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static void pathf(char *dst, size_t n, const char *f, ...)
{
	va_list ap;
	int r;

	va_start(ap, f);
	r = vsnprintf(dst, n, f, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= n)
		die("path too long: %s", dst);
}

/* Printable form of the first bytes of p (mapped of n are readable). */
static const char *esc(char *b, size_t bn, const unsigned char *p, size_t n,
		       size_t mapped)
{
	size_t o = 0, i;

	for (i = 0; i < n && i < mapped && i < 24 && o + 6 < bn; i++) {
		unsigned char c = p[i];

		if (c == '\n')
			o += snprintf(b + o, bn - o, "\\n");
		else if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			b[o++] = c;
		else
			o += snprintf(b + o, bn - o, "\\x%02x", c);
	}
	if (i < n && o + 4 < bn)
		o += snprintf(b + o, bn - o, "...");
	b[o] = '\0';
	return b;
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
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_set(struct buf *b, const struct buf *from)
{
	b->len = 0;
	buf_add(b, from->p, from->len);
}

static void buf_drop_front(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){ 0 };
}

static bool starts_with(const struct buf *b, const struct buf *prefix)
{
	return b->len >= prefix->len &&
	       (!prefix->len || !memcmp(b->p, prefix->p, prefix->len));
}

static bool buf_eq(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (!a->len || !memcmp(a->p, b->p, a->len));
}

/* ------------------------------------------------------------------ */
/* Per-thread random numbers (deterministic from --seed and a stream)  */

struct rng {
	uint64_t s;
};

static void rng_init(struct rng *r, unsigned long long seed, uint64_t stream)
{
	uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	r->s = (z ^ (z >> 31)) | 1;
}

static uint32_t rnd(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return (r->s * 0x2545F4914F6CDD1DULL) >> 32;
}

static uint32_t rnd_below(struct rng *r, uint32_t n)
{
	return n ? rnd(r) % n : 0;
}

/* A read size from 1 byte to 64 KiB, every magnitude equally likely. */
static size_t chunk(struct rng *r)
{
	return 1 + rnd_below(r, 1u << rnd_below(r, 17));
}

static void shuffle(int *a, int n, struct rng *r)
{
	for (int i = n - 1; i > 0; i--) {
		int j = rnd_below(r, i + 1), t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

/* ------------------------------------------------------------------ */
/* SHA-1 and SHA-256 of a short content (to find a record's content)   */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f, k, t;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = be32(p + 4 * i);
	for (; i < 80; i++)
		w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (i = 0; i < 80; i++) {
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5A827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ED9EBA1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8F1BBCDC;
		} else {
			f = b ^ c ^ d;
			k = 0xCA62C1D6;
		}
		t = ROL(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = ROL(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

static const uint32_t k256[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void sha256_block(uint32_t h[8], const unsigned char *p)
{
	uint32_t w[64], v[8], s0, s1, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = be32(p + 4 * i);
	for (; i < 64; i++) {
		s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	memcpy(v, h, sizeof(v));
	for (i = 0; i < 64; i++) {
		s1 = ROR(v[4], 6) ^ ROR(v[4], 11) ^ ROR(v[4], 25);
		t1 = v[7] + s1 + ((v[4] & v[5]) ^ (~v[4] & v[6])) + k256[i] + w[i];
		s0 = ROR(v[0], 2) ^ ROR(v[0], 13) ^ ROR(v[0], 22);
		t2 = s0 + ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
		memmove(v + 1, v, 7 * sizeof(v[0]));
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (i = 0; i < 8; i++)
		h[i] += v[i];
}

/* Digest of n (< 512) bytes; sha256 selects the algorithm. */
static void digest(const void *d, size_t n, bool sha256, unsigned char *out)
{
	static const uint32_t iv1[5] = {
		0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0,
	};
	static const uint32_t iv256[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	unsigned char m[576] = { 0 };
	size_t total = (n + 9 + 63) / 64 * 64;
	uint64_t bits = (uint64_t)n * 8;
	uint32_t h[8];
	int words = sha256 ? 8 : 5;

	memcpy(h, sha256 ? iv256 : iv1, words * sizeof(h[0]));
	memcpy(m, d, n);
	m[n] = 0x80;
	for (int i = 0; i < 8; i++)
		m[total - 1 - i] = bits >> (8 * i);
	for (size_t off = 0; off < total; off += 64) {
		if (sha256)
			sha256_block(h, m + off);
		else
			sha1_block(h, m + off);
	}
	for (int i = 0; i < words; i++) {
		out[4 * i] = h[i] >> 24;
		out[4 * i + 1] = h[i] >> 16;
		out[4 * i + 2] = h[i] >> 8;
		out[4 * i + 3] = h[i];
	}
}

/* ------------------------------------------------------------------ */
/* The files                                                           */

struct lfile {
	char name[NAME_MAX + 1];
	char path[PATH_MAX];
	bool binary, staged, link;
	int bank;		/* index into banks[], -1 for other algorithms */
	size_t dsize;		/* template digest size, 0 if unknown */
};

static struct lfile lf[MAXFILES];
static int nlf;

static struct counter {
	char name[NAME_MAX + 1];
	char path[PATH_MAX];
	bool monotonic;		/* violations never goes down */
} ctr[MAXCOUNTERS];
static int nctr;

static struct bank {
	const char *algo;
	size_t dsize;
	bool present;
	int file[2];		/* lf[] of the binary original and _staged file */
} banks[NBANKS] = {
	{ .algo = "sha1", .dsize = 20, .file = { -1, -1 } },
	{ .algo = "sha256", .dsize = 32, .file = { -1, -1 } },
};

static int probe_lf;		/* a list file the children open to probe */
static char token[64];		/* in the names of the files this run measures */
static size_t toklen;

static size_t algo_dsize(const char *a)
{
	static const struct {
		const char *algo;
		size_t dsize;
	} t[] = {
		{ "sha1", 20 }, { "sha256", 32 }, { "sha384", 48 },
		{ "sha512", 64 }, { "sm3_256", 32 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].algo, a))
			return t[i].dsize;
	return 0;
}

static int cmp_lfile(const void *a, const void *b)
{
	return strcmp(((const struct lfile *)a)->name,
		      ((const struct lfile *)b)->name);
}

/*
 * The list files of DIR: {ascii,binary}_runtime_measurements[_ALGO][_staged]
 * (a symlink to a sibling is kept as a name to read, not opened by the
 * writer), and the counters: violations and every *_count file.
 */
static void scan_dir(void)
{
	DIR *d = opendir(opt.dir);
	struct dirent *de;

	if (!d)
		die("%s: %s", opt.dir, strerror(errno));
	while ((de = readdir(d))) {
		const char *nm = de->d_name, *rest;
		struct lfile *l;
		char algo[NAME_MAX + 1], target[PATH_MAX];
		size_t n = strlen(nm);
		struct stat st;
		ssize_t tl;
		bool bin;

		if (!strncmp(nm, "binary_runtime_measurements", 27)) {
			bin = true;
			rest = nm + 27;
		} else if (!strncmp(nm, "ascii_runtime_measurements", 26)) {
			bin = false;
			rest = nm + 26;
		} else {
			if ((n > 6 && !strcmp(nm + n - 6, "_count")) ||
			    !strcmp(nm, "violations")) {
				if (nctr == MAXCOUNTERS)
					continue;
				pathf(ctr[nctr].name, sizeof(ctr[nctr].name), "%s", nm);
				pathf(ctr[nctr].path, sizeof(ctr[nctr].path), "%s/%s",
				      opt.dir, nm);
				ctr[nctr].monotonic = !strcmp(nm, "violations");
				nctr++;
			}
			continue;
		}
		if (nlf == MAXFILES)
			continue;
		l = &lf[nlf];
		*l = (struct lfile){ .binary = bin, .bank = -1 };
		pathf(l->name, sizeof(l->name), "%s", nm);
		pathf(l->path, sizeof(l->path), "%s/%s", opt.dir, nm);
		pathf(algo, sizeof(algo), "%s", *rest == '_' ? rest + 1 : rest);
		n = strlen(algo);
		if (n >= 6 && !strcmp(algo + n - 6, "staged")) {
			l->staged = true;
			algo[n - 6] = '\0';
			n -= 6;
			if (n && algo[n - 1] == '_')
				algo[--n] = '\0';
		}
		if (!algo[0])
			pathf(algo, sizeof(algo), "sha1");	/* the symlinks */
		if (lstat(l->path, &st))
			continue;
		if (S_ISLNK(st.st_mode)) {
			tl = readlink(l->path, target, sizeof(target) - 1);
			l->link = tl > 0 && !memchr(target, '/', tl);
		}
		l->dsize = algo_dsize(algo);
		for (int b = 0; b < NBANKS; b++)
			if (!strcmp(algo, banks[b].algo))
				l->bank = b;
		nlf++;
	}
	closedir(d);
	qsort(lf, nlf, sizeof(lf[0]), cmp_lfile);
	probe_lf = -1;
	for (int i = 0; i < nlf; i++) {
		if (lf[i].link)
			continue;
		if (probe_lf < 0)
			probe_lf = i;
		if (lf[i].binary && lf[i].bank >= 0)
			banks[lf[i].bank].file[lf[i].staged] = i;
	}
	for (int b = 0; b < NBANKS; b++)
		banks[b].present = banks[b].file[0] >= 0 && banks[b].file[1] >= 0;
	if (!banks[0].present)
		die("%s: no binary_runtime_measurements_sha1 and its _staged twin (a kernel without CONFIG_IMA_STAGING?)",
		    opt.dir);
}

/* ------------------------------------------------------------------ */
/* Binary and ascii lists                                              */

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
	ima = namelen == 3 && !memcmp(p + off, "ima", 3);
	off += namelen + (ima ? 20 : 0);
	if (avail < off + 4)
		return -1;
	memcpy(&datalen, p + off, 4);
	off += 4;
	if (datalen > avail - off)
		return -1;
	return off + datalen;
}

/* Records in the first *bytes of p, up to limit; -1 if malformed. */
static long walk(const unsigned char *p, size_t len, size_t dsize, long limit,
		 size_t *bytes)
{
	size_t off = 0;
	long n = 0, l;

	while (n < limit && off < len) {
		l = rec_len(p + off, len - off, dsize);
		if (l < 0)
			return -1;
		off += l;
		n++;
	}
	if (bytes)
		*bytes = off;
	return n;
}

static long nrec(const struct buf *b, size_t dsize)
{
	return walk(b->p, b->len, dsize, LONG_MAX, NULL);
}

/* Bytes of the first n records, -1 if b holds fewer. */
static long prefix_bytes(const struct buf *b, size_t dsize, long n)
{
	size_t by;

	return walk(b->p, b->len, dsize, n, &by) == n ? (long)by : -1;
}

/*
 * The sha1 list a and the sha256 list b side by side: how many leading
 * records are the same event (PCR, template name and data); *na and *nb
 * get the record counts (-1: malformed).
 */
static long agree(const struct buf *a, const struct buf *b, long *na, long *nb)
{
	size_t oa = 0, ob = 0, da = banks[0].dsize, db = banks[1].dsize;
	long k = 0, la, lb;

	*na = nrec(a, da);
	*nb = nrec(b, db);
	if (*na < 0 || *nb < 0)
		return -1;
	while (oa < a->len && ob < b->len) {
		la = rec_len(a->p + oa, a->len - oa, da);
		lb = rec_len(b->p + ob, b->len - ob, db);
		if (la - (long)da != lb - (long)db ||
		    memcmp(a->p + oa, b->p + ob, 4) ||
		    memcmp(a->p + oa + 4 + da, b->p + ob + 4 + db, la - 4 - da))
			break;
		k++;
		oa += la;
		ob += lb;
	}
	return k;
}

/* Lines of an ascii list ("PCR DIGEST TEMPLATE DATA..."); -1: malformed. */
static long ascii_lines(const unsigned char *p, size_t len, size_t dsize)
{
	size_t i = 0, j, k, e;
	long n = 0;

	while (i < len) {
		const unsigned char *nl = memchr(p + i, '\n', len - i);

		if (!nl)
			return -1;
		e = nl - p;
		for (j = i; j < e && p[j] == ' '; j++)
			;
		for (k = j; j < e && isdigit(p[j]); j++)
			;
		if (j == k || j >= e || p[j] != ' ')
			return -1;
		for (k = ++j; j < e && isxdigit(p[j]); j++)
			;
		if (j == k || (dsize && j - k != 2 * dsize) || j >= e ||
		    p[j] != ' ')
			return -1;
		for (k = ++j; j < e && p[j] != ' '; j++)
			;
		if (j == k || j >= e)
			return -1;
		i = e + 1;
		n++;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* I/O helpers                                                         */

/*
 * Append from fd's position in random read sizes, to EOF or for at most max
 * reads (0: no limit); *eof tells whether EOF was reached. 0 or an errno.
 */
static int read_chunks(int fd, struct buf *b, struct rng *r,
		       unsigned char *tmp, int max, bool *eof)
{
	ssize_t n;

	if (eof)
		*eof = false;
	for (int i = 0; !max || i < max; i++) {
		n = read(fd, tmp, chunk(r));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0) {
			if (eof)
				*eof = true;
			return 0;
		}
		buf_add(b, tmp, n);
	}
	return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	const unsigned char *c = p;
	int tries = 0;
	ssize_t w;

	while (n) {
		w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && fault_errno(errno) && tries++ < FAULT_RETRIES) {
			INC(f_own[FK_WRITE]);
			usleep(1000);
			continue;
		}
		if (w < 0)
			return errno;
		if (w == 0)
			return EIO;
		c += w;
		n -= w;
	}
	return 0;
}

static int read_file(const char *path, struct buf *b)
{
	unsigned char tmp[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;
	ssize_t n;

	if (fd < 0)
		return errno;
	while ((n = read(fd, tmp, sizeof(tmp))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			break;
		}
		buf_add(b, tmp, n);
	}
	close(fd);
	return e;
}

static int write_file(const char *path, const struct buf *a,
		      const struct buf *b, const struct buf *c)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), e;

	if (fd < 0)
		return errno;
	e = write_all(fd, a->p, a->len);
	if (!e && b)
		e = write_all(fd, b->p, b->len);
	if (!e && c)
		e = write_all(fd, c->p, c->len);
	if (close(fd) && !e)
		e = errno;
	return e;
}

/*
 * A counter read with one pread at 0 (a single read formats the value
 * once: smaller reads at moving positions could tear it). The value, or
 * -errno, -EBADMSG if it is not a sane decimal (raw text in raw).
 */
static long counter_value(int fd, char raw[32])
{
	char *end;
	ssize_t n;
	long v;

	n = pread(fd, raw, 31, 0);
	if (n < 0)
		return -errno;
	raw[n] = '\0';
	if (!n || !isdigit((unsigned char)raw[0]))
		return -EBADMSG;
	errno = 0;
	v = strtol(raw, &end, 10);
	if (errno || strcmp(end, "\n") || v < 0 || v > 1000000000L)
		return -EBADMSG;
	return v;
}

/* O_RDONLY open; EBUSY (a writer holds the files) is counted and retried. */
static int open_reader(const char *path, struct rng *r)
{
	int fd;

	for (;;) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || errno != EBUSY)
			return fd;
		INC(rd_busy);
		if (stopping()) {
			errno = EBUSY;
			return -1;
		}
		usleep(100 + rnd_below(r, 900));
	}
}

/*
 * A read-only open that probes the mediation (EBUSY or not): under
 * --faults, ENOMEM says nothing about it and is retried.
 */
static int probe_open(const char *path)
{
	int fd;

	for (int t = 0;; t++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || !nomem(errno) || t >= FAULT_RETRIES)
			return fd;
		INC(f_probe);
	}
}

/* ------------------------------------------------------------------ */
/* Malformed writes                                                    */

enum {
	M_EINVAL = 1,
	M_EFAULT = 2,
	M_ERANGE = 4,
	M_ENOENT = 8,
	M_VALID = 0x100,	/* a real command: never sent as malformed */
	M_LENIENT = 0x200,	/* a command to a lenient parser (--strict-n) */
};

static int errmask(int e)
{
	switch (e) {
	case EINVAL: return M_EINVAL;
	case EFAULT: return M_EFAULT;
	case ERANGE: return M_ERANGE;
	case ENOENT: return M_ENOENT;
	}
	return 0;
}

static void maskname(int m, char *b, size_t n)
{
	snprintf(b, n, "%s%s%s%s", m & M_EINVAL ? "EINVAL " : "",
		 m & M_EFAULT ? "EFAULT " : "", m & M_ERANGE ? "ERANGE " : "",
		 m & M_ENOENT ? "ENOENT " : "");
}

/* A decimal number (digits only): 0 no, 1 yes (*v), 2 above ULONG_MAX. */
static int strict_number(const unsigned char *p, size_t n, unsigned long *v)
{
	*v = 0;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit(p[i]))
			return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (*v > (ULONG_MAX - (p[i] - '0')) / 10)
			return 2;
		*v = *v * 10 + (p[i] - '0');
	}
	return 1;
}

/*
 * The same under a lenient reading of the command (what a C-string parser
 * such as kstrtoul() sees): up to the first NUL, an optional '+', digits,
 * an optional newline.
 */
static int lenient_number(const unsigned char *p, size_t n, unsigned long *v)
{
	const unsigned char *z = memchr(p, '\0', n);
	size_t i = 0, j;

	if (z)
		n = z - p;
	if (n && p[0] == '+')
		i++;
	for (j = i; j < n && isdigit(p[j]); j++)
		;
	if (j == i || (j < n && !(j + 1 == n && p[j] == '\n')))
		return 0;
	return strict_number(p + i, j - i, v);
}

/*
 * The errors the ABI allows for a write of len bytes at p, of which the
 * first mapped bytes are readable, to a _staged or an original file:
 * "2 to 21 bytes, newline-terminated, else -EINVAL (-EFAULT on a bad user
 * pointer)", A and D on _staged files only, N >= 1 decimal on originals
 * only (EINVAL for 0, non-numeric or ima_flush_htable, ERANGE on overflow,
 * ENOENT for more records than there are). When the order of the length
 * check and the copy is open, both errors are allowed.
 */
static int classify(const unsigned char *p, size_t len, size_t mapped,
		    bool staged)
{
	bool inlen = len >= 2 && len <= REQ_MAX;
	unsigned long v, lv;
	int s, l;

	if (mapped < len)
		return inlen ? M_EFAULT : M_EINVAL | M_EFAULT;
	if (!inlen || p[len - 1] != '\n')
		return M_EINVAL;
	if (p[0] == 'A' || p[0] == 'D')
		return len == 2 && staged ? M_VALID : M_EINVAL;
	if (staged || opt.flush)
		return M_EINVAL;
	s = strict_number(p, len - 1, &v);
	if (s == 2)
		return M_ERANGE;
	if (s == 1)
		return !v ? M_EINVAL : v >= BIG_N ? M_ENOENT : M_VALID;
	l = lenient_number(p, len - 1, &lv);
	if (!l || (l == 1 && !lv))
		return M_EINVAL;
	if (l == 2)
		return M_EINVAL | M_ERANGE;
	return lv >= BIG_N ? M_EINVAL | M_ENOENT : M_LENIENT;
}

#define S(x) { x, sizeof(x) - 1 }
static const struct {
	const char *s;
	size_t n;
} near_miss[] = {
	S("A"), S("D"), S("A\n\n"), S("D\n\n"), S("A \n"), S("D \n"),
	S(" A\n"), S(" D\n"), S("a\n"), S("d\n"), S("AD\n"), S("DA\n"),
	S("AA\n"), S("DD\n"), S("A\r\n"), S("D\t\n"), S("A\0"), S("\0A\n"),
	S("A\0\n"), S("D\0\n"), S("\0\n"), S("\0"), S(""), S("\n"),
	S("\n\n"), S("0\n"), S("00\n"), S("-1\n"), S("-0\n"), S("+\n"),
	S("+-1\n"), S("-\n"), S("18446744073709551616\n"),
	S("99999999999999999999\n"), S("18446744073709551615\n"),
	S("1000000000000\n"), S("1x\n"), S("x1\n"), S(" 1\n"), S("\t1\n"),
	S("1 \n"), S("0x1\n"), S("1e3\n"), S("1.0\n"), S("1\r\n"), S("1"),
	S("11"), S("000000000000000000001\n"), S("\xef\xbc\x91\n"),
	S("\0" "1\n"), S("x\0" "1\n"), S("+0\n"), S("0\n\n"),
	/* real commands, sent to the wrong kind of file */
	S("A\n"), S("D\n"), S("1\n"), S("2\n"), S("00000000000000000001\n"),
};

/* Accepted as N = 1 by a lenient parser, not a decimal N (--strict-n). */
static const struct {
	const char *s;
	size_t n;
} lenient_one[] = {
	S("+1\n"), S("1\n\n"), S("1\0" "x\n"), S("01\0\n"), S("+01\n"),
};
#undef S

struct malbuf {
	unsigned char *page0;	/* readable and writable */
	unsigned char *bad;	/* two PROT_NONE pages right after it */
};

struct mal {
	const unsigned char *p;
	size_t len, mapped;
	int mask;
};

static void malbuf_init(struct malbuf *m)
{
	size_t pg = sysconf(_SC_PAGESIZE);
	unsigned char *a;
	int e;

	for (int t = 0;; t++) {
		a = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a != MAP_FAILED && !mprotect(a + pg, 2 * pg, PROT_NONE))
			break;
		e = errno;
		if (a != MAP_FAILED)
			munmap(a, 3 * pg);
		if (!fault_errno(e) || t >= FAULT_RETRIES)
			die("mmap: %s", strerror(e));
		INC(f_own[FK_MMAP]);
		usleep(1000);
	}
	m->page0 = a;
	m->bad = a + pg;
}

static void fill_random(struct rng *r, unsigned char *d, size_t n)
{
	static const char alpha[] = "AD0123456789\n +-x";	/* and NUL */

	for (size_t i = 0; i < n; i++)
		d[i] = rnd_below(r, 5) < 3 ?
		       (unsigned char)alpha[rnd_below(r, sizeof(alpha))] :
		       (unsigned char)rnd(r);
}

static size_t rand_len(struct rng *r)
{
	return rnd_below(r, 4) ? rnd_below(r, REQ_MAX + 4) : rnd_below(r, 4097);
}

/*
 * A malformed write for a _staged or an original file: a near miss, random
 * bytes (0..4096), an unmapped buffer, or one that runs into a PROT_NONE
 * page. Whatever a real command could be is drawn again.
 */
static void gen(struct rng *r, const struct malbuf *mb, bool staged,
		struct mal *m)
{
	for (;;) {
		unsigned int how = rnd_below(r, 100), i;
		size_t k;

		if (how < 35) {
			i = rnd_below(r, sizeof(near_miss) / sizeof(near_miss[0]));
			memcpy(mb->page0, near_miss[i].s, near_miss[i].n);
			m->p = mb->page0;
			m->len = m->mapped = near_miss[i].n;
		} else if (how < 70) {
			m->len = m->mapped = rand_len(r);
			fill_random(r, mb->page0, m->len);
			if (m->len && rnd_below(r, 2))
				mb->page0[m->len - 1] = '\n';
			m->p = mb->page0;
		} else if (how < 82) {
			m->p = mb->bad + rnd_below(r, 64);
			m->len = rand_len(r);
			m->mapped = 0;
		} else {
			k = rnd_below(r, REQ_MAX + 1);
			i = rnd_below(r, sizeof(near_miss) / sizeof(near_miss[0]));
			fill_random(r, mb->bad - k, k);
			memcpy(mb->bad - k, near_miss[i].s,
			       near_miss[i].n < k ? near_miss[i].n : k);
			m->p = mb->bad - k;
			m->len = rnd_below(r, 2) ? k + 1 + rnd_below(r, REQ_MAX) :
				 rand_len(r);
			m->mapped = k;
		}
		m->mask = classify(m->p, m->len, m->mapped, staged);
		if (!(m->mask & (M_VALID | M_LENIENT)))
			return;
		INC(mal_regen);
	}
}

/* A malformed write's result: refused, with an error it allows. */
static void mal_check(const struct mal *m, ssize_t r, int e, const char *who,
		      const char *file)
{
	char b[128], a[64];

	if (r >= 0) {
		INC(mal_ok);
		fail(who, "malformed write of %zu bytes to %s was accepted (%zd): \"%s\"%s",
		     m->len, file, r, esc(b, sizeof(b), m->p, m->len, m->mapped),
		     m->mapped < m->len ? " (runs into an unmapped page)" : "");
		return;
	}
	__atomic_add_fetch(&sh->err[0][e > 0 && e < NERR ? e : 0], 1,
			   __ATOMIC_RELAXED);
	if (!(errmask(e) & m->mask) && nomem(e)) {
		INC(mal_nomem);	/* refused all the same; counted apart */
	} else if (!(errmask(e) & m->mask)) {
		INC(mal_badno);
		maskname(m->mask, a, sizeof(a));
		fail(who, "malformed write of %zu bytes to %s: %s, allowed: %s\"%s\"%s",
		     m->len, file, errname(e), a,
		     esc(b, sizeof(b), m->p, m->len, m->mapped),
		     m->mapped < m->len ? " (runs into an unmapped page)" : "");
	}
}

/* ------------------------------------------------------------------ */
/* Adders                                                              */

enum { ST_NONE, ST_READ, ST_UNKNOWN };

static struct adder {
	pthread_t th;
	int id;
	struct rng r;
	char path[PATH_MAX];
	unsigned long n, cap;
	unsigned char *st;		/* per content: ST_* */
	unsigned char (*d1)[DMAX];	/* its sha1 and sha256 */
	unsigned char (*d2)[DMAX];
} adders[MAXTHREADS];

/*
 * --faults: the adder's own file I/O failed (the scratch file system's
 * allocations fail too, with whatever errno it makes of them): counted by
 * errno, and the content is skipped. Not what is under test.
 */
static void adder_io_fault(int e)
{
	INC(f_adder_io);
	__atomic_add_fetch(&sh->err[2][e > 0 && e < NERR ? e : 0], 1,
			   __ATOMIC_RELAXED);
}

/*
 * Rewrite the adder's own file with a new content and read it as root: a
 * new record each time (creating files on the shared folder is slow under
 * emulation; a rewritten file is measured again once its writer closed).
 * Under --faults the kernel may fail to record it (then it appears not at
 * all, never twice).
 */
static void *adder_thread(void *arg)
{
	struct adder *a = arg;
	char content[192];
	unsigned char b[256];
	unsigned long seq;
	int fd, len, e;
	ssize_t n;

	while (!stopping()) {
		if (a->n == a->cap) {
			a->cap = a->cap ? 2 * a->cap : 1024;
			a->st = xrealloc(a->st, a->cap);
			a->d1 = xrealloc(a->d1, a->cap * DMAX);
			a->d2 = xrealloc(a->d2, a->cap * DMAX);
		}
		seq = a->n++;
		a->st[seq] = ST_NONE;
		len = snprintf(content, sizeof(content),
			       "ima-stress %s%d content %lu seed %llu %08x%08x\n",
			       token, a->id, seq, opt.seed, rnd(&a->r), rnd(&a->r));
		digest(content, len, false, a->d1[seq]);
		digest(content, len, true, a->d2[seq]);
		fd = open(a->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		e = fd < 0 ? errno : write_all(fd, content, len);
		if (fd >= 0 && close(fd) && !e)
			e = errno;
		if (e && opt.faults) {
			adder_io_fault(e);	/* never read: ST_NONE */
			usleep(1000);
			continue;
		}
		if (e) {
			INC(add_errors);
			fail("adder", "writing %s: %s", a->path, errname(e));
			usleep(100000);
			continue;
		}
		fd = open(a->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && opt.faults) {
			a->st[seq] = ST_UNKNOWN;	/* measured or not */
			adder_io_fault(errno);
			usleep(1000);
			continue;
		}
		if (fd < 0) {
			a->st[seq] = ST_UNKNOWN;
			INC(add_errors);
			fail("adder", "reading %s: %s", a->path, errname(errno));
			usleep(100000);
			continue;
		}
		while ((n = read(fd, b, sizeof(b))) > 0)
			;
		close(fd);
		a->st[seq] = ST_READ;
		INC(adds);
	}
	unlink(a->path);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Readers and counter loops                                           */

struct reader {
	pthread_t th;
	struct rng r;
	unsigned char *tmp;
	struct buf b, b2;
	int cntfd;		/* runtime_measurements_count */
};

static struct reader readers[MAXTHREADS];
static pthread_t counter_th[MAXCOUNTERS];

/*
 * Parts of a list read from one open must equal what the same open reads
 * sequentially: seq_file restarts at any position. (Nothing can be deleted
 * while a reader holds a file, and adds only append.)
 */
static void pread_checks(struct reader *rd, int fd, const struct lfile *l)
{
	const struct buf *b = &rd->b;
	size_t off, cmp;
	ssize_t got;

	for (int i = 0; i < 4 && b->len; i++) {
		off = rnd_below(&rd->r, b->len);
		got = pread(fd, rd->tmp, chunk(&rd->r), off);
		INC(rd_preads);
		if (got < 0 && nomem(errno)) {
			INC(f_list_read);
			return;
		}
		if (got < 0) {
			fail("reader", "pread of %s at %zu: %s", l->name, off,
			     errname(errno));
			return;
		}
		cmp = (size_t)got < b->len - off ? (size_t)got : b->len - off;
		if (memcmp(rd->tmp, b->p + off, cmp))
			fail("reader", "%s: %zd bytes read at %zu differ from a sequential read",
			     l->name, got, off);
	}
}

static void read_one(struct reader *rd, const struct lfile *l)
{
	bool part = rnd_below(&rd->r, 6) == 0, eof, current = !l->staged;
	long c1 = -1, c2 = -1, n;
	char raw[32];
	int fd, e;

	fd = open_reader(l->path, &rd->r);
	if (fd < 0) {
		if (nomem(errno))
			INC(f_list_open);
		else if (errno != EBUSY)
			fail("reader", "open %s: %s", l->name, errname(errno));
		return;
	}
	if (current && rd->cntfd >= 0)
		c1 = counter_value(rd->cntfd, raw);
	rd->b.len = 0;
	e = read_chunks(fd, &rd->b, &rd->r, rd->tmp,
			part ? 1 + rnd_below(&rd->r, 8) : 0, &eof);
	if (current && rd->cntfd >= 0)
		c2 = counter_value(rd->cntfd, raw);
	if (e && nomem(e)) {
		INC(f_list_read);	/* what was read is dropped */
		goto out;
	}
	if (e) {
		fail("reader", "read %s: %s", l->name, errname(e));
		goto out;
	}
	ADD(rd_bytes, rd->b.len);
	if (!eof) {
		INC(rd_part[l->binary][l->staged]);
		goto out;
	}
	INC(rd_full[l->binary][l->staged]);
	if (l->binary && !l->dsize)
		goto out;	/* an algorithm whose digest size is unknown */
	n = l->binary ? nrec(&rd->b, l->dsize) :
	    ascii_lines(rd->b.p, rd->b.len, l->dsize);
	if (n < 0) {
		fail("reader", "%s: malformed list (%zu bytes read in one open)",
		     l->name, rd->b.len);
		goto out;
	}
	/*
	 * The count of the current list cannot drop while a reader holds a
	 * file, and adds only raise it: c1 <= n <= c2, give or take the one
	 * add in flight between the list and the counter update.
	 */
	if (current && c1 >= 0 && c2 >= 0 && (n + 1 < c1 || n > c2 + 1))
		fail("reader", "%s: %ld records, runtime_measurements_count %ld before and %ld after",
		     l->name, n, c1, c2);
	if (!rnd_below(&rd->r, 4))
		pread_checks(rd, fd, l);
out:
	close(fd);
}

/* Both banks of one list, open at once: the same events. */
static void read_pair(struct reader *rd, bool staged)
{
	const struct lfile *a = &lf[banks[0].file[staged]];
	const struct lfile *b = &lf[banks[1].file[staged]];
	long k, na, nb;
	int fa, fb, e;
	bool eof;

	fa = open_reader(a->path, &rd->r);
	if (fa < 0) {
		if (nomem(errno))
			INC(f_list_open);
		else if (errno != EBUSY)
			fail("reader", "open %s: %s", a->name, errname(errno));
		return;
	}
	/* With a reader open, no writer can be: a second reader gets in. */
	fb = open(b->path, O_RDONLY | O_CLOEXEC);
	if (fb < 0 && nomem(errno)) {
		INC(f_list_open);
		close(fa);
		return;
	}
	if (fb < 0) {
		fail("reader", "open %s while holding %s: %s", b->name,
		     a->name, errname(errno));
		close(fa);
		return;
	}
	rd->b.len = rd->b2.len = 0;
	e = read_chunks(fa, &rd->b, &rd->r, rd->tmp, 0, &eof);
	if (!e)
		e = read_chunks(fb, &rd->b2, &rd->r, rd->tmp, 0, &eof);
	close(fa);
	close(fb);
	if (e && nomem(e)) {
		INC(f_list_read);
		return;
	}
	if (e) {
		fail("reader", "reading %s and %s: %s", a->name, b->name,
		     errname(e));
		return;
	}
	INC(rd_pairs);
	k = agree(&rd->b, &rd->b2, &na, &nb);
	if (k < 0)
		fail("reader", "%s/%s: malformed list", a->name, b->name);
	else if (k < na || (staged ? nb != na : nb < na))
		fail("reader", "%s and %s disagree: %ld and %ld records, %ld alike",
		     a->name, b->name, na, nb, k);
}

static void *reader_thread(void *arg)
{
	struct reader *rd = arg;
	char p[PATH_MAX];

	pathf(p, sizeof(p), "%s/runtime_measurements_count", opt.dir);
	rd->cntfd = open(p, O_RDONLY | O_CLOEXEC);
	while (!stopping()) {
		/*
		 * Every reader stays out while the writer waits: with one read
		 * in eight let through, reads as slow as the debug kernel's
		 * (a quarter of a second each early in a run) kept some list
		 * file open all the time, and the writer's open got EBUSY for
		 * 20 s. Reads that began before the writer waited still race
		 * with its open.
		 */
		if (__atomic_load_n(&sh->writer_waiting, __ATOMIC_RELAXED)) {
			INC(rd_backoff);
			usleep(300 + rnd_below(&rd->r, 700));
			continue;
		}
		if (banks[1].present && !rnd_below(&rd->r, 5))
			read_pair(rd, rnd_below(&rd->r, 2));
		else
			read_one(rd, &lf[rnd_below(&rd->r, nlf)]);
		if (rnd_below(&rd->r, 2))
			usleep(rnd_below(&rd->r, 500));
	}
	if (rd->cntfd >= 0)
		close(rd->cntfd);
	return NULL;
}

static void *counter_thread(void *arg)
{
	const struct counter *c = &ctr[(intptr_t)arg];
	long v, last = -1;
	unsigned long it = 0;
	char raw[32];
	int fd = -1;

	while (!stopping()) {
		if (fd < 0 || it % 4096 == 0) {
			if (fd >= 0)
				close(fd);
			fd = open(c->path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 && nomem(errno)) {
				INC(f_counter);
				usleep(1000);
				continue;
			}
			if (fd < 0) {
				fail("counter", "open %s: %s", c->name,
				     errname(errno));
				usleep(100000);
				continue;
			}
		}
		v = counter_value(fd, raw);
		it++;
		__atomic_add_fetch(&sh->st.cnt_reads[(intptr_t)arg], 1,
				   __ATOMIC_RELAXED);
		if (v == -EBADMSG) {
			raw[strcspn(raw, "\n")] = '\0';
			fail("counter", "%s: \"%s\" is not a sane count (decimal, 0..1e9, newline)",
			     c->name, raw);
		} else if (v < 0 && nomem(-v)) {
			INC(f_counter);
		} else if (v < 0) {
			fail("counter", "read %s: %s", c->name, errname(-v));
		} else {
			if (c->monotonic && v < last)
				fail("counter", "%s went down: %ld -> %ld",
				     c->name, last, v);
			last = v;
		}
		if (it % 64 == 0)
			sched_yield();
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Unprivileged processes                                              */

static bool drop_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	const unsigned int i = CAP_TO_INDEX(CAP_SYS_ADMIN);
	const __u32 m = CAP_TO_MASK(CAP_SYS_ADMIN);

	if (RETRY(FK_CRED, prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0)) ||
	    RETRY(FK_CRED, (int)syscall(SYS_capget, &h, d)))
		return false;
	d[i].effective &= ~m;
	d[i].permitted &= ~m;
	d[i].inheritable &= ~m;
	if (RETRY(FK_CRED, (int)syscall(SYS_capset, &h, d)) ||
	    RETRY(FK_CRED, (int)syscall(SYS_capget, &h, d)))
		return false;
	return !(d[i].effective & m);
}

static void unpriv_errno(int e)
{
	__atomic_add_fetch(&sh->err[1][e > 0 && e < NERR ? e : 0], 1,
			   __ATOMIC_RELAXED);
}

/*
 * Mode 0: uid/gid 65534 (the files are 0660 root:root, so permission
 * checks refuse it before the ABI's CAP_SYS_ADMIN check: EACCES or EPERM).
 * Mode 1: root without CAP_SYS_ADMIN: a write open is EPERM, a read-only
 * one works (or EBUSY), and any write on it, real commands included, is
 * EBADF. Every write open and every write is a malformed write.
 */
static int unpriv_main(int mode)
{
	static const char *const cmds[] = { "A\n", "D\n", "1\n" };
	const char *who = mode ? "unpriv-nocap" : "unpriv-nobody";
	unsigned char tmp[4096];
	struct malbuf mb;
	struct rng r;
	struct mal m;
	ssize_t w;
	int fd, e;

	rng_init(&r, opt.seed, 400 + mode);
	if (mode == 0) {
		if (RETRY(FK_CRED, setgroups(0, NULL)) ||
		    RETRY(FK_CRED, setresgid(65534, 65534, 65534)) ||
		    RETRY(FK_CRED, setresuid(65534, 65534, 65534)) ||
		    getuid() != 65534) {
			fail(who, "cannot become uid/gid 65534: %s",
			     errname(errno));
			return 1;
		}
	} else if (!drop_sys_admin()) {
		fail(who, "cannot drop CAP_SYS_ADMIN: %s", errname(errno));
		return 1;
	}
	malbuf_init(&mb);
	while (!stopping()) {
		const struct lfile *l = &lf[rnd_below(&r, nlf)];
		unsigned int how = rnd_below(&r, 100);
		int flags = how < 40 ? O_WRONLY : how < 80 ? O_RDWR : O_RDONLY;

		fd = open(l->path, flags | O_CLOEXEC);
		e = errno;
		INC(un_opens);
		if (flags != O_RDONLY) {
			INC(mal_unpriv);
			if (fd >= 0) {
				INC(mal_ok);
				fail(who, "%s open of %s succeeded",
				     flags == O_WRONLY ? "O_WRONLY" : "O_RDWR",
				     l->name);
				close(fd);
				continue;
			}
			unpriv_errno(e);
			if (e == EPERM || (mode == 0 && e == EACCES))
				continue;
			if (nomem(e)) {	/* e.g. the path's copy, first */
				INC(mal_nomem);
				continue;
			}
			INC(mal_badno);
			fail(who, "write open of %s: %s, expected %s", l->name,
			     errname(e), mode ? "EPERM" : "EACCES or EPERM");
			continue;
		}
		if (fd < 0) {
			if (e == EBUSY) {
				INC(un_busy);
				usleep(200 + rnd_below(&r, 800));
			} else if (nomem(e)) {
				INC(f_unpriv);
			} else if (!(mode == 0 && e == EACCES)) {
				fail(who, "read-only open of %s: %s", l->name,
				     errname(e));
			}
			continue;
		}
		for (int k = 1 + rnd_below(&r, 8); k > 0; k--) {
			if (!rnd_below(&r, 4)) {
				const char *c = cmds[rnd_below(&r, 3)];

				w = write(fd, c, strlen(c));
			} else {
				gen(&r, &mb, l->staged, &m);
				w = write(fd, m.p, m.len);
			}
			e = errno;
			INC(mal_unpriv);
			if (w >= 0) {
				INC(mal_ok);
				fail(who, "a write to the read-only %s succeeded",
				     l->name);
			} else {
				unpriv_errno(e);
				if (e != EBADF && nomem(e)) {
					INC(mal_nomem);
				} else if (e != EBADF) {
					INC(mal_badno);
					fail(who, "write on a read-only %s: %s, expected EBADF",
					     l->name, errname(e));
				}
			}
		}
		if (rnd_below(&r, 2) && read(fd, tmp, chunk(&r) % sizeof(tmp) + 1) < 0) {
			if (nomem(errno))
				INC(f_unpriv);
			else
				fail(who, "read %s: %s", l->name, errname(errno));
		}
		close(fd);
		if (__atomic_load_n(&sh->writer_waiting, __ATOMIC_RELAXED))
			usleep(500 + rnd_below(&r, 1000));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Fault injection (--faults): this program's make-it-fail             */

#define FI_DIR	"/sys/kernel/debug"
static const char *const fi_name[2] = { "failslab", "fail_page_alloc" };

static struct {
	bool skipped;		/* --root: no kernel to inject into */
	bool marked, cleared;	/* make-it-fail 1 read back; 0 at the end */
	int mark_err, clear_err;
	long long prob[2], interval[2], times0[2], times1[2];
} fi;

/* A number in a /proc or debugfs file; LLONG_MIN if unreadable. */
static long long read_num(const char *path)
{
	char b[64], *end;
	ssize_t n = -1;
	long long v;
	int fd, e = 0;

	for (int t = 0; t < FAULT_RETRIES; t++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			e = errno;
		} else {
			n = read(fd, b, sizeof(b) - 1);
			e = n < 0 ? errno : 0;
			close(fd);
		}
		if (!nomem(e))
			break;
	}
	if (n <= 0)
		return LLONG_MIN;
	b[n] = '\0';
	errno = 0;
	v = strtoll(b, &end, 0);
	return errno || end == b ? LLONG_MIN : v;
}

static const char *llstr(char b[24], long long v)
{
	if (v == LLONG_MIN)
		return "?";
	snprintf(b, 24, "%lld", v);
	return b;
}

/*
 * Write 0 or 1 to a make-it-fail file of /proc (root: CAP_SYS_RESOURCE),
 * again while this very open or write is failed by injection. 0 or errno.
 */
static int write_mif(const char *path, int v)
{
	char c[2] = { (char)('0' + v), '\n' };
	ssize_t w;
	int fd, e = 0;

	for (int t = 0; t < FAULT_RETRIES; t++) {
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			e = errno;
		} else {
			w = write(fd, c, 2);
			e = w == 2 ? 0 : w < 0 ? errno : EIO;
			close(fd);
		}
		if (e != ENOMEM && e != EINTR)
			break;
	}
	return e;
}

/*
 * Clear make-it-fail in every thread of this process: the calling one
 * first (its own operations stop failing), then each in /proc/self/task,
 * read back. 0, or the first errno.
 */
static int faults_off(void)
{
	char p[PATH_MAX];
	struct dirent *de;
	long long v;
	int e, first;
	DIR *d;

	first = write_mif("/proc/thread-self/make-it-fail", 0);
	if (first)
		return first;
	d = opendir("/proc/self/task");
	if (!d)
		return errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		pathf(p, sizeof(p), "/proc/self/task/%s/make-it-fail",
		      de->d_name);
		e = write_mif(p, 0);
		if (e == ENOENT || e == ESRCH)
			continue;	/* the thread is gone */
		v = e ? 0 : read_num(p);
		if (v != 0 && v != LLONG_MIN)
			e = EIO;
		if (e && !first)
			first = e;
	}
	closedir(d);
	return first;
}

static void fi_times(long long times[2])
{
	char p[PATH_MAX];

	for (int k = 0; k < 2; k++) {
		pathf(p, sizeof(p), FI_DIR "/%s/times", fi_name[k]);
		times[k] = read_num(p);
	}
}

/*
 * Mark this process (before it starts its workers, which inherit the
 * flag: make-it-fail is copied on fork and clone). guest/stress.sh has
 * set the rates; they are read back for the report.
 */
static void faults_on(void)
{
	char p[PATH_MAX], b[4][24];

	if (opt.root) {
		fi.skipped = true;
		printf("# faults: --root: no kernel to inject into, make-it-fail not set (skipped)\n");
		return;
	}
	for (int k = 0; k < 2; k++) {
		pathf(p, sizeof(p), FI_DIR "/%s/probability", fi_name[k]);
		fi.prob[k] = read_num(p);
		pathf(p, sizeof(p), FI_DIR "/%s/interval", fi_name[k]);
		fi.interval[k] = read_num(p);
	}
	fi_times(fi.times0);
	fi.mark_err = write_mif("/proc/self/make-it-fail", 1);
	fi.marked = !fi.mark_err && read_num("/proc/self/make-it-fail") == 1;
	printf("# faults: make-it-fail %s (pid %d; every thread and child inherits it); failslab probability=%s%% interval=%s, fail_page_alloc probability=%s%% interval=%s (from %s)\n",
	       fi.marked ? "set" : fi.mark_err ? errname(fi.mark_err) : "not read back as 1",
	       (int)getpid(), llstr(b[0], fi.prob[0]), llstr(b[1], fi.interval[0]),
	       llstr(b[2], fi.prob[1]), llstr(b[3], fi.interval[1]), FI_DIR);
}

/* Unmark this process (its workers are gone) before the final phase. */
static void faults_end(void)
{
	if (!opt.faults || fi.skipped)
		return;
	fi.clear_err = faults_off();
	fi.cleared = !fi.clear_err &&
		     read_num("/proc/self/make-it-fail") == 0;
	fi_times(fi.times1);
}

/* Failures injected into this run (debugfs "times" counts down), or -1. */
static long long fi_injected(int k)
{
	if (fi.times0[k] <= 0 || fi.times1[k] < 0 || fi.times1[k] > fi.times0[k])
		return -1;
	return fi.times0[k] - fi.times1[k];
}

/* ------------------------------------------------------------------ */
/* The writer process                                                  */

static struct buf init_stg[NBANKS], init_cur[NBANKS];	/* at start */

static struct wfd {
	int lfi, fd;
	bool rdwr;
} wf[MAXFILES];
static int nwf;
static int wbin[NBANKS][2];	/* wf[] of binary [bank][staged] */
static bool wopen;		/* wf[] usable by the helper threads */
static pthread_rwlock_t wlock;
static int helpers_stop;
static struct rng wr;		/* the writer thread's */
static unsigned char *wtmp;
static struct malbuf wmb;
static int scm_sock = -1;
static pid_t receiver = -1;
static int savefd[NBANKS] = { -1, -1 };
static long ncycle;

/*
 * What this writer knows, only it deletes: the current lists start with
 * known_cur, the staged lists are known_stg when staged_pending (unknown if
 * stg_unknown), pend holds records cut by N while something was staged
 * (they come after the staged ones in the history).
 */
static struct buf known_cur[NBANKS], known_stg[NBANKS], pend[NBANKS];
static bool staged_pending, stg_unknown;
/*
 * --faults: the deleted records, written to saved.* once at the end of the
 * writer, with its fault injection off (a failed write could lose them).
 */
static struct buf saved_mem[NBANKS];

struct hctx {
	struct rng r;
	struct malbuf mb;
	unsigned char *tmp;
};

static void wclose_all(void)
{
	for (int i = 0; i < nwf; i++) {
		if (wf[i].fd >= 0)
			close(wf[i].fd);
		wf[i].fd = -1;
	}
}

/*
 * Open every list file as the writer, in random order: binary sha1/sha256
 * O_RDWR, the others O_RDWR or O_WRONLY. Only the first open may get
 * EBUSY (readers): retried, with the readers asked to back off.
 */
static bool wset_open(void)
{
	int order[MAXFILES], n = 0, fd, e, nm;
	time_t t0 = time(NULL);

	for (int i = 0; i < nlf; i++)
		if (!lf[i].link)
			order[n++] = i;
	shuffle(order, n, &wr);
	nwf = 0;
	memset(wbin, 0xff, sizeof(wbin));
	for (int k = 0; k < n; k++) {
		const struct lfile *l = &lf[order[k]];
		bool rdwr = (l->binary && l->bank >= 0) || rnd_below(&wr, 2);

		for (nm = 0;;) {
			fd = open(l->path, (rdwr ? O_RDWR : O_WRONLY) | O_CLOEXEC);
			e = errno;
			if (fd < 0 && nomem(e) && nm++ < FAULT_RETRIES) {
				INC(f_wopen);	/* --faults: the same open again */
				continue;
			}
			if (fd >= 0 || e != EBUSY || k > 0)
				break;
			INC(w_busy);
			__atomic_store_n(&sh->writer_waiting, 1, __ATOMIC_RELAXED);
			if (time(NULL) - t0 > OPEN_TIMEOUT)
				break;
			usleep(200 + rnd_below(&wr, 800));
		}
		if (fd < 0) {
			if (k == 0 && e == EBUSY)
				fail("writer", "write open of %s: EBUSY for %d s (readers never drained, or the mediation is stuck)",
				     l->name, OPEN_TIMEOUT);
			else
				fail("writer", "%s write open of %s: %s",
				     k ? "an extra" : "the first", l->name,
				     errname(e));
			__atomic_store_n(&sh->writer_waiting, 0, __ATOMIC_RELAXED);
			wclose_all();
			nwf = 0;
			return false;
		}
		if (l->binary && l->bank >= 0)
			wbin[l->bank][l->staged] = nwf;
		wf[nwf++] = (struct wfd){ .lfi = order[k], .fd = fd, .rdwr = rdwr };
	}
	__atomic_store_n(&sh->writer_waiting, 0, __ATOMIC_RELAXED);
	pthread_rwlock_wrlock(&wlock);
	wopen = true;
	pthread_rwlock_unlock(&wlock);
	return true;
}

static const char *wname(int i)
{
	return lf[wf[i].lfi].name;
}

/* Malformed writes from the writer thread through its own files. */
static void mal_burst(int n)
{
	struct mal m;
	ssize_t r;

	for (int i = 0; i < n && nwf; i++) {
		int k = rnd_below(&wr, nwf);

		gen(&wr, &wmb, lf[wf[k].lfi].staged, &m);
		r = write(wf[k].fd, m.p, m.len);
		mal_check(&m, r, r < 0 ? errno : 0, "writer", wname(k));
		INC(mal_priv);
	}
}

/* A command through a random open file of the kind: 0, errno, -1 short. */
static int wcmd(bool staged, const char *req, size_t len, const char **name)
{
	int idx[MAXFILES], n = 0, k;
	ssize_t r;

	for (int i = 0; i < nwf; i++)
		if (lf[wf[i].lfi].staged == staged)
			idx[n++] = i;
	k = idx[rnd_below(&wr, n)];
	*name = wname(k);
	r = write(wf[k].fd, req, len);
	if (r < 0)
		return errno;
	return (size_t)r == len ? 0 : -1;
}

/*
 * The whole binary list (bank, staged) read through the writer's fd. Under
 * --faults, a read that fails with ENOMEM is dropped and done again.
 */
static bool wread(int b, bool staged, struct buf *out)
{
	int i = wbin[b][staged], fd = wf[i].fd, e;

	for (int t = 0;; t++) {
		out->len = 0;
		if (lseek(fd, 0, SEEK_SET) < 0) {
			e = errno;
			if (nomem(e) && t < FAULT_RETRIES) {
				INC(f_list_read);
				continue;
			}
			fail("writer", "lseek %s: %s", wname(i), errname(e));
			return false;
		}
		e = read_chunks(fd, out, &wr, wtmp, 0, NULL);
		if (!e)
			break;
		if (nomem(e) && t < FAULT_RETRIES) {
			INC(f_list_read);
			continue;
		}
		fail("writer", "read %s: %s", wname(i), errname(e));
		return false;
	}
	if (nrec(out, banks[b].dsize) < 0) {
		fail("writer", "%s: malformed list (%zu bytes)", wname(i),
		     out->len);
		return false;
	}
	return true;
}

/* Both banks of a list: the same events (staged: all; current: a prefix). */
static void wagree(const struct buf x[NBANKS], bool staged, const char *when)
{
	long na, nb, k;

	if (!banks[1].present)
		return;
	k = agree(&x[0], &x[1], &na, &nb);
	if (k < 0 || k < na || (staged ? nb != na : nb < na))
		fail("writer", "%s: the sha1 and sha256 %s lists disagree: %ld and %ld records, %ld alike",
		     when, staged ? "staged" : "current", na, nb, k);
}

/* Read the current lists: they still start with what was known. */
static bool wread_current(struct buf cur[NBANKS], const char *when)
{
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		if (!wread(b, false, &cur[b]))
			return false;
		if (!starts_with(&cur[b], &known_cur[b]))
			fail("writer", "%s: the current %s list (%zu bytes) does not start with the %zu bytes it held before: records vanished",
			     when, banks[b].algo, cur[b].len, known_cur[b].len);
		buf_set(&known_cur[b], &cur[b]);
	}
	wagree(cur, false, when);
	return true;
}

/* Read the staged lists: exactly what was staged (or nothing). */
static bool wread_staged(struct buf stg[NBANKS], const char *when)
{
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		if (!wread(b, true, &stg[b]))
			return false;
		if (!stg_unknown && !buf_eq(&stg[b], &known_stg[b]))
			fail("writer", "%s: the staged %s list holds %zu bytes, %zu were staged",
			     when, banks[b].algo, stg[b].len,
			     staged_pending ? known_stg[b].len : 0);
	}
	wagree(stg, true, when);
	return true;
}

/* Append deleted records to the saved lists, in history order. */
static void commit(const struct buf c[NBANKS])
{
	int e;

	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present || !c[b].len)
			continue;
		e = 0;
		if (opt.faults)
			buf_add(&saved_mem[b], c[b].p, c[b].len);
		else
			e = write_all(savefd[b], c[b].p, c[b].len);
		if (e)
			fail("writer", "saving deleted %s records: %s",
			     banks[b].algo, errname(e));
		ADD(saved_bytes[b], c[b].len);
		ADD(saved_recs[b], nrec(&c[b], banks[b].dsize));
	}
}

/* Records cut from the front of the current list (N, or a lenient probe). */
static void cut_front(const long len[NBANKS])
{
	struct buf cut[NBANKS] = { 0 };

	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		buf_add(&cut[b], known_cur[b].p, len[b]);
		buf_drop_front(&known_cur[b], len[b]);
		if (staged_pending)
			buf_add(&pend[b], cut[b].p, cut[b].len);
	}
	if (!staged_pending)
		commit(cut);
	for (int b = 0; b < NBANKS; b++)
		buf_free(&cut[b]);
}

enum { C_A, C_D, C_N };
static const char *const cmdname[] = { "A", "D", "N" };

/*
 * After a command that failed (rc: an errno, or -1 for a short write),
 * with any errno: commands are atomic, so the lists must be what the model
 * says (the current lists start with known_cur, the staged ones are
 * known_stg). Re-read them. A command that failed but did its work anyway
 * is a failure; the model then takes the change over (the records it
 * deleted are saved), so that the history stays whole for the replay.
 * len: the bytes of each bank that N would have cut (C_N only).
 * Returns 1 if the command did its work, 0 if nothing changed, -1 if the
 * lists changed otherwise or could not be read.
 */
static int verify_failed(int cmd, int rc, const char *name,
			 const long len[NBANKS])
{
	struct buf cur[NBANKS] = { 0 }, stg[NBANKS] = { 0 };
	bool cur_same = true, stg_same = true, stg_empty = true, staged = true,
	     cut = true;
	char when[96];
	int ret = -1;
	long n;

	snprintf(when, sizeof(when), "after %s on %s failed with %s",
		 cmdname[cmd], name, errname(rc));
	INC(v_runs);
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		if (!wread(b, false, &cur[b]) || !wread(b, true, &stg[b])) {
			INC(v_skipped);	/* the next reads compare instead */
			goto out;
		}
	}
	for (int b = 0; b < NBANKS; b++) {
		const struct buf *k = &known_cur[b];

		if (!banks[b].present)
			continue;
		cur_same &= starts_with(&cur[b], k);
		if (!stg_unknown)
			stg_same &= buf_eq(&stg[b], &known_stg[b]);
		stg_empty &= !stg[b].len;
		staged &= stg[b].len && starts_with(&stg[b], k);
		if (cmd == C_N)
			cut &= len[b] >= 0 && (size_t)len[b] <= k->len &&
			       cur[b].len >= k->len - len[b] &&
			       !memcmp(cur[b].p, k->p + len[b], k->len - len[b]);
	}
	wagree(cur, false, when);
	wagree(stg, true, when);
	if (cur_same && stg_same) {
		INC(v_same);
		for (int b = 0; b < NBANKS; b++)
			buf_set(&known_cur[b], &cur[b]);
		ret = 0;
		goto out;
	}
	if (cmd == C_A && !staged_pending && staged) {
		fail("writer", "%s: the current list was staged anyway (%zu bytes)",
		     when, stg[0].len);
		staged_pending = true;
		stg_unknown = false;
		for (int b = 0; b < NBANKS; b++) {
			buf_set(&known_stg[b], &stg[b]);
			buf_set(&known_cur[b], &cur[b]);
		}
		ret = 1;
	} else if (cmd == C_D && staged_pending && stg_empty && cur_same) {
		n = nrec(&known_stg[0], banks[0].dsize);
		fail("writer", "%s: the %ld staged records were deleted anyway (saved as deleted)",
		     when, n);
		ADD(w_D_recs, n);
		commit(known_stg);
		commit(pend);
		for (int b = 0; b < NBANKS; b++) {
			known_stg[b].len = pend[b].len = 0;
			buf_set(&known_cur[b], &cur[b]);
		}
		staged_pending = false;
		ret = 1;
	} else if (cmd == C_N && stg_same && cut) {
		fail("writer", "%s: the records were cut anyway (%ld bytes of sha1; saved as deleted)",
		     when, len[0]);
		cut_front(len);
		for (int b = 0; b < NBANKS; b++)
			buf_set(&known_cur[b], &cur[b]);
		ret = 1;
	} else {
		fail("writer", "%s: the lists changed: the current %s list %s the %zu bytes it held before (%zu now), the staged one %s (%zu bytes, %zu known)",
		     when, banks[0].algo,
		     cur_same ? "still starts with" : "no longer starts with",
		     known_cur[0].len, cur[0].len,
		     stg_unknown ? "was not known" :
		     stg_same ? "is the same" : "changed",
		     stg[0].len, known_stg[0].len);
		/* Follow the kernel; records it lost stay lost (the replay). */
		if (staged_pending && stg_empty) {
			commit(pend);
			staged_pending = false;
		} else if (!stg_empty) {
			staged_pending = true;
		}
		stg_unknown = false;
		for (int b = 0; b < NBANKS; b++) {
			buf_set(&known_cur[b], &cur[b]);
			buf_set(&known_stg[b], &stg[b]);
			if (!staged_pending)
				pend[b].len = 0;
		}
	}
	if (ret == 1)
		INC(v_done);
	else
		INC(v_changed);
out:
	for (int b = 0; b < NBANKS; b++) {
		buf_free(&cur[b]);
		buf_free(&stg[b]);
	}
	return ret;
}

static void op_delete(void)
{
	struct buf stg[NBANKS] = { 0 };
	const char *name;
	long n;
	int rc;

	if (!wread_staged(stg, "before D"))
		goto out;
	if (stg_unknown) {
		for (int b = 0; b < NBANKS; b++)
			buf_set(&known_stg[b], &stg[b]);
		stg_unknown = false;
	}
	mal_burst(rnd_below(&wr, 8));
	rc = wcmd(true, "D\n", 2, &name);
	if (rc) {
		if (rc == ENOMEM && opt.flush)	/* table swap failed: retried */
			INC(w_D_nomem);
		else if (nomem(rc))
			INC(f_cmd[C_D]);
		else
			fail("writer", "D on %s with %zu bytes staged: %s, expected ok",
			     name, known_stg[0].len, errname(rc));
		verify_failed(C_D, rc, name, NULL);
		goto out;
	}
	n = nrec(&known_stg[0], banks[0].dsize);
	INC(w_D);
	ADD(w_D_recs, n);
	commit(known_stg);
	commit(pend);
	for (int b = 0; b < NBANKS; b++)
		known_stg[b].len = pend[b].len = 0;
	staged_pending = false;
	wread_staged(stg, "after D");
out:
	for (int b = 0; b < NBANKS; b++)
		buf_free(&stg[b]);
}

/* A on a _staged file; the staged lists read back; D unless keep. */
static void op_stage(bool keep)
{
	struct buf cur[NBANKS] = { 0 }, stg[NBANKS] = { 0 };
	const char *name;
	int rc;

	if (!wread_current(cur, "before A"))
		goto out;
	mal_burst(rnd_below(&wr, 8));
	rc = wcmd(true, "A\n", 2, &name);
	if (rc == ENOENT) {
		INC(w_A_empty);
		if (known_cur[0].len)
			fail("writer", "A on %s: ENOENT with %zu bytes of records in the current list",
			     name, known_cur[0].len);
		verify_failed(C_A, rc, name, NULL);
		goto out;
	}
	if (rc) {
		if (nomem(rc))
			INC(f_cmd[C_A]);
		else
			fail("writer", "A on %s: %s, expected ok", name,
			     errname(rc));
		verify_failed(C_A, rc, name, NULL);
		goto out;
	}
	INC(w_A);
	/* cur[] is what the current lists held just before A */
	staged_pending = true;
	stg_unknown = true;
	for (int b = 0; b < NBANKS; b++)
		known_cur[b].len = 0;
	for (int b = 0; b < NBANKS; b++)
		if (banks[b].present && !wread(b, true, &stg[b]))
			goto out;	/* taken as it is before D */
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		if (!stg[b].len || !starts_with(&stg[b], &cur[b]))
			fail("writer", "after A: the staged %s list (%zu bytes) does not start with the %zu bytes of the current list before",
			     banks[b].algo, stg[b].len, cur[b].len);
		buf_set(&known_stg[b], &stg[b]);
	}
	stg_unknown = false;
	wagree(stg, true, "after A");
	if (keep)
		INC(w_keep);
	else
		op_delete();
out:
	for (int b = 0; b < NBANKS; b++) {
		buf_free(&cur[b]);
		buf_free(&stg[b]);
	}
}

/*
 * --strict-n: a request the ABI's "decimal N" excludes but a lenient
 * parser reads as N = 1. Sent only here, right after the current list was
 * read, so that a record it deletes anyway is saved. True if it did.
 */
static bool strict_probe(void)
{
	unsigned int i = rnd_below(&wr, sizeof(lenient_one) / sizeof(lenient_one[0]));
	long len[NBANKS] = { 0 };
	const char *name;
	char b[64];
	int rc;

	INC(strict_probes);
	for (int k = 0; k < NBANKS; k++)
		if (banks[k].present)
			len[k] = prefix_bytes(&known_cur[k], banks[k].dsize, 1);
	rc = wcmd(false, lenient_one[i].s, lenient_one[i].n, &name);
	esc(b, sizeof(b), (const unsigned char *)lenient_one[i].s,
	    lenient_one[i].n, lenient_one[i].n);
	if (rc) {
		if (nomem(rc))
			INC(f_cmd[C_N]);
		else if (rc != EINVAL)
			fail("writer", "--strict-n: \"%s\" on %s: %s, expected EINVAL",
			     b, name, errname(rc));
		if (verify_failed(C_N, rc, name, len) <= 0)
			return false;
		INC(strict_accepted);	/* refused, but it cut one record */
		return true;
	}
	INC(strict_accepted);
	fail("writer", "--strict-n: \"%s\" on %s was accepted as N=1 (the record is saved)",
	     b, name);
	cut_front(len);
	return true;
}

/*
 * N on an original file: read the current lists, cut the first n records
 * of each bank (saved), check that exactly those went. With
 * ima_flush_htable N must be refused with EINVAL and change nothing.
 */
static void op_cut(void)
{
	struct buf cur[NBANKS] = { 0 };
	long avail, n, na, nb, len[NBANKS] = { 0 };
	const char *name;
	char req[32];
	int rc, digits, zeros;

	if (!wread_current(cur, "before N"))
		goto out;
	avail = nrec(&known_cur[0], banks[0].dsize);
	if (banks[1].present) {
		avail = agree(&known_cur[0], &known_cur[1], &na, &nb);
		if (avail < 0)
			goto out;
	}
	if (opt.strict_n && !opt.flush && avail > 0 && strict_probe())
		goto out;
	if (avail <= 0) {
		INC(w_N_none);
		goto out;
	}
	switch (rnd_below(&wr, 4)) {
	case 0: n = avail; break;
	case 1: n = 1; break;
	default: n = 1 + rnd_below(&wr, avail); break;
	}
	for (int b = 0; b < NBANKS; b++)
		if (banks[b].present)
			len[b] = prefix_bytes(&known_cur[b], banks[b].dsize, n);
	digits = snprintf(req, sizeof(req), "%ld", n);
	zeros = rnd_below(&wr, 4) ? 0 : rnd_below(&wr, REQ_MAX - digits);
	memset(req, '0', zeros);
	snprintf(req + zeros, sizeof(req) - zeros, "%ld\n", n);
	mal_burst(rnd_below(&wr, 8));
	rc = wcmd(false, req, strlen(req), &name);
	if (rc) {
		if (opt.flush && rc == EINVAL)
			INC(w_N_refused);
		else if (nomem(rc))
			INC(f_cmd[C_N]);
		else
			fail("writer", "N=%ld (\"%.*s\") on %s: %s, expected ok",
			     n, (int)strlen(req) - 1, req, name, errname(rc));
		if (verify_failed(C_N, rc, name, len) > 0)
			ADD(w_N_recs, n);	/* refused, but cut: saved */
		goto out;
	}
	if (opt.flush)
		fail("writer", "N=%ld on %s with ima_flush_htable: ok, expected EINVAL (the records are saved)",
		     n, name);
	INC(w_N);
	ADD(w_N_recs, n);
	cut_front(len);
	wread_current(cur, "after N");
out:
	for (int b = 0; b < NBANKS; b++)
		buf_free(&cur[b]);
}

/* While the writer holds the files, its own read-only open is EBUSY. */
static void own_probe(void)
{
	const struct lfile *l = &lf[rnd_below(&wr, nlf)];
	int fd = probe_open(l->path);

	if (fd >= 0) {
		close(fd);
		fail("writer", "its own read-only open of %s succeeded while it holds the files",
		     l->name);
	} else if (errno != EBUSY) {
		fail("writer", "its own read-only open of %s: %s, expected EBUSY",
		     l->name, errname(errno));
	} else {
		INC(w_own_busy);
	}
}

static void cycle(void)
{
	unsigned int r = rnd_below(&wr, 100);
	const char *name;
	int rc;

	INC(w_cycles);
	mal_burst(rnd_below(&wr, 32));
	if (rnd_below(&wr, 2))
		own_probe();
	if (staged_pending) {
		if (r < 30) {
			rc = wcmd(true, "A\n", 2, &name);
			if (rc == EEXIST)
				INC(w_A_exist);
			else if (nomem(rc))
				INC(f_cmd[C_A]);
			else
				fail("writer", "A on %s with records staged: %s, expected EEXIST",
				     name, errname(rc));
			if (rc)
				verify_failed(C_A, rc, name, NULL);
		} else if (r < 60) {
			op_cut();	/* cut the current list while staged */
		}
		if (!rnd_below(&wr, 4))
			mal_burst(rnd_below(&wr, 32));
		op_delete();
	} else if (r < 45) {
		op_stage(false);
	} else if (r < 60) {
		op_stage(true);
	} else if (r < 92) {
		op_cut();
	} else {
		rc = wcmd(true, "D\n", 2, &name);
		if (rc == ENOENT)
			INC(w_D_empty);
		else if (nomem(rc))
			INC(f_cmd[C_D]);
		else
			fail("writer", "D on %s with nothing staged: %s, expected ENOENT",
			     name, errname(rc));
		if (rc)
			verify_failed(C_D, rc, name, NULL);
	}
	mal_burst(rnd_below(&wr, 32));
}

/*
 * Hand the files to a forked child, which closes them last (partial: the
 * parent keeps some until the child is gone, and stays the writer).
 */
static void handoff_fork(bool partial)
{
	const char *probe = lf[probe_lf].path;
	int go[2], st, order[MAXFILES], first;
	pid_t pid;

	if (pipe2(go, O_CLOEXEC)) {
		if (fault_errno(errno))
			INC(f_own[FK_PIPE]);	/* the files are just closed */
		else
			fail("writer", "pipe: %s", errname(errno));
		wclose_all();
		return;
	}
	pid = fork();
	if (pid < 0) {
		if (fault_errno(errno))
			INC(f_own[FK_FORK]);
		else
			fail("writer", "fork: %s", errname(errno));
		close(go[0]);
		close(go[1]);
		wclose_all();
		return;
	}
	if (pid == 0) {
		char c;
		int fd;

		st = 0;
		close(go[1]);
		if (read(go[0], &c, 1) != 0)	/* EOF: the parent has closed */
			st |= 1;
		fd = probe_open(probe);
		if (fd >= 0) {
			st |= 2;
			close(fd);
		} else if (errno != EBUSY) {
			st |= 4;
		}
		for (int i = 0; i < nwf; i++)
			if (close(wf[i].fd))
				st |= 8;
		_exit(st);
	}
	close(go[0]);
	for (int i = 0; i < nwf; i++)
		order[i] = i;
	shuffle(order, nwf, &wr);
	first = partial && nwf > 1 ? 1 + (int)rnd_below(&wr, nwf - 1) : nwf;
	for (int i = 0; i < first; i++) {
		close(wf[order[i]].fd);
		wf[order[i]].fd = -1;
	}
	close(go[1]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("writer", "fork hand-off%s: the child %s%s%s%s (status %#x)",
		     partial ? " (partial)" : "",
		     WIFEXITED(st) && (WEXITSTATUS(st) & 1) ? "read no EOF; " : "",
		     WIFEXITED(st) && (WEXITSTATUS(st) & 2) ? "opened a reader beside the writer's files; " : "",
		     WIFEXITED(st) && (WEXITSTATUS(st) & 4) ? "got another error than EBUSY for a reader; " : "",
		     WIFEXITED(st) && (WEXITSTATUS(st) & 8) ? "could not close; " : "",
		     st);
	if (partial) {
		own_probe();	/* still the writer, with files left */
		INC(h_fork_partial);
	} else {
		INC(h_fork);
	}
	wclose_all();
}

/* Pass every file over the Unix socket; the receiver closes them last. */
static void handoff_scm(void)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * MAXFILES)];
	} u;
	char byte = 'f';
	unsigned char reply[2] = { 0, 0 };
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	int fds[MAXFILES], bad, t;
	ssize_t n;

	for (int i = 0; i < nwf; i++)
		fds[i] = wf[i].fd;
	memset(&u, 0, sizeof(u));
	m.msg_control = u.b;
	m.msg_controllen = CMSG_SPACE(sizeof(int) * nwf);
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * nwf);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * nwf);
	for (t = 0, n = -1; scm_sock >= 0; t++) {
		n = sendmsg(scm_sock, &m, MSG_NOSIGNAL);
		if (n == 1 || !fault_errno(errno) || t >= FAULT_RETRIES)
			break;
		INC(f_own[FK_SOCKET]);
		usleep(1000);
	}
	if (n != 1) {
		fail("writer", "SCM_RIGHTS send: %s", errname(errno));
		wclose_all();
		return;
	}
	wclose_all();
	for (t = 0;; t++) {
		n = recv(scm_sock, reply, 2, MSG_WAITALL);
		if (n >= 0 || !(errno == EINTR || fault_errno(errno)) ||
		    t >= FAULT_RETRIES)
			break;
	}
	bad = reply[0];
	if (opt.faults && (bad & 1)) {
		/* descriptors that could not be installed were dropped */
		INC(h_scm_trunc);
		bad &= ~3;
	}
	if (n != 2)
		fail("writer", "SCM_RIGHTS receiver: no reply");
	else if (bad)
		fail("writer", "SCM_RIGHTS receiver: %s%s%s%s%s(%s)",
		     bad & 1 ? "control data truncated; " : "",
		     bad & 2 ? "no descriptors; " : "",
		     bad & 4 ? "opened a reader beside the passed files; " : "",
		     bad & 8 ? "a reader open got another error than EBUSY; " : "",
		     bad & 16 ? "could not close; " : "",
		     errname(reply[1]));
	INC(h_scm);
}

/*
 * The receiver: for each message, check that a reader cannot open while
 * it holds the writer's files, close them, reply.
 */
static int receiver_main(int sock)
{
	const char *probe = lf[probe_lf].path;

	for (;;) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int) * MAXFILES)];
		} u;
		char byte;
		struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
		struct msghdr m = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = u.b,
			.msg_controllen = sizeof(u.b),
		};
		unsigned char reply[2] = { 0, 0 };
		int fds[MAXFILES], nfd = 0, fd, t;
		struct cmsghdr *cm;
		ssize_t n;

		memset(&u, 0, sizeof(u));
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR || fault_errno(errno)) {
				usleep(1000);
				continue;
			}
			return 3;
		}
		for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			size_t k;

			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (k > (size_t)(MAXFILES - nfd))
				k = MAXFILES - nfd;
			memcpy(fds + nfd, CMSG_DATA(cm), k * sizeof(int));
			nfd += k;
		}
		if (m.msg_flags & MSG_CTRUNC)
			reply[0] |= 1;
		if (!nfd)
			reply[0] |= 2;
		/*
		 * Under --faults, descriptors that could not be installed
		 * were dropped (MSG_CTRUNC): with none left, nothing to probe.
		 */
		fd = nfd || !opt.faults ? probe_open(probe) : -2;
		if (fd >= 0) {
			reply[0] |= 4;
			close(fd);
		} else if (fd == -1 && errno != EBUSY) {
			reply[0] |= 8;
			reply[1] = errno;
		}
		for (int i = 0; i < nfd; i++)
			if (close(fds[i]))
				reply[0] |= 16;
		for (t = 0; send(sock, reply, 2, MSG_NOSIGNAL) != 2; t++)
			if (!(errno == EINTR || fault_errno(errno)) ||
			    t >= FAULT_RETRIES)
				return 4;
	}
}

/*
 * Once every writer file is released, wherever the last release ran, the
 * mediation is idle: a reader open succeeds (no other writer exists).
 */
static void idle_check(const char *after)
{
	const struct lfile *l = &lf[rnd_below(&wr, nlf)];
	int fd = probe_open(l->path);

	if (fd < 0) {
		fail("writer", "a reader open of %s after %s: %s: the mediation did not return to idle",
		     l->name, after, errname(errno));
		return;
	}
	close(fd);
	INC(w_idle);
}

/* Close the files, or hand them off; the first cycles try every way. */
static void release(void)
{
	unsigned int r = ncycle <= 3 ? 67 + 10 * ncycle : rnd_below(&wr, 100);
	const char *kind;

	pthread_rwlock_wrlock(&wlock);
	wopen = false;		/* the helper threads leave the fds alone */
	pthread_rwlock_unlock(&wlock);
	if (r < 70) {
		wclose_all();
		INC(h_close);
		kind = "close";
	} else if (r < 80) {
		handoff_fork(false);
		kind = "a fork hand-off";
	} else if (r < 90) {
		handoff_fork(true);
		kind = "a partial fork hand-off";
	} else {
		handoff_scm();
		kind = "an SCM_RIGHTS hand-off";
	}
	nwf = 0;
	idle_check(kind);
}

/* Malformed writes through the writer's files from another thread. */
static void *flood_thread(void *arg)
{
	struct hctx *h = arg;
	struct mal m;
	ssize_t r;

	while (!__atomic_load_n(&helpers_stop, __ATOMIC_RELAXED)) {
		pthread_rwlock_rdlock(&wlock);
		if (!wopen) {
			pthread_rwlock_unlock(&wlock);
			usleep(300);
			continue;
		}
		int k = rnd_below(&h->r, nwf);

		gen(&h->r, &h->mb, lf[wf[k].lfi].staged, &m);
		r = write(wf[k].fd, m.p, m.len);
		mal_check(&m, r, r < 0 ? errno : 0, "writer-flood", wname(k));
		INC(mal_priv);
		pthread_rwlock_unlock(&wlock);
	}
	return NULL;
}

/*
 * Reads through the writer's descriptors at random offsets while the
 * writer thread writes commands: must be safe (what it reads is not
 * checked: a D may cut the list under it). Also, as another task of the
 * writer's process, a read-only open must get EBUSY.
 */
static void *shadow_thread(void *arg)
{
	struct hctx *h = arg;
	int rw[MAXFILES], n, fd;
	ssize_t got;

	while (!__atomic_load_n(&helpers_stop, __ATOMIC_RELAXED)) {
		pthread_rwlock_rdlock(&wlock);
		if (!wopen) {
			pthread_rwlock_unlock(&wlock);
			usleep(300);
			continue;
		}
		if (!rnd_below(&h->r, 32)) {
			const struct lfile *l = &lf[rnd_below(&h->r, nlf)];

			fd = probe_open(l->path);
			if (fd >= 0) {
				close(fd);
				fail("writer-thread", "a read-only open of %s by another thread of the writer succeeded while the writer holds the files",
				     l->name);
			} else if (errno != EBUSY) {
				fail("writer-thread", "read-only open of %s: %s, expected EBUSY",
				     l->name, errname(errno));
			} else {
				INC(w_helper_busy);
			}
		} else {
			n = 0;
			for (int i = 0; i < nwf; i++)
				if (wf[i].rdwr)
					rw[n++] = i;
			got = pread(wf[rw[rnd_below(&h->r, n)]].fd, h->tmp,
				    chunk(&h->r),
				    rnd_below(&h->r, 2) ? 0 : rnd_below(&h->r, 16384));
			INC(helper_preads);
			if (got < 0) {
				INC(helper_errs);
				__atomic_store_n(&sh->st.helper_last_err, errno,
						 __ATOMIC_RELAXED);
			}
		}
		pthread_rwlock_unlock(&wlock);
	}
	return NULL;
}

static void start_receiver(void)
{
	int sv[2];
	pid_t pid;

	if (RETRY(FK_SOCKET,
		  socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))) {
		fail("writer", "socketpair: %s", errname(errno));
		return;
	}
	pid = xfork();
	if (pid < 0) {
		fail("writer", "fork: %s", errname(errno));
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		_exit(receiver_main(sv[1]));
	}
	close(sv[1]);
	scm_sock = sv[0];
	receiver = pid;
}

static int writer_main(void)
{
	struct hctx hc[2];
	pthread_rwlockattr_t a;
	pthread_t th[2];
	char p[PATH_MAX];
	int st, e;

	signal(SIGPIPE, SIG_IGN);
	rng_init(&wr, opt.seed, 1);
	wtmp = xrealloc(NULL, CHUNK_MAX);
	malbuf_init(&wmb);
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		pathf(p, sizeof(p), "%s/saved.%s", opt.out, banks[b].algo);
		savefd[b] = RETRY(FK_WRITE, open(p, O_WRONLY | O_CREAT |
						 O_TRUNC | O_CLOEXEC, 0644));
		if (savefd[b] < 0) {
			fail("writer", "%s: %s", p, errname(errno));
			return 1;
		}
		buf_set(&known_cur[b], &init_cur[b]);
		buf_set(&known_stg[b], &init_stg[b]);
	}
	/* Records staged before the start are saved and deleted first. */
	staged_pending = init_stg[0].len > 0;
	start_receiver();
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&wlock, &a);
	for (int i = 0; i < 2; i++) {
		rng_init(&hc[i].r, opt.seed, 2 + i);
		malbuf_init(&hc[i].mb);
		hc[i].tmp = xrealloc(NULL, CHUNK_MAX);
		xthread(&th[i], i ? shadow_thread : flood_thread, &hc[i]);
	}
	while (!stopping() || staged_pending) {
		if (!wset_open()) {
			if (stopping())
				break;
			continue;
		}
		ncycle++;
		cycle();
		release();
		usleep(rnd_below(&wr, 3000));
	}
	__atomic_store_n(&helpers_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (staged_pending)
		fail("writer", "stopped with records staged and not deleted");
	if (scm_sock >= 0)
		close(scm_sock);	/* the receiver reads EOF and exits */
	if (receiver > 0) {
		while (waitpid(receiver, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			fail("writer", "the SCM_RIGHTS receiver ended with status %#x",
			     st);
	}
	if (opt.faults) {
		/* No more failures for the writer: its saved records now. */
		e = opt.root ? 0 : faults_off();
		if (e)
			fail("writer", "clearing its make-it-fail: %s", errname(e));
		for (int b = 0; b < NBANKS; b++) {
			if (!banks[b].present || !saved_mem[b].len)
				continue;
			e = write_all(savefd[b], saved_mem[b].p, saved_mem[b].len);
			if (e)
				fail("writer", "saving deleted %s records: %s",
				     banks[b].algo, errname(e));
		}
	}
	for (int b = 0; b < NBANKS; b++)
		if (savefd[b] >= 0 && close(savefd[b]))
			fail("writer", "closing saved.%s: %s", banks[b].algo,
			     errname(errno));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Start, final reads and the account                                  */

static FILE *report;
static int npass, nfail;

static void rep(const char *f, ...) __attribute__((format(printf, 1, 2)));
static void rep(const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vprintf(f, ap);
	va_end(ap);
	if (report) {
		va_start(ap, f);
		vfprintf(report, f, ap);
		va_end(ap);
	}
}

static void check(const char *name, bool ok, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static void check(const char *name, bool ok, const char *f, ...)
{
	char d[1024];
	va_list ap;

	va_start(ap, f);
	vsnprintf(d, sizeof(d), f, ap);
	va_end(ap);
	rep("CHECK %s %s  # %s\n", name, ok ? "PASS" : "FAIL", d);
	if (ok)
		npass++;
	else
		nfail++;
}

/* Open one file per bank and staged-ness with flags, all at once. */
static bool open_lists(int fd[NBANKS][2], int flags, const char *who)
{
	time_t t0 = time(NULL);
	bool first = true;

	memset(fd, 0xff, sizeof(int) * NBANKS * 2);
	for (int b = 0; b < NBANKS; b++) {
		for (int s = 0; s < 2 && banks[b].present; s++) {
			const struct lfile *l = &lf[banks[b].file[s]];

			for (;;) {
				fd[b][s] = open(l->path, flags | O_CLOEXEC);
				if (fd[b][s] >= 0 || errno != EBUSY || !first ||
				    time(NULL) - t0 > OPEN_TIMEOUT)
					break;
				usleep(1000);
			}
			if (fd[b][s] < 0) {
				fail(who, "open %s: %s", l->name, errname(errno));
				for (int c = 0; c < NBANKS; c++)
					for (int t = 0; t < 2; t++)
						if (fd[c][t] >= 0)
							close(fd[c][t]);
				return false;
			}
			first = false;
		}
	}
	return true;
}

static void close_lists(int fd[NBANKS][2])
{
	for (int b = 0; b < NBANKS; b++)
		for (int s = 0; s < 2; s++)
			if (fd[b][s] >= 0)
				close(fd[b][s]);
}

static int read_whole(int fd, struct buf *b, struct rng *r, unsigned char *tmp)
{
	b->len = 0;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return errno;
	return read_chunks(fd, b, r, tmp, 0, NULL);
}

/* The lists at start, as a reader (nothing can be deleted meanwhile). */
static void initial_snapshot(void)
{
	unsigned char *tmp = xrealloc(NULL, CHUNK_MAX);
	int fd[NBANKS][2], e = 0;
	struct rng r;
	char p[PATH_MAX];

	rng_init(&r, opt.seed, 5);
	if (!open_lists(fd, O_RDONLY, "start"))
		die("cannot open the lists at start");
	for (int b = 0; b < NBANKS && !e; b++) {
		if (!banks[b].present)
			continue;
		e = read_whole(fd[b][1], &init_stg[b], &r, tmp);
		if (!e)
			e = read_whole(fd[b][0], &init_cur[b], &r, tmp);
	}
	close_lists(fd);
	if (e)
		die("reading the lists at start: %s", errname(e));
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		if (nrec(&init_stg[b], banks[b].dsize) < 0 ||
		    nrec(&init_cur[b], banks[b].dsize) < 0)
			fail("start", "the %s lists at start are malformed",
			     banks[b].algo);
		pathf(p, sizeof(p), "%s/initial.%s", opt.out, banks[b].algo);
		e = write_file(p, &init_stg[b], &init_cur[b], NULL);
		if (e)
			die("%s: %s", p, errname(e));
	}
	free(tmp);
}

static bool read_pcr10(const char *algo, char *out, size_t n)
{
	char p[PATH_MAX];
	ssize_t r;
	int fd;

	pathf(p, sizeof(p), "%s/pcr-%s/10", opt.tpm, algo);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	r = read(fd, out, n - 1);
	close(fd);
	if (r <= 0)
		return false;
	out[r] = '\0';
	out[strcspn(out, " \n")] = '\0';
	return out[0] != '\0';
}

struct final {
	struct buf stg[NBANKS], cur[NBANKS];
	char pcr[NBANKS][160];
	bool pcr_ok, stable, opened, own_busy;
};

/*
 * The lists at the end, as the writer (so that the writer can still open),
 * and PCR 10 right after them; both read again, to be sure that nothing
 * was added in between and no record was in the list but not yet in the
 * PCR (then PCR 10 goes with the lists).
 */
static void final_read(struct final *f)
{
	unsigned char *tmp = xrealloc(NULL, CHUNK_MAX);
	struct buf again = { 0 };
	int fd[NBANKS][2], e = 0, ro;
	struct rng r;

	rng_init(&r, opt.seed, 6);
	f->opened = open_lists(fd, O_RDWR, "end");
	if (!f->opened) {
		free(tmp);
		return;
	}
	ro = open(lf[probe_lf].path, O_RDONLY | O_CLOEXEC);
	f->own_busy = ro < 0 && errno == EBUSY;
	if (ro >= 0)
		close(ro);
	for (int t = 0; t < 10 && !f->stable && !e; t++) {
		f->stable = f->pcr_ok = true;
		for (int b = 0; b < NBANKS && !e; b++) {
			if (!banks[b].present)
				continue;
			e = read_whole(fd[b][1], &f->stg[b], &r, tmp);
			if (!e)
				e = read_whole(fd[b][0], &f->cur[b], &r, tmp);
		}
		for (int b = 0; b < NBANKS && !e; b++)
			if (banks[b].present)
				f->pcr_ok &= read_pcr10(banks[b].algo, f->pcr[b],
							sizeof(f->pcr[b]));
		for (int b = 0; b < NBANKS && !e; b++) {
			char pcr[160];

			if (!banks[b].present)
				continue;
			e = read_whole(fd[b][0], &again, &r, tmp);
			f->stable &= buf_eq(&again, &f->cur[b]);
			f->stable &= !f->pcr_ok ||
				     (read_pcr10(banks[b].algo, pcr, sizeof(pcr)) &&
				      !strcmp(pcr, f->pcr[b]));
		}
	}
	if (e) {
		fail("end", "reading the lists: %s", errname(e));
		f->stable = false;
	}
	close_lists(fd);
	buf_free(&again);
	free(tmp);
}

/* Every list file opens for reading (nobody holds it as the writer). */
static int readers_open_all(void)
{
	int bad = 0, fd;

	for (int i = 0; i < nlf; i++) {
		fd = open(lf[i].path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fail("end", "reader open of %s: %s", lf[i].name,
			     errname(errno));
			bad++;
		} else {
			close(fd);
		}
	}
	return bad;
}

/* Digests of an adder's contents, sorted, to find a record's content. */
struct didx {
	unsigned char d[DMAX];
	long seq;
};

static struct didx *dindex[MAXTHREADS][2];

static int cmp_didx(const void *a, const void *b)
{
	return memcmp(((const struct didx *)a)->d, ((const struct didx *)b)->d,
		      DMAX);
}

static void build_index(void)
{
	for (int t = 0; t < opt.adders; t++) {
		struct adder *a = &adders[t];

		for (int k = 0; k < 2; k++) {
			dindex[t][k] = xzalloc((a->n + 1) * sizeof(struct didx));
			for (unsigned long s = 0; s < a->n; s++) {
				memcpy(dindex[t][k][s].d, k ? a->d2[s] : a->d1[s],
				       k ? 32 : 20);
				dindex[t][k][s].seq = s;
			}
			qsort(dindex[t][k], a->n, sizeof(struct didx), cmp_didx);
		}
	}
}

enum { R_OTHER, R_OURS, R_OURS_UNKNOWN, R_OURS_UNPARSED };

/*
 * Whether a record (l bytes) names one of this run's files, and then which
 * content: an ima-ng style template (data: u32-sized fields, the first
 * "ALGO:\0DIGEST", the second the file name).
 */
static int rec_ours(const unsigned char *p, size_t l, size_t dsize, int *t,
		    long *seq)
{
	const unsigned char *q = p + 4 + dsize, *end = p + l, *d, *m, *colon;
	struct didx key = { 0 }, *hit;
	uint32_t nl, f1, f2;
	size_t dl;
	char num[16];
	int k = 0;

	if (!memmem(q, end - q, token, toklen))
		return R_OTHER;
	memcpy(&nl, q, 4);
	q += 4 + nl;
	if (nl == 3 && !memcmp(q - 3, "ima", 3))
		return R_OURS_UNPARSED;
	q += 4;			/* template data length */
	if (end - q < 4)
		return R_OURS_UNPARSED;
	memcpy(&f1, q, 4);
	q += 4;
	if ((size_t)(end - q) < f1)
		return R_OURS_UNPARSED;
	d = q;
	q += f1;
	if (end - q < 4)
		return R_OURS_UNPARSED;
	memcpy(&f2, q, 4);
	q += 4;
	if ((size_t)(end - q) < f2)
		return R_OURS_UNPARSED;
	m = memmem(q, f2, token, toklen);
	if (!m)
		return R_OURS_UNPARSED;
	m += toklen;
	while (m < q + f2 && isdigit(*m) && k < (int)sizeof(num) - 1)
		num[k++] = *m++;
	num[k] = '\0';
	if (!k || (m < q + f2 && *m != '\0'))
		return R_OURS_UNPARSED;
	*t = atoi(num);
	if (*t >= opt.adders)
		return R_OURS_UNPARSED;
	colon = memchr(d, ':', f1);
	if (!colon || colon + 1 >= d + f1 || colon[1] != '\0')
		return R_OURS_UNPARSED;
	dl = d + f1 - (colon + 2);
	if (colon - d == 4 && !memcmp(d, "sha1", 4) && dl == 20)
		k = 0;
	else if (colon - d == 6 && !memcmp(d, "sha256", 6) && dl == 32)
		k = 1;
	else
		return R_OURS_UNPARSED;
	memcpy(key.d, colon + 2, dl);
	hit = bsearch(&key, dindex[*t][k], adders[*t].n, sizeof(key), cmp_didx);
	if (!hit)
		return R_OURS_UNKNOWN;
	*seq = hit->seq;
	return R_OURS;
}

struct acc {
	long total, viol, viol_after, other, ours, unknown, unparsed, ours_viol;
	long missing, dup, never_read, disorder, dup_other, dup_ours;
	long malformed;
	long unknown_found;	/* contents whose read open failed, found */
};

struct rref {
	uint64_t h;
	size_t off, len;
	bool ours;
};

static int cmp_rref(const void *a, const void *b)
{
	uint64_t x = ((const struct rref *)a)->h, y = ((const struct rref *)b)->h;

	return x < y ? -1 : x > y;
}

/*
 * One bank's full history (saved ++ staged ++ current at the end): which
 * records are this run's, each content of each adder found exactly once
 * (at most once with --faults) and in order, and duplicates: two records with the same PCR, template
 * digest, name and data are the same bytes (violations, with an all-zero
 * digest, may repeat and are left out).
 */
static void account(const struct buf *full, int b, long init_n, struct acc *a)
{
	size_t dsize = banks[b].dsize, off = 0;
	unsigned char *occ[MAXTHREADS], zero[64] = { 0 };
	long last[MAXTHREADS], seq = 0, l, nr = 0;
	struct rref *rr;
	int t = 0, kind;

	*a = (struct acc){ 0 };
	/* at most one record per 13 + dsize bytes (the smallest record) */
	rr = xzalloc((full->len / (13 + dsize) + 1) * sizeof(*rr));
	for (int i = 0; i < opt.adders; i++) {
		occ[i] = xzalloc(adders[i].n + 1);
		last[i] = -1;
	}
	while (off < full->len) {
		const unsigned char *p = full->p + off;
		bool viol;
		uint64_t h = 0xcbf29ce484222325ULL;

		l = rec_len(p, full->len - off, dsize);
		if (l < 0) {
			a->malformed = 1;
			break;
		}
		viol = !memcmp(p + 4, zero, dsize);
		kind = rec_ours(p, l, dsize, &t, &seq);
		if (viol) {
			a->viol++;
			a->viol_after += a->total >= init_n;
			a->ours_viol += kind != R_OTHER;
		} else if (kind == R_OTHER) {
			a->other += a->total >= init_n;
		} else if (kind == R_OURS) {
			a->ours++;
			if (occ[t][seq] < 255)
				occ[t][seq]++;
			a->disorder += seq <= last[t];
			last[t] = seq;
		} else if (kind == R_OURS_UNKNOWN) {
			a->unknown++;
		} else {
			a->unparsed++;
		}
		if (!viol) {
			for (long i = 0; i < l; i++)
				h = (h ^ p[i]) * 0x100000001b3ULL;
			rr[nr++] = (struct rref){ h, off, l, kind != R_OTHER };
		}
		off += l;
		a->total++;
	}
	for (int i = 0; i < opt.adders; i++) {
		for (unsigned long s = 0; s < adders[i].n; s++) {
			unsigned char st = adders[i].st[s];

			if (st == ST_READ && !occ[i][s])
				a->missing++;
			if (st == ST_UNKNOWN && occ[i][s])
				a->unknown_found++;
			if (occ[i][s] > 1)
				a->dup++;
			if (st == ST_NONE && occ[i][s])
				a->never_read++;
		}
		free(occ[i]);
	}
	qsort(rr, nr, sizeof(*rr), cmp_rref);
	for (long i = 1; i < nr; i++) {
		if (rr[i].h != rr[i - 1].h || rr[i].len != rr[i - 1].len ||
		    memcmp(full->p + rr[i].off, full->p + rr[i - 1].off,
			   rr[i].len))
			continue;
		if (rr[i].ours)
			a->dup_ours++;
		else
			a->dup_other++;
	}
	free(rr);
}

static void errno_line(const char *what, int k)
{
	char line[1024];
	int o = 0;

	for (int e = 0; e < NERR; e++) {
		long v = __atomic_load_n(&sh->err[k][e], __ATOMIC_RELAXED);

		if (v && o < (int)sizeof(line) - 40)
			o += snprintf(line + o, sizeof(line) - o, " %s=%ld",
				      e ? errname(e) : "other", v);
	}
	line[o] = '\0';
	rep("errnos %s:%s\n", what, o ? line : " none");
}

/* Wait for a worker process; kill it by its pid after the timeout. */
static bool reap(pid_t pid, const char *who)
{
	int st;

	for (int i = 0; i < EXIT_TIMEOUT * 10; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			if (WIFEXITED(st) && !WEXITSTATUS(st))
				return true;
			fail(who, "exited with status %#x", st);
			return false;
		}
		if (r < 0 && errno != EINTR) {
			fail(who, "waitpid: %s", errname(errno));
			return false;
		}
		usleep(100000);
	}
	fail(who, "still running %d s after the stop: killed", EXIT_TIMEOUT);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return false;
}

static void mkdir_p(const char *path)
{
	char p[PATH_MAX];

	pathf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	if (mkdir(p, 0755) && errno != EEXIST)
		die("mkdir %s: %s", p, strerror(errno));
}

static void usage(FILE *f, int status)
{
	fprintf(f,
		"usage: ima-stress [--seconds N] [--seed N] [--out DIR] [--scratch DIR]\n"
		"                  [--flush] [--strict-n] [--adders N] [--readers N]\n"
		"                  [--min-malformed N] [--faults]\n"
		"  --seconds N        how long the workers run (default 60)\n"
		"  --seed N           seed of every thread's operation mix (default: from\n"
		"                     the time; printed first as seed=N)\n"
		"  --out DIR          saved records, full.sha1/full.sha256 (+ .pcr10),\n"
		"                     report.txt, failures.txt (default /tmp/ima-stress)\n"
		"  --scratch DIR      where the adders' files are measured: a file system\n"
		"                     the policy measures, not tmpfs (default OUT/scratch)\n"
		"  --flush            booted with ima_flush_htable: N must fail with EINVAL,\n"
		"                     the writer deletes with A/D only\n"
		"  --strict-n         also send \"+1\", \"1\\n\\n\", \"1\\0x\" ... and expect EINVAL\n"
		"                     (the ABI says decimal N; a lenient parser accepts them)\n"
		"  --adders N         adder threads (default 2)\n"
		"  --readers N        reader threads (default 4)\n"
		"  --min-malformed N  fail unless at least N malformed writes were made\n"
		"  --faults           allocation failures injected (guest/stress.sh --faults\n"
		"                     sets up failslab and fail_page_alloc in debugfs): mark\n"
		"                     this process make-it-fail for the run, tolerate and\n"
		"                     count its own ENOMEMs, allow an add to leave no record\n"
		"                     (at most once), check that failed commands changed\n"
		"                     nothing; unmarked for the final phase\n");
	exit(status);
}

static unsigned long long num_arg(const char *s, unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s || *s == '-' || v > max) {
		fprintf(stderr, "ima-stress: bad number '%s'\n", s);
		usage(stderr, 2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "seconds", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "scratch", required_argument, NULL, 'c' },
		{ "flush", no_argument, NULL, 'f' },
		{ "strict-n", no_argument, NULL, 'n' },
		{ "adders", required_argument, NULL, 'a' },
		{ "readers", required_argument, NULL, 'r' },
		{ "min-malformed", required_argument, NULL, 'm' },
		{ "faults", no_argument, NULL, 'F' },
		{ "root", required_argument, NULL, 'R' },	/* tests */
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool seeded = false;
	int o;

	while ((o = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (o) {
		case 't':
			opt.seconds = num_arg(optarg, 86400);
			if (!opt.seconds)
				usage(stderr, 2);
			break;
		case 's':
			opt.seed = num_arg(optarg, ULLONG_MAX);
			seeded = true;
			break;
		case 'o':
			opt.out = optarg;
			break;
		case 'c':
			opt.scratch = optarg;
			break;
		case 'f':
			opt.flush = true;
			break;
		case 'n':
			opt.strict_n = true;
			break;
		case 'a':
			opt.adders = num_arg(optarg, MAXTHREADS);
			if (!opt.adders)
				usage(stderr, 2);
			break;
		case 'r':
			opt.readers = num_arg(optarg, MAXTHREADS);
			break;
		case 'm':
			opt.min_malformed = num_arg(optarg, LONG_MAX);
			break;
		case 'F':
			opt.faults = true;
			break;
		case 'R':
			/* a directory of stand-in files instead of securityfs */
			opt.dir = optarg;
			opt.root = true;
			pathf(opt.tpm, sizeof(opt.tpm), "%s/tpm0", optarg);
			break;
		case 'h':
			usage(stdout, 0);
			break;
		default:
			usage(stderr, 2);
		}
	}
	if (optind != argc)
		usage(stderr, 2);
	if (!seeded)
		opt.seed = (unsigned long long)time(NULL) ^
			   ((unsigned long long)getpid() << 20);
}

int main(int argc, char **argv)
{
	static char scratch[PATH_MAX], p[PATH_MAX];
	struct buf saved[NBANKS] = { 0 }, full[NBANKS] = { 0 };
	struct buf init_all[NBANKS] = { 0 };
	struct acc acc[NBANKS];
	struct final fin = { 0 };
	pid_t writer, unpriv[2];
	bool writer_ok, unpriv_ok[2], threads_ok = true;
	struct statfs sf;
	struct timespec ts;
	time_t t0;
	long init_n, bad_open, e;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("seed=%llu\n", opt.seed);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	memset(sh, 0, sizeof(*sh));
	signal(SIGPIPE, SIG_IGN);
	mkdir_p(opt.out);
	if (!opt.scratch) {
		pathf(scratch, sizeof(scratch), "%s/scratch", opt.out);
		opt.scratch = scratch;
	}
	mkdir_p(opt.scratch);
	pathf(p, sizeof(p), "%s/failures.txt", opt.out);
	failfd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (!statfs(opt.scratch, &sf) && sf.f_type == TMPFS_MAGIC)
		printf("# warning: scratch %s is tmpfs, not measured by the tcb policy\n",
		       opt.scratch);
	scan_dir();
	snprintf(token, sizeof(token), "ima-stress-%ld-a", (long)getpid());
	toklen = strlen(token);
	initial_snapshot();
	init_n = nrec(&init_stg[0], 20) + nrec(&init_cur[0], 20);
	printf("# ima-stress: dir=%s seconds=%lu flush=%c strict-n=%c faults=%c adders=%d readers=%d banks=sha1%s files=%d counters=%d initial-records=%ld (staged %ld) out=%s scratch=%s token=%s\n",
	       opt.dir, opt.seconds, opt.flush ? 'y' : 'n',
	       opt.strict_n ? 'y' : 'n', opt.faults ? 'y' : 'n', opt.adders,
	       opt.readers, banks[1].present ? ",sha256" : "", nlf, nctr,
	       init_n, nrec(&init_stg[0], 20), opt.out, opt.scratch, token);
	/* From here on, with --faults, allocations of every task may fail. */
	if (opt.faults)
		faults_on();
	fflush(stdout);

	/* Processes first, threads after (no fork of a threaded process). */
	writer = xfork();
	if (writer < 0)
		die("fork: %s", strerror(errno));
	if (writer == 0)
		_exit(writer_main());
	for (int m = 0; m < 2; m++) {
		unpriv[m] = xfork();
		if (unpriv[m] < 0)
			die("fork: %s", strerror(errno));
		if (unpriv[m] == 0)
			_exit(unpriv_main(m));
	}
	for (int i = 0; i < nctr; i++)
		xthread(&counter_th[i], counter_thread, (void *)(intptr_t)i);
	for (int i = 0; i < opt.adders; i++) {
		adders[i].id = i;
		rng_init(&adders[i].r, opt.seed, 100 + i);
		pathf(adders[i].path, sizeof(adders[i].path), "%s/%s%d",
		      opt.scratch, token, i);
		xthread(&adders[i].th, adder_thread, &adders[i]);
	}
	for (int i = 0; i < opt.readers; i++) {
		rng_init(&readers[i].r, opt.seed, 200 + i);
		readers[i].tmp = xrealloc(NULL, CHUNK_MAX);
		xthread(&readers[i].th, reader_thread, &readers[i]);
	}

	t0 = time(NULL);
	for (unsigned long s = 1; s <= opt.seconds; s++) {
		sleep(1);
		if (s % 10 && s != opt.seconds)
			continue;
		printf("# t=%lds adds=%ld reads=%ld A=%ld D=%ld N=%ld malformed=%ld ebusy=%ld fails=%ld\n",
		       (long)(time(NULL) - t0), GET(adds),
		       GET(rd_full[0][0]) + GET(rd_full[0][1]) +
		       GET(rd_full[1][0]) + GET(rd_full[1][1]),
		       GET(w_A), GET(w_D), GET(w_N),
		       GET(mal_priv) + GET(mal_unpriv),
		       GET(rd_busy) + GET(w_busy) + GET(un_busy),
		       __atomic_load_n(&sh->fails, __ATOMIC_RELAXED));
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += EXIT_TIMEOUT;
	for (int i = 0; i < opt.adders; i++)
		threads_ok &= !pthread_timedjoin_np(adders[i].th, NULL, &ts);
	for (int i = 0; i < opt.readers; i++)
		threads_ok &= !pthread_timedjoin_np(readers[i].th, NULL, &ts);
	for (int i = 0; i < nctr; i++)
		threads_ok &= !pthread_timedjoin_np(counter_th[i], NULL, &ts);
	writer_ok = reap(writer, "writer");
	for (int m = 0; m < 2; m++)
		unpriv_ok[m] = reap(unpriv[m], m ? "unpriv-nocap" : "unpriv-nobody");
	/* The final phase runs without injected failures. */
	faults_end();

	/* Everything stopped: read what was saved, then the live lists. */
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		pathf(p, sizeof(p), "%s/saved.%s", opt.out, banks[b].algo);
		e = read_file(p, &saved[b]);
		if (e)
			fail("end", "%s: %s", p, errname(e));
	}
	bad_open = readers_open_all();
	final_read(&fin);
	bad_open += readers_open_all();
	for (int b = 0; b < NBANKS; b++) {
		buf_add(&full[b], saved[b].p, saved[b].len);
		buf_add(&full[b], fin.stg[b].p, fin.stg[b].len);
		buf_add(&full[b], fin.cur[b].p, fin.cur[b].len);
		buf_add(&init_all[b], init_stg[b].p, init_stg[b].len);
		buf_add(&init_all[b], init_cur[b].p, init_cur[b].len);
		pathf(p, sizeof(p), "%s/full.%s", opt.out, banks[b].algo);
		e = write_file(p, &full[b], NULL, NULL);
		if (e)
			fail("end", "%s: %s", p, errname(e));
		pathf(p, sizeof(p), "%s/full.%s.pcr10", opt.out, banks[b].algo);
		if (banks[b].present && fin.pcr_ok) {
			struct buf v = { 0 };

			buf_add(&v, fin.pcr[b], strlen(fin.pcr[b]));
			buf_add(&v, "\n", 1);
			e = write_file(p, &v, NULL, NULL);
			if (e)
				fail("end", "%s: %s", p, errname(e));
			buf_free(&v);
		} else {
			unlink(p);
		}
	}
	build_index();
	for (int b = 0; b < NBANKS; b++)
		if (banks[b].present)
			account(&full[b], b, init_n, &acc[b]);

	pathf(p, sizeof(p), "%s/report.txt", opt.out);
	report = fopen(p, "w");
	rep("=== ima-stress account: seed=%llu seconds=%lu flush=%c dir=%s faults=%c\n",
	    opt.seed, opt.seconds, opt.flush ? 'y' : 'n', opt.dir,
	    opt.faults ? 'y' : 'n');
	rep("adds: %ld records created (%ld errors) by %d adders\n", GET(adds),
	    GET(add_errors), opt.adders);
	rep("reads (full/partial): binary-current=%ld/%ld binary-staged=%ld/%ld ascii-current=%ld/%ld ascii-staged=%ld/%ld\n",
	    GET(rd_full[1][0]), GET(rd_part[1][0]), GET(rd_full[1][1]),
	    GET(rd_part[1][1]), GET(rd_full[0][0]), GET(rd_part[0][0]),
	    GET(rd_full[0][1]), GET(rd_part[0][1]));
	rep("reads: bank-pairs=%ld pread-checks=%ld bytes=%ld backoffs=%ld\n",
	    GET(rd_pairs), GET(rd_preads), GET(rd_bytes), GET(rd_backoff));
	rep("counter reads:");
	for (int i = 0; i < nctr; i++)
		rep(" %s=%ld", ctr[i].name, GET(cnt_reads[i]));
	rep("\n");
	rep("writer: cycles=%ld A=%ld (ENOENT empty=%ld, EEXIST probes=%ld) staged-kept=%ld D=%ld (records=%ld, ENOENT probes=%ld, ENOMEM=%ld)\n",
	    GET(w_cycles), GET(w_A), GET(w_A_empty), GET(w_A_exist), GET(w_keep),
	    GET(w_D), GET(w_D_recs), GET(w_D_empty), GET(w_D_nomem));
	rep("writer: N=%ld records-cut=%ld refused(flush)=%ld nothing-to-cut=%ld strict-probes=%ld (accepted %ld)\n",
	    GET(w_N), GET(w_N_recs), GET(w_N_refused), GET(w_N_none),
	    GET(strict_probes), GET(strict_accepted));
	rep("hand-offs: close=%ld fork=%ld fork-partial=%ld scm-rights=%ld idle-checks=%ld own-reader-EBUSY=%ld thread-reader-EBUSY=%ld\n",
	    GET(h_close), GET(h_fork), GET(h_fork_partial), GET(h_scm),
	    GET(w_idle), GET(w_own_busy), GET(w_helper_busy));
	rep("writer-thread reads through the writer's fds: %ld (errors %ld, last %s; not checked: a command may cut the list under them)\n",
	    GET(helper_preads), GET(helper_errs),
	    GET(helper_errs) ? errname(GET(helper_last_err)) : "none");
	rep("malformed writes: privileged=%ld unprivileged=%ld total=%ld accepted=%ld wrong-errno=%ld (redrawn as real commands: %ld)\n",
	    GET(mal_priv), GET(mal_unpriv), GET(mal_priv) + GET(mal_unpriv),
	    GET(mal_ok), GET(mal_badno), GET(mal_regen));
	errno_line("privileged", 0);
	errno_line("unprivileged", 1);
	rep("EBUSY retries: readers=%ld writer=%ld unprivileged-reader=%ld\n",
	    GET(rd_busy), GET(w_busy), GET(un_busy));
	rep("failed commands, lists re-read after them: %ld (unchanged %ld, done anyway %ld, changed otherwise %ld, unreadable %ld)\n",
	    GET(v_runs), GET(v_same), GET(v_done), GET(v_changed),
	    GET(v_skipped));
	if (opt.faults && fi.skipped) {
		rep("faults: --root: make-it-fail not set, nothing injected (skipped)\n");
	} else if (opt.faults) {
		char b[8][24];

		rep("faults: make-it-fail %s, cleared for the final phase: %s; injected failures: failslab %s, fail_page_alloc %s (probability %s%%/%s%%, interval %s/%s; debugfs \"times\" counted down)\n",
		    fi.marked ? "set" : fi.mark_err ? errname(fi.mark_err) : "not read back",
		    fi.cleared ? "yes" : fi.clear_err ? errname(fi.clear_err) : "not read back as 0",
		    llstr(b[0], fi_injected(0) < 0 ? LLONG_MIN : fi_injected(0)),
		    llstr(b[1], fi_injected(1) < 0 ? LLONG_MIN : fi_injected(1)),
		    llstr(b[2], fi.prob[0]), llstr(b[3], fi.prob[1]),
		    llstr(b[4], fi.interval[0]), llstr(b[5], fi.interval[1]));
	}
	if (opt.faults) {
		rep("faults: refused for memory, tolerated: list opens=%ld (writer's, each opened again: %ld) list reads=%ld (dropped, read again) counter reads=%ld commands A=%ld D=%ld N=%ld (lists re-read) malformed writes ENOMEM=%ld unprivileged opens/reads=%ld probe opens again=%ld SCM_RIGHTS truncated=%ld adder file I/O=%ld\n",
		    GET(f_list_open), GET(f_wopen), GET(f_list_read),
		    GET(f_counter), GET(f_cmd[C_A]), GET(f_cmd[C_D]),
		    GET(f_cmd[C_N]), GET(mal_nomem), GET(f_unpriv),
		    GET(f_probe), GET(h_scm_trunc), GET(f_adder_io));
		rep("faults: own operations refused and retried (or skipped: a hand-off's pipe or fork):");
		for (int k = 0; k < FK_N; k++)
			rep(" %s=%ld", fk_name[k], GET(f_own[k]));
		rep("\n");
		errno_line("adder file I/O under faults", 2);
	}
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		rep("%s: full=%ld records = initial %ld + created %ld + other %ld + violations %ld%s; saved %ld (file %ld), end staged %ld, end current %ld\n",
		    banks[b].algo, acc[b].total, init_n, acc[b].ours,
		    acc[b].other, acc[b].viol_after,
		    acc[b].unknown + acc[b].unparsed ? " + unidentified of ours" : "",
		    GET(saved_recs[b]), nrec(&saved[b], banks[b].dsize),
		    nrec(&fin.stg[b], banks[b].dsize),
		    nrec(&fin.cur[b], banks[b].dsize));
	}
	rep("failures during the run: %ld (FAIL lines above, first %d kept in %s/failures.txt)\n",
	    __atomic_load_n(&sh->fails, __ATOMIC_RELAXED), FAIL_PRINT, opt.out);

	/* The checks. */
	check("run_failures", !__atomic_load_n(&sh->fails, __ATOMIC_RELAXED),
	      "%ld failures seen by the workers during the run",
	      __atomic_load_n(&sh->fails, __ATOMIC_RELAXED));
	check("workers_exited", writer_ok && unpriv_ok[0] && unpriv_ok[1] &&
	      threads_ok, "writer=%s unpriv-nobody=%s unpriv-nocap=%s threads=%s",
	      writer_ok ? "ok" : "bad", unpriv_ok[0] ? "ok" : "bad",
	      unpriv_ok[1] ? "ok" : "bad", threads_ok ? "ok" : "stuck");
	check("progress", GET(adds) > 0 && GET(rd_full[1][0]) > 0 &&
	      GET(w_A) > 0 && GET(w_D) > 0 && (opt.flush || GET(w_N) > 0) &&
	      GET(mal_priv) > 0 && GET(mal_unpriv) > 0 &&
	      GET(h_fork) > 0 && GET(h_fork_partial) > 0 && GET(h_scm) > 0,
	      "adds=%ld binary-current-reads=%ld A=%ld D=%ld N=%ld%s malformed=%ld/%ld fork=%ld fork-partial=%ld scm=%ld",
	      GET(adds), GET(rd_full[1][0]), GET(w_A), GET(w_D), GET(w_N),
	      opt.flush ? " (not needed with --flush)" : "", GET(mal_priv),
	      GET(mal_unpriv), GET(h_fork), GET(h_fork_partial), GET(h_scm));
	check("malformed_refused", GET(mal_ok) == 0 && GET(mal_badno) == 0 &&
	      GET(mal_priv) > 0 && GET(mal_unpriv) > 0,
	      "%ld privileged + %ld unprivileged malformed writes, %ld accepted, %ld with an error the ABI does not allow",
	      GET(mal_priv), GET(mal_unpriv), GET(mal_ok), GET(mal_badno));
	e = GET(mal_priv) + GET(mal_unpriv);
	if (opt.min_malformed)
		check("malformed_volume", e >= opt.min_malformed,
		      "%ld malformed writes, at least %ld wanted", e,
		      opt.min_malformed);
	else
		rep("INFO malformed volume: %ld in %lu s (the issue asks >= 100000 over a run: %s)\n",
		    e, opt.seconds, e >= 100000L ? "met" : "NOT met");
	for (int b = 0; b < NBANKS; b++) {
		long ns = nrec(&saved[b], banks[b].dsize);

		if (!banks[b].present)
			continue;
		pathf(p, sizeof(p), "saved_%s", banks[b].algo);
		check(p, ns >= 0 && (long)saved[b].len == GET(saved_bytes[b]) &&
		      ns == GET(saved_recs[b]) &&
		      ns == GET(w_D_recs) + GET(w_N_recs) + GET(strict_accepted),
		      "saved.%s: %zu bytes, %ld records; the writer saved %ld bytes, %ld records; it deleted %ld with D + %ld with N + %ld by --strict-n probes",
		      banks[b].algo, saved[b].len, ns, GET(saved_bytes[b]),
		      GET(saved_recs[b]), GET(w_D_recs), GET(w_N_recs),
		      GET(strict_accepted));
	}
	check("end_read", fin.opened && fin.pcr_ok && fin.stable,
	      "the lists read at the end as the writer: %s; PCR 10 %s; %s",
	      fin.opened ? "ok" : "could not open",
	      fin.pcr_ok ? "read" : "unreadable",
	      fin.stable ? "unchanged across the PCR read" : "kept changing");
	check("mediation_idle_at_end", !bad_open && fin.opened && fin.own_busy,
	      "after the run: %ld failed reader opens (before and after), writer open %s, its own reader open %s",
	      bad_open, fin.opened ? "ok" : "failed",
	      fin.own_busy ? "EBUSY" : "not EBUSY");
	if (banks[1].present) {
		long na, nb, k = agree(&full[0], &full[1], &na, &nb);

		check("banks_agree", k >= 0 && k == na && na == nb,
		      "full.sha1 %ld records, full.sha256 %ld, %ld the same events in the same order",
		      na, nb, k);
	}
	for (int b = 0; b < NBANKS; b++) {
		if (!banks[b].present)
			continue;
		pathf(p, sizeof(p), "initial_prefix_%s", banks[b].algo);
		check(p, starts_with(&full[b], &init_all[b]),
		      "the %zu bytes of the lists at start (staged ++ current) begin full.%s",
		      init_all[b].len, banks[b].algo);
		/*
		 * --faults: an add may leave no record (the kernel then does
		 * not extend PCR 10 either); a content whose read open failed
		 * may be there or not. Never twice, never out of order.
		 */
		pathf(p, sizeof(p), "created_once_%s", banks[b].algo);
		e = opt.faults ? GET(adds) - acc[b].missing + acc[b].unknown_found :
		    GET(adds);
		check(p, !acc[b].malformed && acc[b].ours == e &&
		      (opt.faults || !acc[b].missing) &&
		      (!GET(adds) || acc[b].ours) && !acc[b].dup &&
		      !acc[b].never_read && !acc[b].disorder && !acc[b].unknown &&
		      !acc[b].unparsed,
		      "%ld records of this run's contents for %ld created%s: missing %ld%s, twice %ld, never-read %ld, out of order %ld, unknown content %ld, unparsed %ld (violations naming them: %ld%s)",
		      acc[b].ours, GET(adds),
		      opt.faults ? " (--faults: at most once)" : "",
		      acc[b].missing,
		      opt.faults ? " (adds the kernel failed)" : "",
		      acc[b].dup, acc[b].never_read, acc[b].disorder,
		      acc[b].unknown, acc[b].unparsed, acc[b].ours_viol,
		      opt.faults && acc[b].unknown_found ?
		      "; found though their read open failed: counted" : "");
		pathf(p, sizeof(p), "no_duplicates_%s", banks[b].algo);
		check(p, !acc[b].dup_ours && (opt.flush || !acc[b].dup_other),
		      "records twice in full.%s (same PCR, digest, name, data; violations aside): of this run %ld, others %ld%s",
		      banks[b].algo, acc[b].dup_ours, acc[b].dup_other,
		      opt.flush ? " (allowed with --flush: the digest table is emptied by D)" : "");
		/*
		 * The kernel shows no count of the records added since boot
		 * (runtime_measurements_count is the current list only), so
		 * the history is accounted as: the records at start (a prefix,
		 * checked above) + every content this run measured (exactly
		 * once, checked above) + others (tools, this program...),
		 * whose completeness only the PCR 10 replay of full.* can
		 * prove; here: nothing of ours is lost and the sum holds.
		 */
		pathf(p, sizeof(p), "accounting_%s", banks[b].algo);
		check(p, !acc[b].malformed && acc[b].total ==
		      init_n + acc[b].ours + acc[b].unknown + acc[b].unparsed +
		      acc[b].other + acc[b].viol_after &&
		      acc[b].total >= init_n + GET(adds) -
		      (opt.faults ? acc[b].missing : 0),
		      "full.%s: %ld records = saved %ld + end staged %ld + end current %ld; >= initial %ld + created %ld%s",
		      banks[b].algo, acc[b].total, nrec(&saved[b], banks[b].dsize),
		      nrec(&fin.stg[b], banks[b].dsize),
		      nrec(&fin.cur[b], banks[b].dsize), init_n,
		      GET(adds) - (opt.faults ? acc[b].missing : 0),
		      opt.faults ? " (those that left a record)" : "");
	}
	check("commands_atomic", !GET(v_done) && !GET(v_changed),
	      "after each of %ld failed A, D and N the lists were re-read: unchanged %ld, done anyway %ld, changed otherwise %ld, unreadable %ld (the next reads compared them)",
	      GET(v_runs), GET(v_same), GET(v_done), GET(v_changed),
	      GET(v_skipped));
	if (opt.faults && !fi.skipped) {
		long long inj = 0;
		bool known = false;

		for (int k = 0; k < 2; k++) {
			if (fi_injected(k) >= 0) {
				inj += fi_injected(k);
				known = true;
			}
		}
		e = GET(f_list_open) + GET(f_list_read) + GET(f_counter) +
		    GET(f_cmd[C_A]) + GET(f_cmd[C_D]) + GET(f_cmd[C_N]) +
		    GET(mal_nomem) + GET(f_unpriv) + GET(f_probe) +
		    GET(f_adder_io);
		for (int k = 0; k < FK_N; k++)
			e += GET(f_own[k]);
		check("faults_marked", fi.marked && fi.cleared,
		      "make-it-fail of this process: set before the workers started (%s), cleared in every thread before the final phase (%s)",
		      fi.marked ? "1 read back" : fi.mark_err ? errname(fi.mark_err) : "not 1 when read back",
		      fi.cleared ? "0 read back" : fi.clear_err ? errname(fi.clear_err) : "not 0 when read back");
		check("faults_injected", known ? inj > 0 : e > 0,
		      "allocation failures were injected into this run: %s%lld by the kernel's count, %ld refusals seen by this program",
		      known ? "" : "(debugfs \"times\" unknown) ", known ? inj : -1LL,
		      e);
	}
	rep("%d passed, %d failed\n", npass, nfail);
	if (report)
		fclose(report);
	return nfail ? 1 : 0;
}
