/*
 * kdiff_runner — the guest half of numacma's differential tests against the
 * real kernel (tests/kernel/oracle.py is the host half). Statically linked,
 * runs from the busybox initramfs as root:
 *
 *   kdiff_runner dump           the guest's NUMA topology (sysfs files and
 *                               links, hex-encoded) and the kernel's CMA areas
 *   kdiff_runner run TRACE      runs a numacma trace through the test module's
 *                               debugfs file, one JSON object per decision,
 *                               the CMA areas before and after
 *
 * Output goes to OUT (default /dev/ttyS1, put in raw mode: the host's data
 * channel; "-" for stdout), one JSON object a line:
 *   {"t":"file","path":"/sys/...","hex":"..."}
 *   {"t":"link","path":"/sys/...","target":"../../memory/memory3"}
 *   {"t":"cma","phase":"before|after|at:<line>","name":"pernuma1","base_pfn":N,"count":N,
 *    "order_per_bit":N,"used":N,"maxchunk":N,"node_first":N,"node_last":N,
 *    "alloc_pages_success":N,"alloc_pages_fail":N,"release_pages_success":N}
 *     (without CMA debugfs the areas come from the module's "cma I" command,
 *     and order_per_bit, used, maxchunk and the counters are -1)
 *   {"t":"alloc","line":L,"id":"q0","ok":true,"dma":"0x..","nid":N,"cpu":C,"pages":P}
 *   {"t":"alloc","line":L,"id":"q1","ok":false,"cpu":C}
 *   {"t":"free","line":L,"id":"q0","ok":true}
 *   {"t":"error","line":L,"msg":"..."}      (a line the runner or module refused)
 *   {"t":"done","decisions":N,"seconds":S}
 *
 * Trace lines (numacma's format, docs/design.md):
 *   alloc <id> <node|-1> <size>[K|M|G] [dma_mask=0x<hex>] [cpu=<N>]
 *   free <id>
 * Before an alloc with cpu=N the runner pins itself to CPU N
 * (sched_setaffinity), so that the kernel's numa_mem_id() is that CPU's node.
 * A comment line "# kdiff-counters" dumps the CMA areas (phase "at:<line>"):
 * the host compares the counters epoch by epoch.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CTL "/sys/kernel/debug/numacma_dma_test/ctl"
#define MAX_IDS 65536
/* a trace comment line that asks for the CMA areas' counters (phase "at:<line>") */
#define CHECKPOINT "# kdiff-counters"

static FILE *out;
static int ctl_fd = -1;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "kdiff_runner: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void open_out(const char *path)
{
	if (!strcmp(path, "-")) {
		out = stdout;
		return;
	}
	int fd = open(path, O_WRONLY | O_NOCTTY);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		cfsetospeed(&t, B115200);
		tcsetattr(fd, TCSANOW, &t);
	}
	out = fdopen(fd, "w");
	setvbuf(out, NULL, _IOFBF, 1 << 16);
}

/* Reads a whole small file; returns its length or -1. */
static long slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			break;
	}
	close(fd);
	buf[n] = '\0';
	return (long)n;
}

static long long read_num(const char *path)
{
	char b[64];
	if (slurp(path, b, sizeof b) < 0)
		return -1;
	return strtoll(b, NULL, 0);
}

static void emit_file(const char *path)
{
	static char buf[1 << 16];
	long n = slurp(path, buf, sizeof buf);
	if (n < 0)
		return;
	fprintf(out, "{\"t\":\"file\",\"path\":\"%s\",\"hex\":\"", path);
	for (long i = 0; i < n; i++)
		fprintf(out, "%02x", (unsigned char)buf[i]);
	fprintf(out, "\"}\n");
}

static void emit_link(const char *path)
{
	char target[512];
	ssize_t n = readlink(path, target, sizeof target - 1);
	if (n < 0)
		return;
	target[n] = '\0';
	fprintf(out, "{\"t\":\"link\",\"path\":\"%s\",\"target\":\"%s\"}\n", path, target);
}

static int starts_with_num(const char *name, const char *prefix)
{
	size_t l = strlen(prefix);
	return !strncmp(name, prefix, l) && isdigit((unsigned char)name[l]);
}

