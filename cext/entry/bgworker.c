/*-------------------------------------------------------------------------
 *
 * bgworker.c
 *		Background workers of foreign libraries: the whole process is the
 *		library's code, measured loop by loop.
 *
 * A worker whose bgw_library_name is a foreign library runs that library's
 * main function from the start; no hook sees it entered.  The first time
 * the worker calls one of the library functions below through its
 * (patched) GOT (BackgroundWorkerUnblockSignals, connecting to a database,
 * waiting on its latch ...), this process is marked as the library's
 * worker: measuring starts, and a segment of the library is opened at the
 * bottom of the segment stack and stays open for the life of the process,
 * so what the worker allocates, directly or through PostgreSQL (attaching
 * a shm_mq, running SPI), is the library's.  PostgreSQL's hooks and our
 * layers still pause it for core work, as in any backend.
 *
 * Its quiet points are where it waits: every WaitLatch, WaitLatchOrSocket,
 * WaitEventSetWait or pg_usleep call from the library ends one loop (one
 * unit of work, "loop") and judges what the library holds (observe/track.c):
 * memory kept loop after loop in TopMemoryContext is a leak with lifetime
 * backend and a rate per loop.  Findings are published to the shared ring
 * at quiet points (new or worse ones at once, the rest at most once a
 * second) and at exit, so the runner collects them with everybody else's.
 * The workers seen are listed in shared memory for coverage().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 180000
#include "storage/waiteventset.h"
#endif

#include "entry/hooks.h"

#define MC_MAX_WORKERS_SEEN 64
#define MC_WORKER_PUBLISH_MS 1000
#define MC_COLLECT_TIMEOUT_MS 2000

/* a worker of a foreign library this instrumentation has seen (shared) */
typedef struct McWorkerSeen
{
	int32		pid;
	bool		alive;
	bool		measured;
	int64		loops;
	PGPROC	   *proc;			/* its latch wakes it for a collection */
	uint32		publish_ack;	/* the last collection it answered */
	char		lib[MC_LIB_LEN];
	char		name[BGW_MAXLEN];
} McWorkerSeen;

typedef struct McWorkersShared
{
	pg_atomic_uint32 publish_req;	/* collections asked for (mc_bgworker_collect) */
	int			n;
	McWorkerSeen workers[MC_MAX_WORKERS_SEEN];
} McWorkersShared;

static McWorkersShared *shared = NULL;

/* this process, when it is a foreign library's worker */
static int	worker_lib = MC_NO_LIB;
static bool checked = false;
static int	worker_slot = -1;
static uint32 loop_unit = 0;
static int64 loops = 0;
static TimestampTz last_publish = 0;

Size
mc_bgworker_shmem_size(void)
{
	return sizeof(McWorkersShared);
}

void
mc_bgworker_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_ext_memcheck workers", sizeof(McWorkersShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(McWorkersShared));
		pg_atomic_init_u32(&shared->publish_req, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* our process exits: what it found is published, its slot says so */
static void
mc_bgworker_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (mc_active)
	{
		mc_track_judge_unit(MC_UNIT_LOOP);
		mc_findings_publish(true);
	}
	if (shared != NULL && worker_slot >= 0)
		shared->workers[worker_slot].alive = false;
}

