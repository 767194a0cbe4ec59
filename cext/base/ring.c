/*-------------------------------------------------------------------------
 *
 * ring.c
 *		Shared-memory ring buffer of violations, shared by all backends.
 *
 * Writers take the ring's LWLock exclusively for the copy of one entry, so
 * concurrent backends never corrupt it.  Entries [flushed_upto, next_seq) are
 * pending; a writer that finds the ring full counts the entry as dropped
 * instead of overwriting one that was not flushed yet, so
 * written = (next_seq - base_seq) + dropped always holds.
 *
 * flushed_upto only moves when a flushing transaction commits (see
 * mc_ring_mark_flushed), so a rolled-back flush loses nothing.
 *
 * Sequence numbers start from the server start time, so they stay unique in
 * violation_log across restarts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/base.h"

static bool privileged = false;
static bool process_trusted = false;

/*
 * A server process that is nobody's session may write (a foreign library's
 * background worker, entry/bgworker.c); a parallel worker is its leader's.
 */
void
mc_ring_trust_process(void)
{
	process_trusted = true;
	privileged = true;
}

/* only privileged sessions may write into the shared ring (safe points only) */
void
mc_check_privileged(void)
{
	Oid			session = GetSessionUserId();

	privileged = process_trusted || mc_record_all_sessions ||
		(OidIsValid(session) &&
		 (superuser_arg(session) || has_privs_of_role(session, ROLE_PG_MONITOR)));
}

bool
mc_session_privileged(void)
{
	return privileged;
}

typedef struct McRing
{
	LWLock	   *lock;
	int			capacity;
	uint64		base_seq;
	uint64		next_seq;
	uint64		flushed_upto;
	uint64		written;
	uint64		dropped;
	uint64		refused;
	McViolation entries[FLEXIBLE_ARRAY_MEMBER];
} McRing;

static McRing *ring = NULL;

/*
 * The highest sequence this backend's flushes in the current transaction
 * cover, released when it commits.  A flush inside a subtransaction that
 * rolls back must not count, but the flushes before it still do: each
 * subtransaction that raised the mark remembers what it was before.
 */
#define MC_MAX_FLUSH_NESTING 32

typedef struct McFlushMark
{
	SubTransactionId subid;
	uint64		before;
} McFlushMark;

static uint64 pending_flush_upto = 0;
static McFlushMark flush_marks[MC_MAX_FLUSH_NESTING];
static int	nflush_marks = 0;
static bool flush_callback_registered = false;

#define MC_TRANCHE "pg_ext_memcheck"

Size
mc_ring_shmem_size(void)
{
	return add_size(offsetof(McRing, entries),
					mul_size(sizeof(McViolation), mc_ring_capacity));
}

void
mc_ring_request_shmem(void)
{
	RequestAddinShmemSpace(mc_ring_shmem_size());
	RequestNamedLWLockTranche(MC_TRANCHE, 1);
}