static void dump_topology(void)
{
	static const char *top[] = { "online", "possible", "has_memory", "has_cpu",
				     "has_normal_memory", "has_generic_initiator" };
	char p[1024];
	for (size_t i = 0; i < sizeof top / sizeof *top; i++) {
		snprintf(p, sizeof p, "/sys/devices/system/node/%s", top[i]);
		emit_file(p);
	}
	DIR *d = opendir("/sys/devices/system/node");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!starts_with_num(e->d_name, "node"))
			continue;
		static const char *files[] = { "cpulist", "distance", "meminfo",
			"hugepages/hugepages-2048kB/nr_hugepages",
			"hugepages/hugepages-2048kB/free_hugepages",
			"hugepages/hugepages-2048kB/surplus_hugepages" };
		for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
			snprintf(p, sizeof p, "/sys/devices/system/node/%s/%s", e->d_name, files[i]);
			emit_file(p);
		}
		char nd[300];
		snprintf(nd, sizeof nd, "/sys/devices/system/node/%s", e->d_name);
		DIR *dn = opendir(nd);
		struct dirent *m;
		while (dn && (m = readdir(dn))) {
			if (!starts_with_num(m->d_name, "memory"))
				continue;
			snprintf(p, sizeof p, "%s/%s", nd, m->d_name);
			emit_link(p);
		}
		if (dn)
			closedir(dn);
	}
	if (d)
		closedir(d);
	emit_file("/sys/devices/system/memory/block_size_bytes");
	d = opendir("/sys/devices/system/memory");
	while (d && (e = readdir(d))) {
		if (!starts_with_num(e->d_name, "memory"))
			continue;
		static const char *files[] = { "phys_index", "state", "online", "valid_zones",
					       "removable" };
		for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
			snprintf(p, sizeof p, "/sys/devices/system/memory/%s/%s", e->d_name, files[i]);
			emit_file(p);
		}
	}
	if (d)
		closedir(d);
	emit_file("/proc/cmdline");
	emit_file("/proc/zoneinfo");
	emit_file("/proc/iomem");
}

/* One command to the module; the result line in res. Returns 0 or -errno. */
static int ctl(const char *cmd, char *res, size_t cap)
{
	if (ctl_fd < 0) {
		ctl_fd = open(CTL, O_RDWR);
		if (ctl_fd < 0)
			die("open %s: %s (is the module loaded, debugfs mounted?)", CTL, strerror(errno));
	}
	int rc = 0;
	if (write(ctl_fd, cmd, strlen(cmd)) < 0)
		rc = -errno;
	ssize_t n = pread(ctl_fd, res, cap - 1, 0);
	if (n < 0)
		n = 0;
	res[n] = '\0';
	char *nl = strchr(res, '\n');
	if (nl)
		*nl = '\0';
	return rc;
}

static void json_str(const char *s);

static int node_of_pfn(long long pfn)
{
	char cmd[64], res[160];
	snprintf(cmd, sizeof cmd, "nid %lld", pfn);
	if (ctl(cmd, res, sizeof res) != 0)
		return -2;
	const char *s = strstr(res, "node=");
	return s ? atoi(s + 5) : -2;
}

/* Without CMA debugfs (Debian's arm64 kernel): the areas from the module's
 * "cma I" (name, base_pfn, count); the counters, used and maxchunk are -1. */
static void dump_cma_module(const char *phase)
{
	char cmd[64], res[160], name[64];
	for (int i = 0;; i++) {
		unsigned long long base, count;
		snprintf(cmd, sizeof cmd, "cma %d", i);
		if (ctl(cmd, res, sizeof res) != 0) {
			fprintf(out, "{\"t\":\"note\",\"msg\":");
			json_str(res);
			fprintf(out, "}\n");
			return;
		}
		if (sscanf(res, "ok cma %*d name=%63s base_pfn=%llu count=%llu", name, &base, &count) != 3)
			return;
		fprintf(out,
			"{\"t\":\"cma\",\"phase\":\"%s\",\"name\":\"%s\",\"base_pfn\":%llu,\"count\":%llu,"
			"\"order_per_bit\":-1,\"used\":-1,\"maxchunk\":-1,\"node_first\":%d,\"node_last\":%d,"
			"\"alloc_pages_success\":-1,\"alloc_pages_fail\":-1,\"release_pages_success\":-1}\n",
			phase, name, base, count, node_of_pfn((long long)base),
			node_of_pfn((long long)(base + count - 1)));
	}
}