static void
mc_bgworker_note(void)
{
	McWorkerSeen *w;
	int			i;

	if (shared == NULL)
		return;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	/* a slot of a worker that is gone is reused */
	for (i = 0; i < shared->n; i++)
		if (!shared->workers[i].alive)
			break;
	if (i == shared->n && shared->n < MC_MAX_WORKERS_SEEN)
		shared->n++;
	if (i < shared->n)
	{
		w = &shared->workers[i];
		w->pid = MyProcPid;
		w->alive = true;
		w->measured = mc_active;
		w->loops = 0;
		w->proc = MyProc;
		w->publish_ack = pg_atomic_read_u32(&shared->publish_req);
		mc_strlcpy(w->lib, mc_lib_name(worker_lib), sizeof(w->lib));
		mc_strlcpy(w->name, MyBgworkerEntry->bgw_name, sizeof(w->name));
		worker_slot = i;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Called from a GOT wrapper of the library's: is this process its worker,
 * seen for the first time?  Then measuring starts and its segment opens.
 */
static void
mc_bgworker_check(int lib)
{
	if (checked)
		return;
	if (MyBgworkerEntry == NULL || MyProc == NULL || lib == MC_NO_LIB ||
		mc_lib_by_name(MyBgworkerEntry->bgw_library_name) != lib)
		return;
	checked = true;
	worker_lib = lib;
	mc_xact_callbacks_register();
	mc_ring_trust_process();
	mc_refresh_active();
	before_shmem_exit(mc_bgworker_exit, (Datum) 0);
	mc_bgworker_note();
	if (!mc_active)
		return;
	/* at the bottom of the stack, open for the life of the process */
	loop_unit = mc_seg_new_call();
	mc_seg_unwind(0);
	mc_seg_open_unit(lib, MC_ENTRY_BGWORKER, 0, MC_PHASE_OTHER, MC_UNIT_LOOP, loop_unit);
}

/* the worker is about to wait: one loop ends, the next begins after the wait */
static void
mc_bgworker_quiet_point(void)
{
	TimestampTz now;
	uint32		asked;

	if (worker_lib == MC_NO_LIB)
		return;
	asked = shared != NULL && worker_slot >= 0 ? pg_atomic_read_u32(&shared->publish_req) : 0;
	if (!mc_active)
	{
		if (shared != NULL && worker_slot >= 0)
			shared->workers[worker_slot].publish_ack = asked;
		return;
	}
	loops++;
	if (shared != NULL && worker_slot >= 0)
		shared->workers[worker_slot].loops = loops;
	mc_track_judge_unit(MC_UNIT_LOOP);
	now = GetCurrentTimestamp();
	if (shared != NULL && worker_slot >= 0 && shared->workers[worker_slot].publish_ack != asked)
	{
		/* a session collects what every process found: all of it, as it is now */
		mc_findings_publish(true);
		pg_write_barrier();
		shared->workers[worker_slot].publish_ack = asked;
		last_publish = now;
	}
	else
	{
		mc_findings_publish(TimestampDifferenceExceeds(last_publish, now, MC_WORKER_PUBLISH_MS));
		if (TimestampDifferenceExceeds(last_publish, now, MC_WORKER_PUBLISH_MS))
			last_publish = now;
	}
	/* the segment at the bottom serves the next loop */
	loop_unit = mc_seg_new_call();
	mc_seg_set_bottom_unit(loop_unit);
}

/* ---------- the library's calls that mark a worker and its quiet points ---------- */

#define MC_WORKER_CALL(quiet) \
	do { \
		int			lib_ = mc_lib_of_address(__builtin_return_address(0)); \
		if (!checked) \
			mc_bgworker_check(lib_); \
		if ((quiet) && lib_ == worker_lib) \
			mc_bgworker_quiet_point(); \
	} while (0)

static void
mc_got_BackgroundWorkerUnblockSignals(void)
{
	MC_WORKER_CALL(false);
	BackgroundWorkerUnblockSignals();
}

#if PG_VERSION_NUM >= 110000
static void
mc_got_BackgroundWorkerInitializeConnection(const char *dbname, const char *username, uint32 flags)
{
	MC_WORKER_CALL(false);
	BackgroundWorkerInitializeConnection(dbname, username, flags);
	mc_check_privileged();
}

static void
mc_got_BackgroundWorkerInitializeConnectionByOid(Oid dboid, Oid useroid, uint32 flags)
{
	MC_WORKER_CALL(false);
	BackgroundWorkerInitializeConnectionByOid(dboid, useroid, flags);
	mc_check_privileged();
}
#endif

static int
mc_got_WaitLatch(Latch *latch, int wakeEvents, long timeout, uint32 wait_event_info)
{
	MC_WORKER_CALL(true);
	return WaitLatch(latch, wakeEvents, timeout, wait_event_info);
}

static int
mc_got_WaitLatchOrSocket(Latch *latch, int wakeEvents, pgsocket sock, long timeout,
						 uint32 wait_event_info)
{
	MC_WORKER_CALL(true);
	return WaitLatchOrSocket(latch, wakeEvents, sock, timeout, wait_event_info);
}

static int
mc_got_WaitEventSetWait(WaitEventSet *set, long timeout, WaitEvent *occurred_events,
						int nevents, uint32 wait_event_info)
{
	MC_WORKER_CALL(true);
	return WaitEventSetWait(set, timeout, occurred_events, nevents, wait_event_info);
}

static void
mc_got_pg_usleep(long microsec)
{
	MC_WORKER_CALL(true);
	pg_usleep(microsec);
}

static const McGotTarget worker_targets[] = {
	{"BackgroundWorkerUnblockSignals", (void *) mc_got_BackgroundWorkerUnblockSignals, NULL},
	{"BackgroundWorkerInitializeConnection", (void *) mc_got_BackgroundWorkerInitializeConnection, NULL},
	{"BackgroundWorkerInitializeConnectionByOid", (void *) mc_got_BackgroundWorkerInitializeConnectionByOid, NULL},
	{"WaitLatch", (void *) mc_got_WaitLatch, NULL},
	{"WaitLatchOrSocket", (void *) mc_got_WaitLatchOrSocket, NULL},
	{"WaitEventSetWait", (void *) mc_got_WaitEventSetWait, NULL},
	{"pg_usleep", (void *) mc_got_pg_usleep, NULL},
};

/* "background worker loop" */
static bool
mc_bgworker_describe(uint32 id, char *buf, size_t len)
{
	(void) id;
	snprintf(buf, len, "background worker %s",
			 MyBgworkerEntry != NULL ? MyBgworkerEntry->bgw_name : "");
	return true;
}

void
mc_bgworker_init(void)
{
	mc_gotwrap_add_targets(worker_targets, lengthof(worker_targets));
	mc_seg_register_describer(MC_ENTRY_BGWORKER, mc_bgworker_describe);
}

/*
 * flush_violations(): every live worker of a foreign library publishes what
 * it found, as it is now, before the ring is read.  Each is woken (a latch
 * set out of turn is a wake-up every latch user must tolerate) and answers
 * at its next wait; a worker busy past the timeout is not waited for (it
 * publishes at its next wait anyway).  Returns the workers that did not
 * answer in time.
 */
int
mc_bgworker_collect(void)
{
	uint32		asked;
	int			late = 0;
	TimestampTz start = GetCurrentTimestamp();
	int			i;

	if (shared == NULL || shared->n == 0)
		return 0;
	asked = pg_atomic_add_fetch_u32(&shared->publish_req, 1);
	LWLockAcquire(AddinShmemInitLock, LW_SHARED);
	for (i = 0; i < shared->n; i++)
		if (shared->workers[i].alive && shared->workers[i].pid != MyProcPid &&
			shared->workers[i].proc != NULL)
			SetLatch(&shared->workers[i].proc->procLatch);
	LWLockRelease(AddinShmemInitLock);
	for (;;)
	{
		late = 0;
		pg_read_barrier();
		for (i = 0; i < shared->n; i++)
			if (shared->workers[i].alive && shared->workers[i].pid != MyProcPid &&
				shared->workers[i].publish_ack != asked)
				late++;
		if (late == 0 ||
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), MC_COLLECT_TIMEOUT_MS))
			return late;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* coverage(): the workers of foreign libraries seen, live or gone */
int
mc_bgworker_count(void)
{
	return shared != NULL ? shared->n : 0;
}

bool
mc_bgworker_at(int i, char *what, size_t whatlen, char *detail, size_t detaillen, bool *measured)
{
	McWorkerSeen w;

	if (shared == NULL || i < 0 || i >= shared->n)
		return false;
	LWLockAcquire(AddinShmemInitLock, LW_SHARED);
	w = shared->workers[i];
	LWLockRelease(AddinShmemInitLock);
	snprintf(what, whatlen, "%s (pid %d)", w.name, w.pid);
	snprintf(detail, detaillen,
			 "%s's background worker%s: %s; %lld loops judged at its waits (WaitLatch, WaitEventSetWait, pg_usleep), per loop",
			 w.lib, w.alive ? "" : ", exited", w.measured ? "everything it runs is the library's" :
			 "not measured (pg_ext_memcheck.memcheck_mode is off for it)", (long long) w.loops);
	*measured = w.measured;
	return true;
}