void
mc_ring_shmem_startup(void)
{
	bool		found;

	ring = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ring = ShmemInitStruct("pg_ext_memcheck ring", mc_ring_shmem_size(), &found);
	if (!found)
	{
		ring->lock = &(GetNamedLWLockTranche(MC_TRANCHE))->lock;
		ring->capacity = mc_ring_capacity;
		/* microseconds since 2000 times 8192 stays below 2^63 until ~2035 */
		ring->base_seq = ((uint64) GetCurrentTimestamp()) << 13;
		ring->next_seq = ring->base_seq;
		ring->flushed_upto = ring->base_seq;
		ring->written = 0;
		ring->dropped = 0;
		ring->refused = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
mc_ring_attached(void)
{
	return ring != NULL;
}

/*
 * Record one violation; false when it was not stored (ring full, or this
 * session may not write).  Only privileged sessions write: otherwise any
 * role could flood the ring and get everyone else's findings dropped.
 * Called at safe points only (it takes the ring's lock); allocates nothing.
 */
bool
mc_ring_record(McViolation *v)
{
	bool		stored = false;

	if (ring == NULL || MyProc == NULL)
		return false;

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	if (!mc_session_privileged())
		ring->refused++;
	else
	{
		ring->written++;
		if (ring->next_seq - ring->flushed_upto >= (uint64) ring->capacity)
			ring->dropped++;
		else
		{
			v->seq = ring->next_seq++;
			memcpy(&ring->entries[v->seq % ring->capacity], v, sizeof(McViolation));
			stored = true;
		}
	}
	LWLockRelease(ring->lock);
	return stored;
}

void
mc_ring_status(McRingStatus *st)
{
	memset(st, 0, sizeof(*st));
	if (ring == NULL)
		return;
	LWLockAcquire(ring->lock, LW_SHARED);
	st->capacity = ring->capacity;
	st->base_seq = ring->base_seq;
	st->next_seq = ring->next_seq;
	st->flushed_upto = ring->flushed_upto;
	st->written = ring->written;
	st->dropped = ring->dropped;
	st->refused = ring->refused;
	LWLockRelease(ring->lock);
}

/*
 * Copy up to max pending entries with seq in [start, stop) into out,
 * starting at the later of start and the oldest pending entry.  *next
 * receives the sequence number after the last one copied.  Returns the
 * number copied.  Callers loop in chunks so nothing large is allocated.
 */
int
mc_ring_copy_pending(uint64 start, uint64 stop, McViolation *out, int max,
					 uint64 *next)
{
	uint64		s;
	int			n = 0;

	*next = start;
	if (ring == NULL)
		return 0;
	LWLockAcquire(ring->lock, LW_SHARED);
	s = Max(start, ring->flushed_upto);
	for (; s < ring->next_seq && s < stop && n < max; s++)
		memcpy(&out[n++], &ring->entries[s % ring->capacity], sizeof(McViolation));
	*next = s;
	LWLockRelease(ring->lock);
	return n;
}

/* At commit of the flushing transaction, release the flushed slots. */
static void
mc_ring_xact_callback(XactEvent event, pg_attribute_unused() void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		if (ring != NULL && pending_flush_upto != 0)
		{
			LWLockAcquire(ring->lock, LW_EXCLUSIVE);
			/* another flush may have committed past us already */
			if (pending_flush_upto > ring->flushed_upto &&
				pending_flush_upto <= ring->next_seq)
				ring->flushed_upto = pending_flush_upto;
			LWLockRelease(ring->lock);
		}
		pending_flush_upto = 0;
		nflush_marks = 0;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		pending_flush_upto = 0;
		nflush_marks = 0;
	}
}

/* A flush done in a subtransaction that rolls back must not count. */
static void
mc_ring_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid,
						 pg_attribute_unused() void *arg)
{
	int			i;

	if (nflush_marks == 0)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* undo the raises of this subtransaction and its children, newest first */
		for (i = nflush_marks - 1; i >= 0 && flush_marks[i].subid >= mySubid; i--)
			pending_flush_upto = flush_marks[i].before;
		nflush_marks = i + 1;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* its raises now belong to the parent */
		for (i = nflush_marks - 1; i >= 0 && flush_marks[i].subid >= mySubid; i--)
			flush_marks[i].subid = parentSubid;
	}
}

/*
 * Called by flush_violations() after it inserted the entries up to (not
 * including) upto; they are released only if this transaction commits.
 */
void
mc_ring_mark_flushed(uint64 upto)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (!flush_callback_registered)
	{
		RegisterXactCallback(mc_ring_xact_callback, NULL);
		RegisterSubXactCallback(mc_ring_subxact_callback, NULL);
		flush_callback_registered = true;
	}
	if (upto <= pending_flush_upto)
		return;
	if (subid != TopSubTransactionId)
	{
		if (nflush_marks >= MC_MAX_FLUSH_NESTING)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("flush_violations() nested in more than %d savepoints",
							MC_MAX_FLUSH_NESTING)));
		flush_marks[nflush_marks].subid = subid;
		flush_marks[nflush_marks].before = pending_flush_upto;
		nflush_marks++;
	}
	pending_flush_upto = upto;
}