static void dump_cma(const char *phase)
{
	DIR *d = opendir("/sys/kernel/debug/cma");
	if (!d) {
		if (access(CTL, W_OK) == 0) {
			dump_cma_module(phase);
			return;
		}
		fprintf(out, "{\"t\":\"note\",\"msg\":\"no /sys/kernel/debug/cma: %s\"}\n", strerror(errno));
		return;
	}
	struct dirent *e;
	char p[512];
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
#define DBG(f) (snprintf(p, sizeof p, "/sys/kernel/debug/cma/%s/" f, e->d_name), read_num(p))
#define SYS(f) (snprintf(p, sizeof p, "/sys/kernel/mm/cma/%s/" f, e->d_name), read_num(p))
		long long base = DBG("base_pfn"), count = DBG("count");
		fprintf(out,
			"{\"t\":\"cma\",\"phase\":\"%s\",\"name\":\"%s\",\"base_pfn\":%lld,\"count\":%lld,"
			"\"order_per_bit\":%lld,\"used\":%lld,\"maxchunk\":%lld,\"node_first\":%d,"
			"\"node_last\":%d,\"alloc_pages_success\":%lld,\"alloc_pages_fail\":%lld,"
			"\"release_pages_success\":%lld}\n",
			phase, e->d_name, base, count, DBG("order_per_bit"), DBG("used"), DBG("maxchunk"),
			ctl_fd >= 0 || access(CTL, W_OK) == 0 ? node_of_pfn(base) : -2,
			ctl_fd >= 0 || access(CTL, W_OK) == 0 ? node_of_pfn(base + count - 1) : -2,
			SYS("alloc_pages_success"), SYS("alloc_pages_fail"), SYS("release_pages_success"));
#undef DBG
#undef SYS
	}
	closedir(d);
}

/* The kernel's memparse: a number (0x hex, 0 octal, decimal) and a suffix. */
static int memparse(const char *s, unsigned long long *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	int shift = 0;
	switch (*end) {
	case 'E': case 'e': shift += 10; /* fall through */
	case 'P': case 'p': shift += 10; /* fall through */
	case 'T': case 't': shift += 10; /* fall through */
	case 'G': case 'g': shift += 10; /* fall through */
	case 'M': case 'm': shift += 10; /* fall through */
	case 'K': case 'k': shift += 10; end++; break;
	default: break;
	}
	if (*end)
		return -1;
	*v = x << shift;
	return 0;
}

struct idmap {
	char name[48];
};
static struct idmap ids[MAX_IDS];
static int nids;

static int id_index(const char *name, int create)
{
	for (int i = nids - 1; i >= 0; i--)
		if (!strcmp(ids[i].name, name))
			return i;
	if (!create || nids == MAX_IDS || strlen(name) >= sizeof ids[0].name)
		return -1;
	strcpy(ids[nids].name, name);
	return nids++;
}

