/*
 * canbench: the frame generator, counter and latency probe of bench/run.sh.
 *
 * They must be cheaper than anything they measure, so they batch with
 * sendmmsg/recvmmsg, never spin, and say when they themselves lost frames
 * (SO_RXQ_OVFL): a counter that drops frames measures itself.
 *
 * Every bench frame has can_id BENCH_ID and carries a run tag (u32 LE) in
 * data[0..4] and a sequence number (u32 LE) in data[4..8], so counters
 * ignore frames of other runs and the latency probe matches frames by
 * content. Results are printed as one line of key=value pairs.
 *
 *   canbench gen   IF [-f] [-r RATE] [-d SECS] [-n COUNT] [-t TAG] [-b BATCH] [-g TICK_US]
 *   canbench count IF [-f] [-t TAG] [-n EXPECT] [-w IDLE_MS] [-W START_MS] [-x EXCEPT_IF]
 *   canbench lat   IF0 IF1 [-r RATE] [-n COUNT] [-t TAG] [-g TICK_US]
 *   canbench probe IF0 IF1 [-W TIMEOUT_MS]
 *   canbench relay-out IF PORT | relay-in IF PORT
 *   canbench sc-in IF PORT BUS
 *
 * gen: RATE 0 (default) sends as fast as the interface takes frames, BATCH
 * per sendmmsg; a RATE is kept on average, the frames due sent together
 * every TICK_US (default 1000) on average, at random intervals.
 * count: IF "any" with -x EXCEPT_IF counts on every CAN interface but one
 * (fan-out), without duplicate detection; exits after IDLE_MS without a
 * frame (once one arrived), after START_MS if none arrives, at EXPECT
 * unique frames, or on SIGINT/SIGTERM; prints "ready" once bound.
 * lat: sends COUNT classic frames at RATE on IF0 and reports the one-way
 * latency from each frame's kernel receive time on IF0 to that on IF1. With
 * -g, the frames due are sent together every TICK_US and the receivers are
 * read every 5 ms (see cmd_lat); without it, one frame per write, as before.
 * relay-out/relay-in: a minimal one-way TCP tunnel (see cmd_relay_out).
 * sc-in: a socketcand client in raw mode that writes what it receives to IF
 * (see cmd_sc_in).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <linux/can.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_ID 0x123
#define PROBE_TAG 0xFFFFFFFFu
#define MAX_BATCH 256
/* Sequence numbers a counter can tell apart (a bitmap of 2 MiB). */
#define MAX_SEQ (1u << 24)
/* Big enough that a counter never drops while the CPU serves the others. */
#define RCVBUF (64 * 1024 * 1024)

/* How often receivers look at their queues. */
static const struct timespec drain_interval = { 0, 5000000 };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "canbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: canbench gen|count|lat|probe|relay-out|relay-in|sc-in ... (see canbench.c)\n");
	exit(2);
}

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time this process used so far (user + system), in ms. */
static double cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void setopt(int s, int level, int name, int value, const char *what)
{
	if (setsockopt(s, level, name, &value, sizeof(value)) < 0)
		die(what);
}

enum mode { SENDER, COUNTER, RELAY };

/*
 * A raw CAN socket on IF ("any": every interface). A SENDER receives
 * nothing (no filter), so it costs no receive work; a COUNTER gets only
 * bench frames, a large queue, drop counts and kernel receive timestamps;
 * a RELAY gets every frame with the kernel's default queue, as a tunnel has.
 */
