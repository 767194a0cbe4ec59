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
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "pg_ext_memcheck.h"

typedef struct McRing
{
	LWLock	   *lock;
	int			capacity;
	uint64		base_seq;
	uint64		next_seq;
	uint64		flushed_upto;
	uint64		written;
	uint64		dropped;
	McViolation entries[FLEXIBLE_ARRAY_MEMBER];
} McRing;

static McRing *ring = NULL;

/* highest sequence this backend's committed flush covers, and its callback */
static uint64 pending_flush_upto = 0;
static SubTransactionId pending_flush_subid = InvalidSubTransactionId;
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
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
mc_ring_attached(void)
{
	return ring != NULL;
}

/*
 * Record one violation.  Safe to call from emit_log_hook: it takes no lock
 * but the ring's own, allocates nothing and never reports an error.
 */
void
mc_ring_record(McViolation *v)
{
	if (ring == NULL || MyProc == NULL)
		return;

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	ring->written++;
	if (ring->next_seq - ring->flushed_upto >= (uint64) ring->capacity)
		ring->dropped++;
	else
	{
		v->seq = ring->next_seq++;
		memcpy(&ring->entries[v->seq % ring->capacity], v, sizeof(McViolation));
	}
	LWLockRelease(ring->lock);
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
	if (pending_flush_upto == 0)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		if (ring != NULL)
		{
			LWLockAcquire(ring->lock, LW_EXCLUSIVE);
			/* another flush may have committed past us already */
			if (pending_flush_upto > ring->flushed_upto &&
				pending_flush_upto <= ring->next_seq)
				ring->flushed_upto = pending_flush_upto;
			LWLockRelease(ring->lock);
		}
		pending_flush_upto = 0;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		pending_flush_upto = 0;
}

/* A flush done in a subtransaction that rolls back must not count. */
static void
mc_ring_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid,
						 pg_attribute_unused() void *arg)
{
	if (pending_flush_upto == 0)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB && pending_flush_subid >= mySubid)
		pending_flush_upto = 0;
	else if (event == SUBXACT_EVENT_COMMIT_SUB && pending_flush_subid == mySubid)
		pending_flush_subid = parentSubid;
}

/*
 * Called by flush_violations() after it inserted the entries up to (not
 * including) upto; they are released only if this transaction commits.
 */
void
mc_ring_mark_flushed(uint64 upto)
{
	if (!flush_callback_registered)
	{
		RegisterXactCallback(mc_ring_xact_callback, NULL);
		RegisterSubXactCallback(mc_ring_subxact_callback, NULL);
		flush_callback_registered = true;
	}
	if (upto > pending_flush_upto)
	{
		pending_flush_upto = upto;
		pending_flush_subid = GetCurrentSubTransactionId();
	}
}