static void json_str(const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		if ((unsigned char)*s < 0x20)
			fprintf(out, "\\u%04x", *s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static void error_line(int line, const char *msg, const char *detail)
{
	char m[400];
	snprintf(m, sizeof m, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
	fprintf(out, "{\"t\":\"error\",\"line\":%d,\"msg\":", line);
	json_str(m);
	fprintf(out, "}\n");
}

static int pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

static void run(const char *trace)
{
	FILE *f = fopen(trace, "r");
	if (!f)
		die("open %s: %s", trace, strerror(errno));
	char line[512], res[160], cmd[160];
	int lineno = 0, decisions = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dump_cma("before");
	fflush(out);
	while (fgets(line, sizeof line, f)) {
		lineno++;
		if (!strncmp(line, CHECKPOINT, strlen(CHECKPOINT))) {
			char phase[32];
			snprintf(phase, sizeof phase, "at:%d", lineno);
			dump_cma(phase);
			continue;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *tok[8];
		int nt = 0;
		for (char *s = strtok(line, " \t\r\n"); s && nt < 8; s = strtok(NULL, " \t\r\n"))
			tok[nt++] = s;
		if (nt == 0)
			continue;
		if (!strcmp(tok[0], "alloc") && nt >= 4) {
			unsigned long long size = 0, mask = ~0ULL;
			int cpu = -1, bad = 0;
			char *endp;
			long node = strtol(tok[2], &endp, 10);
			if (*endp || memparse(tok[3], &size))
				bad = 1;
			for (int i = 4; i < nt && !bad; i++) {
				if (!strncmp(tok[i], "dma_mask=", 9))
					mask = strtoull(tok[i] + 9, NULL, 16);
				else if (!strncmp(tok[i], "cpu=", 4))
					cpu = atoi(tok[i] + 4);
				else
					bad = 1;
			}
			int id = id_index(tok[1], 1);
			if (bad || id < 0) {
				error_line(lineno, "cannot parse", tok[1]);
				continue;
			}
			if (cpu >= 0 && pin(cpu) != 0) {
				error_line(lineno, "sched_setaffinity", strerror(errno));
				continue;
			}
			snprintf(cmd, sizeof cmd, "alloc %d %ld %llu %llx", id, node, size, mask);
			int rc = ctl(cmd, res, sizeof res);
			if (rc) {
				error_line(lineno, res, strerror(-rc));
				continue;
			}
			decisions++;
			fprintf(out, "{\"t\":\"alloc\",\"line\":%d,\"id\":", lineno);
			json_str(tok[1]);
			unsigned long long dma;
			int nid, rcpu;
			unsigned long pages;
			if (sscanf(res, "ok alloc %*d dma=%llx nid=%d cpu=%d pages=%lu", &dma, &nid, &rcpu,
				   &pages) == 4)
				fprintf(out, ",\"ok\":true,\"dma\":\"0x%llx\",\"nid\":%d,\"cpu\":%d,\"pages\":%lu}\n",
					dma, nid, rcpu, pages);
			else if (sscanf(res, "fail alloc %*d cpu=%d", &rcpu) == 1)
				fprintf(out, ",\"ok\":false,\"cpu\":%d}\n", rcpu);
			else
				fprintf(out, ",\"ok\":false,\"cpu\":-1,\"raw\":\"%s\"}\n", res);
		} else if (!strcmp(tok[0], "free") && nt == 2) {
			int id = id_index(tok[1], 0);
			if (id < 0) {
				error_line(lineno, "free of an unknown id", tok[1]);
				continue;
			}
			snprintf(cmd, sizeof cmd, "free %d", id);
			int rc = ctl(cmd, res, sizeof res);
			decisions++;
			fprintf(out, "{\"t\":\"free\",\"line\":%d,\"id\":", lineno);
			json_str(tok[1]);
			fprintf(out, ",\"ok\":%s}\n", rc ? "false" : "true");
		} else {
			error_line(lineno, "unknown line", tok[0]);
		}
	}
	fclose(f);
	dump_cma("after");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(out, "{\"t\":\"done\",\"decisions\":%d,\"seconds\":%.3f}\n", decisions,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

int main(int argc, char **argv)
{
	const char *outp = getenv("KDIFF_OUT") ? getenv("KDIFF_OUT") : "/dev/ttyS1";
	if (argc >= 2 && !strcmp(argv[1], "dump")) {
		open_out(outp);
		dump_topology();
		dump_cma("boot");
	} else if (argc >= 3 && !strcmp(argv[1], "run")) {
		open_out(outp);
		run(argv[2]);
	} else {
		fprintf(stderr, "usage: kdiff_runner dump | run TRACE   (output: $KDIFF_OUT, default /dev/ttyS1)\n");
		return 2;
	}
	fflush(out);
	if (out != stdout)
		tcdrain(fileno(out));
	return 0;
}
