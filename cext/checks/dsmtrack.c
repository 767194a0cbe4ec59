/*-------------------------------------------------------------------------
 *
 * dsmtrack.c
 *		Dynamic shared memory segments foreign code maps: dsm_leak, the
 *		original tool's tracking table (track_dsm_handle(), dsm_tracking(),
 *		clear_dsm_tracking()) and dsm_lifecycle_check.
 *
 * PostgreSQL keeps a backend's mappings in a static list, so they are
 * followed where they are made: a foreign library's GOT slots for
 * dsm_create, dsm_attach, dsm_detach, dsm_pin_mapping, dsm_unpin_mapping,
 * dsm_pin_segment and dsm_unpin_segment point here.  Every segment foreign
 * code creates or attaches while measuring is on gets a record and an
 * on_dsm_detach callback, which sees it unmapped whoever does it: the
 * library (dsm_detach), the resource owner at transaction end (with
 * PostgreSQL's leak warning, reported by reslog.c as resource_leak), or
 * backend exit for pinned mappings, which PostgreSQL never warns about.
 *
 * A segment created or attached during a begin()/end() window and still
 * mapped at its end is a dsm_leak.  Users of the original tool can also
 * register a handle themselves (track_dsm_handle); every record is shown,
 * for every backend, by dsm_tracking(), from a table in shared memory.
 *
 * The wrappers call the real function first and record nothing when it
 * fails (it raises its own error).  The detach callback runs inside
 * dsm_detach, possibly during abort or exit: it only sets flags in this
 * backend's record; the shared row follows at the next call that reads or
 * writes the table (mc_dsm_sync), and the rows of a backend that has
 * exited are shown detached, since its exit unmapped everything.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "checks/checks.h"

PG_FUNCTION_INFO_V1(mc_track_dsm_handle);
PG_FUNCTION_INFO_V1(mc_dsm_tracking);
PG_FUNCTION_INFO_V1(mc_clear_dsm_tracking);

#define MC_DSM_LOCAL		256
#define MC_DSM_ROWS			1024
#define MC_DSM_SHMEM_NAME	"pg_ext_memcheck dsm tracking"
#define MC_DSM_TRANCHE		"pg_ext_memcheck dsm"
#define MC_DSM_PER_ITER		100		/* iterations listed one by one in the probe's result */

/* ---------- the shared table behind dsm_tracking() ---------- */

typedef struct McDsmRow
{
	int32		pid;			/* 0: free */
	uint32		handle;
	int64		size;
	TimestampTz attach_at;
	bool		detached;
	bool		pinned;
	bool		user;			/* registered by track_dsm_handle */
	bool		external;		/* not mapped in the registering backend */
	uint64		serial;
	char		lib[MC_LIB_LEN];
} McDsmRow;

typedef struct McDsmShared
{
	LWLock	   *lock;
	int64		dropped;
	McDsmRow	rows[MC_DSM_ROWS];
} McDsmShared;

static McDsmShared *shared = NULL;

/* ---------- this backend's records ---------- */

typedef struct McDsmRec
{
	bool		used;
	dsm_segment *seg;
	uint32		handle;
	Size		size;
	int16		lib;
	uintptr_t	site;
	uint8		entry_kind;
	uint32		entry_id;
	TimestampTz attached_at;
	uint64		serial;
	int32		iteration;		/* dsm_lifecycle_check iteration, 0 outside */
	bool		created;
	bool		user;
	bool		pinned;			/* mapping pinned */
	bool		seg_pinned;
	bool		detached;
	bool		explicit_detach;	/* by the library's own dsm_detach */
	int			row;			/* shared row, or -1 */
	bool		row_detached;	/* what the shared row says */
} McDsmRec;

static McDsmRec recs[MC_DSM_LOCAL];
static bool rows_dirty = false;	/* a detach not yet copied to the shared rows */
static uint64 next_serial = 1;
static bool overflow_noted = false;
static const dsm_segment *detaching = NULL;	/* inside a foreign dsm_detach */
static TimestampTz window_started = 0;
static int32 probe_iteration = 0;