static int can_open(const char *ifname, enum mode mode)
{
	struct sockaddr_can addr = { .can_family = AF_CAN };
	int s = socket(PF_CAN, SOCK_RAW, CAN_RAW);

	if (s < 0)
		die("socket");
	if (strcmp(ifname, "any") != 0) {
		addr.can_ifindex = (int)if_nametoindex(ifname);
		if (addr.can_ifindex == 0)
			die(ifname);
	}
	setopt(s, SOL_CAN_RAW, CAN_RAW_FD_FRAMES, 1, "CAN_RAW_FD_FRAMES");
	if (mode == COUNTER) {
		struct can_filter f = {
			.can_id = BENCH_ID,
			.can_mask = CAN_EFF_FLAG | CAN_RTR_FLAG | CAN_SFF_MASK,
		};
		if (setsockopt(s, SOL_CAN_RAW, CAN_RAW_FILTER, &f, sizeof(f)) < 0)
			die("CAN_RAW_FILTER");
		/* FORCE: as root, past net.core.rmem_max. */
		setopt(s, SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF, "SO_RCVBUFFORCE");
		setopt(s, SOL_SOCKET, SO_RXQ_OVFL, 1, "SO_RXQ_OVFL");
		setopt(s, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");
	} else if (mode == SENDER) {
		if (setsockopt(s, SOL_CAN_RAW, CAN_RAW_FILTER, NULL, 0) < 0)
			die("CAN_RAW_FILTER");
	}
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("bind");
	return s;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static uint32_t get_u32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void make_frame(struct canfd_frame *f, int fd, uint32_t tag, uint32_t seq)
{
	memset(f, 0, sizeof(*f));
	f->can_id = BENCH_ID;
	f->len = fd ? 64 : 8;
	for (int i = 8; i < f->len; i++)
		f->data[i] = (uint8_t)i;
	put_u32(f->data, tag);
	put_u32(f->data + 4, seq);
}

/* Waits until the socket can take frames again (ENOBUFS, EAGAIN). */
static void wait_writable(int s)
{
	struct pollfd p = { .fd = s, .events = POLLOUT };

	/* ENOBUFS can come from a full queue that is not ours: then POLLOUT
	 * is immediate and the 1 ms timeout is what keeps us from spinning. */
	if (poll(&p, 1, 1) < 0 && errno != EINTR)
		die("poll");
	if (p.revents & POLLOUT) {
		struct timespec t = { 0, 50000 };
		nanosleep(&t, NULL);
	}
}

struct opts {
	int fd;
	double rate;
	double secs;
	uint64_t count;
	uint32_t tag;
	int batch;
	int idle_ms;
	int start_ms;
	int64_t tick_us;
	int tick_set; /* -g given: lat batches (see cmd_lat) */
	const char *except;
};

static int cmd_gen(const char *ifname, const struct opts *o)
{
	static struct canfd_frame frames[MAX_BATCH];
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	size_t mtu = o->fd ? CANFD_MTU : CAN_MTU;
	int s = can_open(ifname, SENDER);
	uint64_t total = o->count, sent = 0, enobufs = 0;
	int64_t t0, end, t;

	if (total == 0 && o->rate > 0)
		total = (uint64_t)(o->rate * o->secs + 0.5);
	for (int i = 0; i < o->batch; i++) {
		iov[i].iov_base = &frames[i];
		iov[i].iov_len = mtu;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	t0 = now_ns(CLOCK_MONOTONIC);
	end = t0 + (int64_t)(o->secs * 1e9);
	for (;;) {
		uint64_t want = (uint64_t)o->batch;

		t = now_ns(CLOCK_MONOTONIC);
		if (total ? sent >= total : t >= end)
			break;
		if (stop)
			break;
		if (o->rate > 0) {
			/* Frame k is due at t0 + k/rate; catch up in batches. */
			uint64_t due = (uint64_t)((double)(t - t0) * o->rate / 1e9) + 1;

			if (due > total)
				due = total;
			if (due <= sent) {
				int64_t next = t0 + (int64_t)((double)sent * 1e9 / o->rate);
				struct timespec ts;

				/* Every wake-up costs the CPU we share with the tunnel.
				 * The gap is random (0.5-1.5 ticks): UML charges CPU
				 * time by sampling at its 100 Hz tick, and a tunnel
				 * woken in step with the tick would be charged always
				 * or never. */
				int64_t gap = o->tick_us * (500 + random() % 1000);

				if (next < t + gap)
					next = t + gap;
				ts.tv_sec = next / 1000000000;
				ts.tv_nsec = next % 1000000000;

				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
				continue;
			}
			if (due - sent < want)
				want = due - sent;
		} else if (total && total - sent < want) {
			want = total - sent;
		}
		for (uint64_t i = 0; i < want; i++)
			make_frame(&frames[i], o->fd, o->tag, (uint32_t)(sent + i));
		int n = sendmmsg(s, msgs, (unsigned)want, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
				enobufs += errno != EINTR;
				wait_writable(s);
				continue;
			}
			die("sendmmsg");
		}
		sent += (uint64_t)n;
	}
	t = now_ns(CLOCK_MONOTONIC);
	printf("sent=%" PRIu64 " secs=%.3f rate=%.0f enobufs=%" PRIu64 " cpu_ms=%.0f\n", sent,
	       (double)(t - t0) / 1e9, (double)sent * 1e9 / (double)(t - t0), enobufs, cpu_ms());
	close(s);
	return 0;
}

/* Receive state of one socket read in batches. */
struct rx {
	int s;
	struct canfd_frame frames[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	struct mmsghdr msgs[MAX_BATCH];
	struct sockaddr_can names[MAX_BATCH];
	uint64_t cmsg[MAX_BATCH][8];
	uint32_t ovfl;
};

static void rx_init(struct rx *r, int s)
{
	memset(r, 0, sizeof(*r));
	r->s = s;
	for (int i = 0; i < MAX_BATCH; i++) {
		r->iov[i].iov_base = &r->frames[i];
		r->iov[i].iov_len = sizeof(r->frames[i]);
	}
}

/* Reads what is queued; fills ts[i] with kernel receive times (CLOCK_REALTIME). */
static int rx_read(struct rx *r, int64_t *ts)
{
	for (int i = 0; i < MAX_BATCH; i++) {
		struct msghdr *h = &r->msgs[i].msg_hdr;

		h->msg_iov = &r->iov[i];
		h->msg_iovlen = 1;
		h->msg_name = &r->names[i];
		h->msg_namelen = sizeof(r->names[i]);
		h->msg_control = r->cmsg[i];
		h->msg_controllen = sizeof(r->cmsg[i]);
	}
	int n = recvmmsg(r->s, r->msgs, MAX_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		die("recvmmsg");
	}
	for (int i = 0; i < n; i++) {
		struct msghdr *h = &r->msgs[i].msg_hdr;

		ts[i] = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
			if (c->cmsg_level != SOL_SOCKET)
				continue;
			if (c->cmsg_type == SO_RXQ_OVFL) {
				memcpy(&r->ovfl, CMSG_DATA(c), sizeof(r->ovfl));
			} else if (c->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec t;

				memcpy(&t, CMSG_DATA(c), sizeof(t));
				ts[i] = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
			}
		}
	}
	return n;
}

static int cmd_count(const char *ifname, const struct opts *o)
{
	static struct rx r;
	int64_t ts[MAX_BATCH], first = 0, last = 0, start, last_seen;
	uint64_t recv = 0, unique = 0, dup = 0, foreign = 0, reordered = 0;
	uint32_t last_seq = 0;
	int except = 0, fanout = strcmp(ifname, "any") == 0;
	uint8_t *seen = calloc(MAX_SEQ / 8, 1);

	if (!seen)
		die("calloc");
	if (o->except) {
		except = (int)if_nametoindex(o->except);
		if (except == 0)
			die(o->except);
	}
	rx_init(&r, can_open(ifname, COUNTER));
	printf("ready\n");
	fflush(stdout);
	start = now_ns(CLOCK_MONOTONIC);
	last_seen = start;
	while (!stop) {
		int n = rx_read(&r, ts);
		int64_t t = now_ns(CLOCK_MONOTONIC);

		if (n == 0) {
			/* Waking up per frame would steal the CPU the tunnel under
			 * test needs; the large queue holds what arrives meanwhile. */
			if (t - last_seen > (int64_t)(recv ? o->idle_ms : o->start_ms) * 1000000)
				break;
			nanosleep(&drain_interval, NULL);
			continue;
		}
		last_seen = t;
		for (int i = 0; i < n; i++) {
			const struct canfd_frame *f = &r.frames[i];
			uint32_t seq = get_u32(f->data + 4);

			if (except && r.names[i].can_ifindex == except)
				continue;
			if (get_u32(f->data) != o->tag) {
				foreign++;
				continue;
			}
			recv++;
			if (!first)
				first = ts[i];
			last = ts[i];
			if (fanout) {
				unique++;
				continue;
			}
			if (recv > 1 && seq < last_seq)
				reordered++;
			last_seq = seq;
			if (seq < MAX_SEQ && (seen[seq / 8] & (1u << (seq % 8)))) {
				dup++;
				continue;
			}
			if (seq < MAX_SEQ)
				seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
			unique++;
		}
		if (o->count && unique >= o->count)
			break;
	}
	double span = (double)(last - first) / 1e9;
	printf("recv=%" PRIu64 " unique=%" PRIu64 " dup=%" PRIu64 " reordered=%" PRIu64
	       " foreign=%" PRIu64 " own_drops=%u span=%.6f rate=%.0f cpu_ms=%.0f\n",
	       recv, unique, dup, reordered, foreign, r.ovfl, span,
	       unique > 1 && span > 0 ? (double)(unique - 1) / span : 0.0, cpu_ms());
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Reads both receivers; records the first kernel time each bench frame was seen. */
static void lat_drain(struct rx *r, int64_t *when, uint64_t n, uint32_t tag)
{
	int64_t ts[MAX_BATCH];
	int got;

	while ((got = rx_read(r, ts)) > 0) {
		for (int i = 0; i < got; i++) {
			uint32_t seq = get_u32(r->frames[i].data + 4);

			if (get_u32(r->frames[i].data) == tag && seq < n && !when[seq])
				when[seq] = ts[i];
		}
	}
}

/*
 * lat -g: at 5000 frames/s, one write and two reads per frame would cost
 * the probe alone most of the one CPU it shares with the tunnel (a system
 * call takes ~30 us in UML). So it wakes every TICK_US, sends the frames
 * due by then in one sendmmsg, and reads the receivers every 5 ms: their
 * kernel timestamps are exact however late the queues are read. Frames of
 * one batch reach IF0 within microseconds of each other, as on a busy bus.
 * No clock is read: a wake-up is an absolute deadline. Returns frames sent.
 */
static uint64_t lat_send_batched(int tx, struct rx *r0, struct rx *r1, int64_t *t0, int64_t *t1,
				 uint64_t n, int64_t start, const struct opts *o)
{
	static struct canfd_frame frames[MAX_BATCH];
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	int64_t tick = o->tick_us * 1000, wake = start;
	int64_t drain_every = tick > 0 ? (5000000 + tick - 1) / tick : 1;
	uint64_t sent = 0, wakes = 0;

	for (int i = 0; i < MAX_BATCH; i++) {
		iov[i].iov_base = &frames[i];
		iov[i].iov_len = CAN_MTU;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (!stop && sent < n) {
		int64_t next = start + (int64_t)((double)sent * 1e9 / o->rate);
		uint64_t due;

		if (next < wake + tick)
			next = wake + tick;
		wake = next;
		struct timespec ts = { wake / 1000000000, wake % 1000000000 };
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		/* Frame k is due at start + k/rate: those due by this wake-up. */
		due = (uint64_t)((double)(wake - start) * o->rate / 1e9) + 1;
		if (due > n)
			due = n;
		while (sent < due && !stop) {
			unsigned want = due - sent < MAX_BATCH ? (unsigned)(due - sent) : MAX_BATCH;

			for (unsigned i = 0; i < want; i++)
				make_frame(&frames[i], 0, o->tag, (uint32_t)(sent + i));
			int k = sendmmsg(tx, msgs, want, 0);
			if (k < 0) {
				if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
					die("sendmmsg");
				wait_writable(tx);
				continue;
			}
			sent += (uint64_t)k;
		}
		if (++wakes % (uint64_t)drain_every == 0) {
			lat_drain(r0, t0, n, o->tag);
			lat_drain(r1, t1, n, o->tag);
		}
	}
	return sent;
}

static int cmd_lat(const char *if0, const char *if1, const struct opts *o)
{
	static struct rx r0, r1;
	uint64_t n = o->count ? o->count : 3000, sent = 0, matched = 0;
	int tx = can_open(if0, SENDER);
	int64_t *t0 = calloc(n, sizeof(int64_t)), *t1 = calloc(n, sizeof(int64_t));
	int64_t *lat = calloc(n, sizeof(int64_t));
	int64_t start, deadline = 0;

	if (!t0 || !t1 || !lat)
		die("calloc");
	rx_init(&r0, can_open(if0, COUNTER));
	rx_init(&r1, can_open(if1, COUNTER));
	/* Only the sender sets the pace: the receivers' kernel timestamps are
	 * exact however late their queues are read, and fewer wake-ups leave
	 * the CPU to the tunnel. */
	start = now_ns(CLOCK_MONOTONIC);
	if (o->tick_set)
		sent = lat_send_batched(tx, &r0, &r1, t0, t1, n, start, o);
	while (!stop && sent < n) {
		int64_t due = start + (int64_t)((double)sent * 1e9 / o->rate);
		struct timespec ts = { due / 1000000000, due % 1000000000 };
		struct canfd_frame f;

		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		make_frame(&f, 0, o->tag, (uint32_t)sent);
		if (write(tx, &f, CAN_MTU) == CAN_MTU)
			sent++;
		else if (errno == ENOBUFS || errno == EAGAIN)
			wait_writable(tx);
		else
			die("write");
		lat_drain(&r0, t0, n, o->tag);
		lat_drain(&r1, t1, n, o->tag);
	}
	/* Stragglers: up to 2 s after the last frame. */
	deadline = now_ns(CLOCK_MONOTONIC) + 2000000000;
	while (!stop && now_ns(CLOCK_MONOTONIC) < deadline) {
		lat_drain(&r0, t0, n, o->tag);
		lat_drain(&r1, t1, n, o->tag);
		matched = 0;
		for (uint64_t i = 0; i < n; i++)
			matched += t0[i] && t1[i];
		if (matched == n)
			break;
		nanosleep(&drain_interval, NULL);
	}
	matched = 0;
	for (uint64_t i = 0; i < n; i++)
		if (t0[i] && t1[i])
			lat[matched++] = t1[i] - t0[i];
	qsort(lat, matched, sizeof(int64_t), cmp_i64);
	if (matched == 0) {
		printf("sent=%" PRIu64 " matched=0 lost=%" PRIu64 "\n", sent, sent);
		return 1;
	}
	printf("sent=%" PRIu64 " matched=%" PRIu64 " lost=%" PRIu64 " own_drops=%u"
	       " min_us=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
	       sent, matched, sent - matched, r0.ovfl + r1.ovfl, lat[0] / 1e3,
	       lat[(matched - 1) / 2] / 1e3, lat[(matched * 99 + 99) / 100 - 1] / 1e3,
	       lat[matched - 1] / 1e3);
	return 0;
}

/* Sends a probe every 100 ms until one crosses from IF0 to IF1: the path is up. */
static int cmd_probe(const char *if0, const char *if1, const struct opts *o)
{
	static struct rx r;
	int64_t ts[MAX_BATCH], end = now_ns(CLOCK_MONOTONIC) + (int64_t)o->start_ms * 1000000;
	int tx = can_open(if0, SENDER);
	uint32_t seq = 0;

	rx_init(&r, can_open(if1, COUNTER));
	while (!stop && now_ns(CLOCK_MONOTONIC) < end) {
		struct canfd_frame f;
		struct pollfd p = { .fd = r.s, .events = POLLIN };

		make_frame(&f, 0, PROBE_TAG, seq++);
		if (write(tx, &f, CAN_MTU) != CAN_MTU && errno != ENOBUFS && errno != EAGAIN)
			die("write");
		if (poll(&p, 1, 100) < 0 && errno != EINTR)
			die("poll");
		int n = rx_read(&r, ts);
		for (int i = 0; i < n; i++)
			if (get_u32(r.frames[i].data) == PROBE_TAG) {
				printf("probe=ok tries=%u\n", seq);
				return 0;
			}
	}
	printf("probe=timeout tries=%u\n", seq);
	return 1;
}

/*
 * The least a user-space TCP tunnel must do, as a yardstick for the ones
 * measured: one direction, no negotiation, no checks, the tcpcan wire
 * format ('d', length, frame), two system calls per wake-up on each side.
 * relay-out serves one connection on 127.0.0.1:PORT and sends it the frames
 * read from IF; relay-in connects and writes what it receives to IF.
 */
static int tcp_open(int port, int serve)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (s < 0)
		die("socket");
	if (serve) {
		int l = s;

		setopt(l, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0)
			die("listen");
		printf("ready\n");
		fflush(stdout);
		s = accept(l, NULL, NULL);
		if (s < 0)
			die("accept");
		close(l);
	} else {
		while (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
			if (errno != ECONNREFUSED || stop)
				die("connect");
			usleep(100000);
		}
	}
	setopt(s, IPPROTO_TCP, TCP_NODELAY, one, "TCP_NODELAY");
	return s;
}

static int cmd_relay_out(const char *ifname, int port)
{
	static struct canfd_frame frames[MAX_BATCH];
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	static uint8_t buf[MAX_BATCH * (2 + CANFD_MTU)];
	int can = can_open(ifname, RELAY), tcp = tcp_open(port, 1);

	for (int i = 0; i < MAX_BATCH; i++) {
		iov[i].iov_base = &frames[i];
		iov[i].iov_len = sizeof(frames[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	uint64_t wakes = 0, total = 0;

	while (!stop) {
		/* Blocks for the first frame, then takes what else is queued. */
		int n = recvmmsg(can, msgs, MAX_BATCH, MSG_WAITFORONE, NULL);
		size_t len = 0;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("recvmmsg");
		}
		wakes++;
		total += (uint64_t)n;
		for (int i = 0; i < n; i++) {
			buf[len] = 'd';
			buf[len + 1] = (uint8_t)msgs[i].msg_len;
			memcpy(buf + len + 2, &frames[i], msgs[i].msg_len);
			len += 2 + msgs[i].msg_len;
		}
		for (size_t off = 0; off < len;) {
			ssize_t w = send(tcp, buf + off, len - off, MSG_NOSIGNAL);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return 0;
			}
			off += (size_t)w;
		}
	}
	printf("frames=%" PRIu64 " wakes=%" PRIu64 " cpu_ms=%.0f\n", total, wakes, cpu_ms());
	return 0;
}

/* Writes frames[0..n) to IF, waiting when the queue is full. */
static void send_frames(int can, struct mmsghdr *msgs, unsigned n)
{
	for (unsigned done = 0; done < n;) {
		int w = sendmmsg(can, msgs + done, n - done, 0);

		if (w < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
				die("sendmmsg");
			wait_writable(can);
			continue;
		}
		done += (unsigned)w;
	}
}

static int cmd_relay_in(const char *ifname, int port)
{
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	static uint8_t buf[MAX_BATCH * (2 + CANFD_MTU)];
	int can = can_open(ifname, SENDER), tcp = tcp_open(port, 0);
	size_t have = 0;
	uint64_t wakes = 0, total = 0;

	while (!stop) {
		ssize_t r = read(tcp, buf + have, sizeof(buf) - have);
		size_t off = 0;
		unsigned n = 0;

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return 0;
		}
		have += (size_t)r;
		while (n < MAX_BATCH && have - off >= 2 && have - off >= 2u + buf[off + 1]) {
			iov[n].iov_base = buf + off + 2;
			iov[n].iov_len = buf[off + 1];
			msgs[n].msg_hdr.msg_iov = &iov[n];
			msgs[n].msg_hdr.msg_iovlen = 1;
			off += 2u + buf[off + 1];
			n++;
		}
		send_frames(can, msgs, n);
		memmove(buf, buf + off, have - off);
		have -= off;
		wakes++;
		total += n;
	}
	printf("frames=%" PRIu64 " wakes=%" PRIu64 " cpu_ms=%.0f\n", total, wakes, cpu_ms());
	return 0;
}

/*
 * sc-in: a socketcand client (issue 13's benchmark row) as lean as
 * relay-in, so that the figures are the server's and not this reader's.
 * It connects to 127.0.0.1:PORT, opens BUS in raw mode, prints "ready" once
 * both commands are acknowledged, then parses "< frame ID SEC.USEC HEX >"
 * lines (other lines are skipped) and writes the frames to IF, all the
 * frames of one read in one sendmmsg.
 */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parses the line [p, end) (end at its '>'); 1 if it is a data frame. */
static int sc_frame(const char *p, const char *end, struct can_frame *f)
{
	const char *tok[5];
	size_t len[5];
	int nt = 0;

	while (nt < 5) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		tok[nt] = p;
		while (p < end && *p != ' ')
			p++;
		len[nt] = (size_t)(p - tok[nt]);
		nt++;
	}
	if (nt < 4 || len[0] != 1 || tok[0][0] != '<' || len[1] != 5 || memcmp(tok[1], "frame", 5) != 0)
		return 0;
	if ((len[2] != 3 && len[2] != 8) || (nt == 5 && (len[4] % 2 || len[4] > 16)))
		return 0;
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < len[2]; i++) {
		int v = hexval(tok[2][i]);

		if (v < 0)
			return 0;
		f->can_id = f->can_id << 4 | (uint32_t)v;
	}
	if (len[2] == 8)
		f->can_id |= CAN_EFF_FLAG;
	if (nt == 5) {
		for (size_t i = 0; i < len[4]; i += 2) {
			int hi = hexval(tok[4][i]), lo = hexval(tok[4][i + 1]);

			if (hi < 0 || lo < 0)
				return 0;
			f->data[i / 2] = (uint8_t)(hi << 4 | lo);
		}
		f->len = (uint8_t)(len[4] / 2);
	}
	return 1;
}

static void send_all(int s, const char *text)
{
	size_t len = strlen(text);

	for (size_t off = 0; off < len;) {
		ssize_t w = send(s, text + off, len - off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("send");
		}
		off += (size_t)w;
	}
}

static int cmd_sc_in(const char *ifname, int port, const char *bus)
{
	static struct can_frame frames[MAX_BATCH];
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	static char buf[65536], cmd[128];
	int can = can_open(ifname, SENDER), tcp = tcp_open(port, 0), oks = 0;
	size_t have = 0;
	uint64_t wakes = 0, total = 0, lines = 0;

	for (int i = 0; i < MAX_BATCH; i++) {
		iov[i].iov_base = &frames[i];
		iov[i].iov_len = CAN_MTU;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	if (snprintf(cmd, sizeof(cmd), "< open %s >< rawmode >", bus) >= (int)sizeof(cmd))
		usage();
	send_all(tcp, cmd);
	while (!stop) {
		ssize_t r = read(tcp, buf + have, sizeof(buf) - have);
		size_t off = 0;
		unsigned n = 0;
		char *gt;

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (oks < 2) {
				fprintf(stderr, "canbench: sc-in: the server closed before '< ok >' to open and rawmode\n");
				return 1;
			}
			break;
		}
		have += (size_t)r;
		while ((gt = memchr(buf + off, '>', have - off)) != NULL) {
			size_t len = (size_t)(gt - (buf + off));

			if (oks == 2) {
				n += (unsigned)sc_frame(buf + off, gt, &frames[n]);
				lines++;
				if (n == MAX_BATCH) {
					send_frames(can, msgs, n);
					total += n;
					n = 0;
				}
			} else if (len >= 5 && memcmp(gt - 5, "< ok ", 5) == 0) {
				/* "< hi >", then "< ok >" to open and to rawmode. */
				if (++oks == 2) {
					printf("ready\n");
					fflush(stdout);
				}
			} else if (memmem(buf + off, len, "error", 5)) {
				fprintf(stderr, "canbench: sc-in: the server said: %.*s>\n", (int)len, buf + off);
				return 1;
			}
			off += len + 1;
		}
		if (off == 0 && have == sizeof(buf)) {
			fprintf(stderr, "canbench: sc-in: no '>' in %zu bytes\n", have);
			return 1;
		}
		send_frames(can, msgs, n);
		total += n;
		memmove(buf, buf + off, have - off);
		have -= off;
		wakes++;
	}
	printf("frames=%" PRIu64 " lines=%" PRIu64 " wakes=%" PRIu64 " cpu_ms=%.0f\n", total, lines, wakes,
	       cpu_ms());
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.tag = 1, .batch = 64, .secs = 2, .idle_ms = 1000, .start_ms = 10000,
		.tick_us = 1000,
	};
	const char *pos[3] = { 0 };
	int npos = 0, c;
	struct sigaction sa = { .sa_handler = on_signal };

	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	optind = 2;
	while (optind < argc) {
		c = getopt(argc, argv, "+fr:d:n:t:b:g:w:W:x:");
		if (c == -1) {
			if (npos == 3)
				usage();
			pos[npos++] = argv[optind++];
			continue;
		}
		switch (c) {
		case 'f': o.fd = 1; break;
		case 'r': o.rate = atof(optarg); break;
		case 'd': o.secs = atof(optarg); break;
		case 'n': o.count = strtoull(optarg, NULL, 0); break;
		case 't': o.tag = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'b': o.batch = atoi(optarg); break;
		case 'g': o.tick_us = atoi(optarg); o.tick_set = 1; break;
		case 'w': o.idle_ms = atoi(optarg); break;
		case 'W': o.start_ms = atoi(optarg); break;
		case 'x': o.except = optarg; break;
		default: usage();
		}
	}
	if (o.batch < 1 || o.batch > MAX_BATCH)
		usage();
	/* No SA_RESTART: a signal ends the counter's poll at once. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (strcmp(cmd, "gen") == 0 && npos == 1)
		return cmd_gen(pos[0], &o);
	if (strcmp(cmd, "count") == 0 && npos == 1)
		return cmd_count(pos[0], &o);
	if (strcmp(cmd, "relay-out") == 0 && npos == 2)
		return cmd_relay_out(pos[0], atoi(pos[1]));
	if (strcmp(cmd, "relay-in") == 0 && npos == 2)
		return cmd_relay_in(pos[0], atoi(pos[1]));
	if (strcmp(cmd, "sc-in") == 0 && npos == 3)
		return cmd_sc_in(pos[0], atoi(pos[1]), pos[2]);
	if (o.rate <= 0)
		o.rate = 1000;
	if (strcmp(cmd, "lat") == 0 && npos == 2)
		return cmd_lat(pos[0], pos[1], &o);
	if (strcmp(cmd, "probe") == 0 && npos == 2)
		return cmd_probe(pos[0], pos[1], &o);
	usage();
	return 2;
}