void
mc_dsm_request_shmem(void)
{
	RequestAddinShmemSpace(sizeof(McDsmShared));
	RequestNamedLWLockTranche(MC_DSM_TRANCHE, 1);
}

void
mc_dsm_shmem_startup(void)
{
	bool		found;

	shared = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct(MC_DSM_SHMEM_NAME, sizeof(McDsmShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(*shared));
		shared->lock = &(GetNamedLWLockTranche(MC_DSM_TRANCHE))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* a shared row for r: a free one, else the oldest detached one */
static void
mc_dsm_row_insert(McDsmRec *r, bool external)
{
	int			i;
	int			pick = -1;

	r->row = -1;
	if (shared == NULL || MyProc == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < MC_DSM_ROWS; i++)
	{
		McDsmRow   *w = &shared->rows[i];

		if (w->pid == 0)
		{
			pick = i;
			break;
		}
		if (w->detached && (pick < 0 || w->attach_at < shared->rows[pick].attach_at))
			pick = i;
	}
	if (pick < 0)
		shared->dropped++;
	else
	{
		McDsmRow   *w = &shared->rows[pick];

		w->pid = MyProcPid;
		w->handle = r->handle;
		w->size = (int64) r->size;
		w->attach_at = r->attached_at;
		w->detached = r->detached;
		w->pinned = r->pinned;
		w->user = r->user;
		w->external = external;
		w->serial = r->serial;
		mc_strlcpy(w->lib, r->lib != MC_NO_LIB ? mc_lib_name(r->lib) : "", MC_LIB_LEN);
		r->row = pick;
	}
	LWLockRelease(shared->lock);
}

/* copy r's state to its shared row (caller holds the lock) */
static void
mc_dsm_row_copy(McDsmRec *r)
{
	McDsmRow   *w;

	if (r->row < 0)
		return;
	w = &shared->rows[r->row];
	if (w->pid == MyProcPid && w->serial == r->serial)
	{
		w->detached = r->detached;
		w->pinned = r->pinned;
		w->user = r->user;
	}
	r->row_detached = r->detached;
}

static void
mc_dsm_row_update(McDsmRec *r)
{
	if (shared == NULL || r->row < 0 || MyProc == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	mc_dsm_row_copy(r);
	LWLockRelease(shared->lock);
}

/* detaches seen by the callback since the last sync, into the shared rows (never during abort or exit) */
static void
mc_dsm_sync(void)
{
	int			i;

	if (!rows_dirty || shared == NULL || MyProc == NULL)
		return;
	rows_dirty = false;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < MC_DSM_LOCAL; i++)
		if (recs[i].used && recs[i].row >= 0 && recs[i].row_detached != recs[i].detached)
			mc_dsm_row_copy(&recs[i]);
	LWLockRelease(shared->lock);
}

static McDsmRec *
mc_dsm_find(const dsm_segment *seg)
{
	int			i;

	for (i = 0; i < MC_DSM_LOCAL; i++)
		if (recs[i].used && !recs[i].detached && recs[i].seg == seg)
			return &recs[i];
	return NULL;
}

/*
 * A free record: an unused one, else the oldest detached one whose shared
 * row already says so and that no running dsm_lifecycle_check still counts.
 * Only segments mapped at once take records, however many a backend (a
 * background worker, a long session) maps over its life.
 */
static McDsmRec *
mc_dsm_new(void)
{
	int			i;
	McDsmRec   *oldest = NULL;

	for (i = 0; i < MC_DSM_LOCAL; i++)
		if (!recs[i].used)
			return &recs[i];
	mc_dsm_sync();
	for (i = 0; i < MC_DSM_LOCAL; i++)
	{
		McDsmRec   *r = &recs[i];

		if (!r->detached || (r->row >= 0 && !r->row_detached) ||
			(r->iteration != 0 && probe_iteration != 0))
			continue;
		if (oldest == NULL || r->serial < oldest->serial)
			oldest = r;
	}
	if (oldest != NULL)
		return oldest;
	if (!overflow_noted)
	{
		overflow_noted = true;
		mc_record_gap(NULL, "DSM segments",
					  "more DSM segments were mapped at once than pg_ext_memcheck follows; later ones are not tracked");
	}
	return NULL;
}

/* the segment is unmapped, by whoever (registered with on_dsm_detach) */
static void
mc_dsm_on_detach(dsm_segment *seg, Datum arg)
{
	uint64		a = DatumGetUInt64(arg);
	int			i = (int) (a & 0xFFFF);
	uint64		serial = a >> 16;
	McDsmRec   *r;

	if (i < 0 || i >= MC_DSM_LOCAL)
		return;
	r = &recs[i];
	if (!r->used || r->seg != seg || (r->serial & UINT64CONST(0xFFFFFFFFFFFF)) != serial)
		return;
	r->detached = true;
	r->explicit_detach = (detaching == seg);
	rows_dirty = true;
}

/* follow seg from now on */
static McDsmRec *
mc_dsm_follow(dsm_segment *seg, bool created, bool user, int lib, uintptr_t site)
{
	McDsmRec   *r = mc_dsm_find(seg);
	const McSegment *s = mc_seg;
	int			depth;

	if (r != NULL)
	{
		if (user && !r->user)
		{
			r->user = true;
			mc_dsm_row_update(r);
		}
		return r;
	}
	if ((r = mc_dsm_new()) == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->used = true;
	r->seg = seg;
	r->handle = dsm_segment_handle(seg);
	r->size = dsm_segment_map_length(seg);
	r->lib = (int16) lib;
	r->site = site;
	r->entry_kind = s ? s->entry_kind : MC_ENTRY_DIRECT;
	r->entry_id = s ? s->entry_id : 0;
	r->attached_at = GetCurrentTimestamp();
	r->serial = next_serial++;
	r->iteration = probe_iteration;
	r->created = created;
	r->user = user;
	/* our callback's memory is ours, not the library's */
	depth = mc_layer_enter();
	on_dsm_detach(seg, mc_dsm_on_detach,
				  UInt64GetDatum(((r->serial & UINT64CONST(0xFFFFFFFFFFFF)) << 16) |
								 (uint64) (r - recs)));
	mc_dsm_row_insert(r, false);
	mc_layer_leave(depth);
	return r;
}

/* ---------- foreign libraries' calls ---------- */

static dsm_segment *
mc_dsm_create(Size size, int flags)
{
	dsm_segment *seg = dsm_create(size, flags);

	if (seg != NULL && mc_active)
	{
		mc_dsm_sync();
		mc_dsm_follow(seg, true, false, mc_lib_of_address(__builtin_return_address(0)),
					  (uintptr_t) __builtin_return_address(0));
	}
	return seg;
}

static dsm_segment *
mc_dsm_attach(dsm_handle h)
{
	dsm_segment *seg = dsm_attach(h);

	if (seg != NULL && mc_active)
	{
		mc_dsm_sync();
		mc_dsm_follow(seg, false, false, mc_lib_of_address(__builtin_return_address(0)),
					  (uintptr_t) __builtin_return_address(0));
	}
	return seg;
}

static void
mc_dsm_detach(dsm_segment *seg)
{
	const dsm_segment *saved = detaching;

	detaching = seg;
	PG_TRY();
	{
		dsm_detach(seg);
	}
	PG_FINALLY();
	{
		detaching = saved;
	}
	PG_END_TRY();
}

static void
mc_dsm_pin_mapping(dsm_segment *seg)
{
	McDsmRec   *r;

	dsm_pin_mapping(seg);
	if ((r = mc_dsm_find(seg)) != NULL)
	{
		r->pinned = true;
		mc_dsm_row_update(r);
	}
}

static void
mc_dsm_unpin_mapping(dsm_segment *seg)
{
	McDsmRec   *r;

	dsm_unpin_mapping(seg);
	if ((r = mc_dsm_find(seg)) != NULL)
	{
		r->pinned = false;
		mc_dsm_row_update(r);
	}
}

static void
mc_dsm_pin_segment(dsm_segment *seg)
{
	McDsmRec   *r;

	dsm_pin_segment(seg);
	if ((r = mc_dsm_find(seg)) != NULL)
		r->seg_pinned = true;
}

static void
mc_dsm_unpin_segment(dsm_handle h)
{
	int			i;

	dsm_unpin_segment(h);
	for (i = 0; i < MC_DSM_LOCAL; i++)
		if (recs[i].used && recs[i].handle == h)
			recs[i].seg_pinned = false;
}

static const McGotTarget dsm_targets[] = {
	{"dsm_create", (void *) mc_dsm_create, NULL},
	{"dsm_attach", (void *) mc_dsm_attach, NULL},
	{"dsm_detach", (void *) mc_dsm_detach, NULL},
	{"dsm_pin_mapping", (void *) mc_dsm_pin_mapping, NULL},
	{"dsm_unpin_mapping", (void *) mc_dsm_unpin_mapping, NULL},
	{"dsm_pin_segment", (void *) mc_dsm_pin_segment, NULL},
	{"dsm_unpin_segment", (void *) mc_dsm_unpin_segment, NULL},
};

/* ---------- judging ---------- */

typedef bool (*McDsmFilter) (const McDsmRec *r, void *arg);

/* still-mapped records of one library and lifetime that the filter selects */
typedef struct McDsmGroup
{
	int			lib;
	bool		pinned;
	McDsmFilter filter;
	void	   *arg;
	int			n;				/* records */
	int			created;		/* of them created (the others attached) */
	int64		bytes;
	const McDsmRec *first;
} McDsmGroup;

static bool
mc_dsm_in_group(const McDsmGroup *g, const McDsmRec *r)
{
	return r->used && !r->detached && r->lib == g->lib && r->pinned == g->pinned &&
		g->filter(r, g->arg);
}

/* count the group's records; false when it has none */
static bool
mc_dsm_gather(McDsmGroup *g)
{
	int			i;

	for (i = 0; i < MC_DSM_LOCAL; i++)
	{
		const McDsmRec *r = &recs[i];

		if (!mc_dsm_in_group(g, r))
			continue;
		g->n++;
		g->bytes += (int64) r->size;
		g->created += r->created ? 1 : 0;
		if (g->first == NULL)
			g->first = r;
	}
	return g->n > 0;
}

/* the group's mapping sites (library offsets), at most MC_MAX_SITES */
static void
mc_dsm_sites(const McDsmGroup *g, McViolation *v)
{
	int			i;

	v->nsites = 0;
	if (g->lib == MC_NO_LIB)
		return;
	for (i = 0; i < MC_DSM_LOCAL && v->nsites < MC_MAX_SITES; i++)
	{
		const McDsmRec *r = &recs[i];
		uint64		offset;
		int			k;

		if (!mc_dsm_in_group(g, r) || r->site == 0)
			continue;
		offset = (uint64) (r->site - mc_lib_base(g->lib));
		for (k = 0; k < v->nsites; k++)
			if (v->sites[k].offset == offset)
				break;
		if (k == v->nsites)
		{
			memset(&v->sites[k], 0, sizeof(McSite));
			mc_strlcpy(v->sites[k].lib, mc_lib_name(g->lib), MC_LIB_LEN);
			v->sites[k].offset = offset;
			v->nsites++;
		}
		v->sites[k].bytes += (int64) r->size;
		v->sites[k].count++;
	}
}

/*
 * The group's dsm_leak finding.  A pinned mapping lives until the backend
 * exits; an unpinned one until its resource owner releases it (the
 * transaction in progress).
 */
static void
mc_dsm_finding(const McDsmGroup *g, const char *where)
{
	McViolation *v;
	char		entry[MC_ENTRY_LEN];
	int			n = g->n;
	const char *lib = g->lib != MC_NO_LIB ? mc_lib_name(g->lib) : NULL;

	v = mc_finding_for(MC_CHECK_DSM_LEAK, g->pinned ? MC_LIFE_BACKEND : MC_LIFE_TRANSACTION,
					   g->lib, "dynamic shared memory", NULL);
	if (v == NULL)
		return;
	mc_strlcpy(v->context_name, "dynamic shared memory", MC_NAME_LEN);
	mc_strlcpy(v->context_path, "dynamic shared memory", MC_PATH_LEN);
	mc_strlcpy(v->source_lib, lib ? lib : "", MC_LIB_LEN);
	mc_entry_describe(g->first->entry_kind, g->first->entry_id, entry, sizeof(entry));
	mc_strlcpy(v->entry, entry, MC_ENTRY_LEN);
	v->phase = MC_PHASE_OTHER;
	v->verdict = n >= 2 ? MC_VERDICT_LEAK : MC_VERDICT_NONE;
	v->severity = (n >= 2 || g->bytes > (int64) mc_error_bytes) ? MC_SEV_ERROR : MC_SEV_WARNING;
	v->occurrences = n;
	v->used_after = g->bytes;
	v->used_delta = g->bytes;
	v->unit = MC_UNIT_NONE;
	v->rate_bytes = -1;
	mc_dsm_sites(g, v);
	snprintf(v->detail, MC_DETAIL_LEN,
			 "%d DSM segment%s (%lld bytes; %d created, %d attached) mapped by %s (%s) %s %s still mapped: %s",
			 n, n == 1 ? "" : "s", (long long) g->bytes, g->created, n - g->created,
			 lib ? lib : "foreign code", entry, where, n == 1 ? "is" : "are",
			 g->pinned ? "the mapping is pinned (dsm_pin_mapping), so it stays until the backend exits and PostgreSQL never warns about it"
			 : "it is owned by the transaction still in progress, which releases it at its end with a leak warning");
	mc_finding_changed(v);
}

/*
 * One dsm_leak finding per (library, lifetime) for the still-mapped
 * records the filter selects; returns how many records were reported.
 */
static int
mc_dsm_report(McDsmFilter filter, void *arg, const char *where)
{
	int			lib;
	int			pinned;
	int			total = 0;

	for (lib = MC_NO_LIB; lib < mc_lib_count(); lib++)
		for (pinned = 0; pinned <= 1; pinned++)
		{
			McDsmGroup g = {.lib = lib, .pinned = pinned == 1, .filter = filter, .arg = arg};

			if (!mc_dsm_gather(&g))
				continue;
			total += g.n;
			mc_dsm_finding(&g, where);
		}
	return total;
}

static bool
mc_dsm_in_window(const McDsmRec *r, void *arg)
{
	(void) arg;
	return r->attached_at >= window_started;
}

void
mc_dsm_window_begin(void)
{
	mc_dsm_sync();
	window_started = GetCurrentTimestamp();
}

/* end(): what was mapped during the window and still is */
void
mc_dsm_window_end(void)
{
	mc_dsm_sync();
	if (window_started != 0)
		mc_dsm_report(mc_dsm_in_window, NULL, "during the measured window, and at its end");
}

/* ---------- SQL: the original's tracking table ---------- */

static void
mc_require_dsm(void)
{
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_ext_memcheck must be loaded via shared_preload_libraries")));
}

/* track_dsm_handle(handle bigint) returns text */
Datum
mc_track_dsm_handle(PG_FUNCTION_ARGS)
{
	int64		h = PG_GETARG_INT64(0);
	dsm_segment *seg;
	McDsmRec   *r;
	char		msg[200];

	mc_require_dsm();
	mc_dsm_sync();
	if (h <= 0 || h > (int64) PG_UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("handle must be a DSM handle between 1 and %u (got %lld)",
						PG_UINT32_MAX, (long long) h)));
	seg = dsm_find_mapping((dsm_handle) h);
	if (seg != NULL)
	{
		r = mc_dsm_follow(seg, false, true, MC_NO_LIB, 0);
		if (r == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("this backend already follows %d DSM segments", MC_DSM_LOCAL)));
		snprintf(msg, sizeof(msg),
				 "tracking DSM segment %u (%zu bytes), mapped in this backend: dsm_tracking() shows when it is detached",
				 r->handle, r->size);
	}
	else
	{
		McDsmRec	ext;

		/* mapped elsewhere: look at it once, then follow whether it still exists */
		seg = dsm_attach((dsm_handle) h);
		if (seg == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("no DSM segment with handle %lld exists", (long long) h)));
		memset(&ext, 0, sizeof(ext));
		ext.handle = (uint32) h;
		ext.size = dsm_segment_map_length(seg);
		ext.lib = MC_NO_LIB;
		ext.attached_at = GetCurrentTimestamp();
		ext.serial = next_serial++;
		ext.user = true;
		dsm_detach(seg);
		mc_dsm_row_insert(&ext, true);
		snprintf(msg, sizeof(msg),
				 "tracking DSM segment %u (%zu bytes), not mapped in this backend: dsm_tracking() shows it detached once it no longer exists",
				 ext.handle, ext.size);
	}
	PG_RETURN_TEXT_P(cstring_to_text(msg));
}

/* does the segment still exist?  (for rows of segments mapped elsewhere) */
static bool
mc_dsm_exists(uint32 handle)
{
	dsm_segment *seg;

	if (dsm_find_mapping(handle) != NULL)
		return true;
	seg = dsm_attach(handle);
	if (seg == NULL)
		return false;
	dsm_detach(seg);
	return true;
}

/*
 * dsm_tracking(): segid, backend_pid, attach_at, size_bytes, detached,
 * source_lib, pinned, origin; every backend's rows.
 */
Datum
mc_dsm_tracking(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore;
	McDsmRow   *copy;
	int			i;

	mc_require_dsm();
	mc_dsm_sync();
	tupstore = mc_srf_begin(fcinfo, &tupdesc);
	copy = palloc(sizeof(McDsmRow) * MC_DSM_ROWS);
	LWLockAcquire(shared->lock, LW_SHARED);
	memcpy(copy, shared->rows, sizeof(McDsmRow) * MC_DSM_ROWS);
	LWLockRelease(shared->lock);
	for (i = 0; i < MC_DSM_ROWS; i++)
	{
		McDsmRow   *w = &copy[i];
		Datum		values[8];
		bool		nulls[8] = {0};

		if (w->pid == 0)
			continue;
		values[0] = Int64GetDatum((int64) w->handle);
		values[1] = Int32GetDatum(w->pid);
		values[2] = TimestampTzGetDatum(w->attach_at);
		values[3] = Int64GetDatum(w->size);
		/* a backend that exited unmapped everything it had */
		values[4] = BoolGetDatum(w->external ? !mc_dsm_exists(w->handle) :
								 (w->detached || (w->pid != MyProcPid && BackendPidGetProc(w->pid) == NULL)));
		values[5] = CStringGetTextDatum(w->lib);
		if (w->lib[0] == '\0')
			nulls[5] = true;
		values[6] = BoolGetDatum(w->pinned);
		values[7] = CStringGetTextDatum(w->user ? "user" : "auto");
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/* clear_dsm_tracking(): empty the table (live segments stay followed for dsm_leak) */
Datum
mc_clear_dsm_tracking(PG_FUNCTION_ARGS)
{
	int			i;

	(void) fcinfo;
	mc_require_dsm();
	rows_dirty = false;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	memset(shared->rows, 0, sizeof(shared->rows));
	shared->dropped = 0;
	LWLockRelease(shared->lock);
	for (i = 0; i < MC_DSM_LOCAL; i++)
	{
		recs[i].row = -1;
		if (recs[i].used && recs[i].detached)
			recs[i].used = false;
	}
	PG_RETURN_VOID();
}

/* ---------- dsm_lifecycle_check ---------- */

typedef struct McDsmProbe
{
	int64		attaches;
	int64		detaches;		/* by the library */
	int64		released;		/* by its resource owner (with a warning) or at exit */
	int32		per_iteration[MC_DSM_PER_ITER];
	int32		left_per_iteration[MC_DSM_PER_ITER];
	int			listed;
	int64		still_mapped;
	int64		pinned;
} McDsmProbe;

static void
mc_dsm_probe_start(McScenario *sc)
{
	int			i;

	sc->state = MemoryContextAllocZero(sc->cxt, sizeof(McDsmProbe));
	/* earlier probes' records are not this one's */
	for (i = 0; i < MC_DSM_LOCAL; i++)
		if (recs[i].used && recs[i].iteration != 0)
			recs[i].iteration = -1;
	probe_iteration = 1;
}

static void
mc_dsm_probe_iteration(McScenario *sc, int32 done)
{
	McDsmProbe *p = (McDsmProbe *) sc->state;
	int			i;
	int32		attached = 0;
	int32		left = 0;

	for (i = 0; i < MC_DSM_LOCAL; i++)
		if (recs[i].used && recs[i].iteration == done)
		{
			attached++;
			if (!recs[i].detached)
				left++;
		}
	if (p->listed < MC_DSM_PER_ITER)
	{
		p->per_iteration[p->listed] = attached;
		p->left_per_iteration[p->listed] = left;
		p->listed++;
	}
	probe_iteration = done + 1;
}

static bool
mc_dsm_in_probe(const McDsmRec *r, void *arg)
{
	(void) arg;
	return r->iteration > 0;
}

static void
mc_dsm_probe_finish(McScenario *sc)
{
	McDsmProbe *p = (McDsmProbe *) sc->state;
	int			i;

	probe_iteration = 0;
	for (i = 0; i < MC_DSM_LOCAL; i++)
	{
		McDsmRec   *r = &recs[i];

		if (!r->used || r->iteration <= 0)
			continue;
		p->attaches++;
		if (r->detached && r->explicit_detach)
			p->detaches++;
		else if (r->detached)
			p->released++;
		else
		{
			p->still_mapped++;
			if (r->pinned)
				p->pinned++;
		}
	}
	mc_dsm_report(mc_dsm_in_probe, NULL, "during dsm_lifecycle_check, and at its end");
	for (i = 0; i < MC_DSM_LOCAL; i++)
		if (recs[i].used && recs[i].iteration > 0)
			recs[i].iteration = -1;
}

/* "dsm": {"attaches", "detaches", "released_at_cleanup", "still_mapped", "pinned", "balanced", per iteration} */
static void
mc_dsm_probe_result(McScenario *sc, StringInfo out)
{
	McDsmProbe *p = (McDsmProbe *) sc->state;
	int			i;

	if (p == NULL)
		return;
	mc_json_key(out, "dsm");
	appendStringInfo(out,
					 "{\"attaches\": %lld, \"detaches\": %lld, \"released_at_cleanup\": %lld, \"still_mapped\": %lld, \"pinned\": %lld, \"balanced\": %s",
					 (long long) p->attaches, (long long) p->detaches, (long long) p->released,
					 (long long) p->still_mapped, (long long) p->pinned,
					 p->attaches == p->detaches ? "true" : "false");
	appendStringInfoString(out, ", \"attaches_per_iteration\": [");
	for (i = 0; i < p->listed; i++)
		appendStringInfo(out, "%s%d", i > 0 ? ", " : "", p->per_iteration[i]);
	appendStringInfoString(out, "], \"left_mapped_per_iteration\": [");
	for (i = 0; i < p->listed; i++)
		appendStringInfo(out, "%s%d", i > 0 ? ", " : "", p->left_per_iteration[i]);
	appendStringInfoString(out, "]}");
}

static const McScenarioKind dsm_lifecycle_check = {
	"dsm_lifecycle_check", "Counts the DSM segments the extension attaches and detaches per iteration; what stays mapped is a dsm_leak",
	20, false, false, false, false,
	mc_dsm_probe_start, mc_dsm_probe_iteration, mc_dsm_probe_finish, NULL, mc_dsm_probe_result
};

void
mc_dsm_init(void)
{
	mc_gotwrap_add_targets(dsm_targets, lengthof(dsm_targets));
	mc_scenario_register(&dsm_lifecycle_check);
	mc_worker_on_job(mc_dsm_window_begin, mc_dsm_window_end);
}
