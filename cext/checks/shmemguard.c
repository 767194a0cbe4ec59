/*-------------------------------------------------------------------------
 *
 * shmemguard.c
 *		Guard bytes behind shared-memory allocations: shmem_overrun.
 *
 * Every named allocation of the main shared memory segment (what
 * pg_shmem_allocations lists) is rounded up to a cache line, so between
 * the size ShmemInitStruct was asked for and the size it reserved there is
 * usually some slack nobody owns.  A pattern written there and found
 * changed later means code wrote past the end of that structure.
 *
 * Foreign libraries get more: their GOT slot for ShmemInitStruct points
 * at mc_guard_ShmemInitStruct, which, when the structure is created,
 * allocates a guard block from shared memory right behind it (space
 * pg_ext_memcheck requested for that purpose, so nobody runs short), and
 * writes the pattern over slack and block at once, before the library
 * initializes its structure.  Their calls to ShmemInitHash name the owner
 * of the hash table's header.  The requested sizes are never changed, so
 * pg_shmem_allocations shows what the library asked for, and attaching to
 * an existing structure works as before.  pg_ext_memcheck's shmem startup
 * runs before the libraries' own (pg_ext_memcheck.c), so this holds in any
 * load order for libraries that set their structures up in
 * shmem_startup_hook.
 *
 * The other allocations (PostgreSQL's own, or made before our start-up)
 * are armed lazily, by the first backend that checks the guards, from
 * pg_get_shmem_allocations(); their owner is "postgres" when they were
 * allocated before the libraries' start-up.  Guards are checked at every
 * end(), after every scenario, after every iteration of
 * shmem_sentinel_probe, and by probe_check(); a changed guard is recorded
 * in shared memory (so that every backend's window sees it), becomes a
 * shmem_overrun finding (ERROR) naming the allocation and its owner, and
 * is written again, so that the next overrun is seen too.  Allocations
 * with no room for a guard (a size that is a multiple of the cache line,
 * and no guard block) are listed by coverage() and shmem_guards().
 *
 * Nothing here runs on a per-query path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "checks/checks.h"

PG_FUNCTION_INFO_V1(mc_shmem_guards);
PG_FUNCTION_INFO_V1(mc_clear_shmem_registry);
PG_FUNCTION_INFO_V1(mc_register_shmem_probe);
PG_FUNCTION_INFO_V1(mc_probe_check);

#define MC_GUARD_MAX		512
#define MC_GUARD_NAME_LEN	64	/* SHMEM_INDEX_KEYSIZE is 48 */
#define MC_GUARD_BLOCK		64	/* asked for; a cache line is reserved */
#define MC_GUARD_BLOCKS		64
#define MC_GUARD_HINTS		64
#define MC_GUARD_SHMEM_NAME "pg_ext_memcheck shmem guards"
#define MC_GUARD_TRANCHE	"pg_ext_memcheck guards"
#define MC_OWNER_POSTGRES	"postgres"
#define MC_OWNER_UNKNOWN	"unknown"

typedef struct McGuard
{
	char		name[MC_GUARD_NAME_LEN];
	char		owner[MC_LIB_LEN];
	bool		foreign;		/* owner is a foreign library */
	bool		wrapped;		/* created through its patched ShmemInitStruct */
	bool		armed;			/* the pattern is in place */
	char	   *base;
	Size		size;			/* requested */
	Size		allocated;		/* reserved (cache-line aligned) */
	Size		guard_from;		/* first guard byte: size (never inside the structure) */
	Size		block_len;		/* guard block right behind the allocation, or 0 */
	uint32		overruns;
	TimestampTz detected_at;
	int32		detected_by;
	int64		bad_first;		/* bytes past the requested end */
	int64		bad_last;
	int64		bad_bytes;
} McGuard;

typedef struct McGuardHint
{
	char		name[MC_GUARD_NAME_LEN];
	char		owner[MC_LIB_LEN];
} McGuardHint;

typedef struct McGuardShared
{
	LWLock	   *lock;
	char	   *mark;			/* below: allocated before the libraries' start-up */
	int			nguards;
	int			blocks_left;
	int			nhints;
	bool		full;			/* more allocations than MC_GUARD_MAX */
	McGuardHint hints[MC_GUARD_HINTS];
	McGuard		guards[MC_GUARD_MAX];
} McGuardShared;

static McGuardShared *shared = NULL;

/* this backend's begin() */
static TimestampTz window_started = 0;

/* ---------- the pattern ---------- */

static inline uint8
mc_guard_byte(Size past_end)
{
	return (uint8) (0xDE ^ (past_end * 0x1D));
}

/* guarded bytes of g: [base + guard_from, base + allocated + block_len) */
static void
mc_guard_write(McGuard *g)
{
	Size		end = g->allocated + g->block_len;
	Size		i;

	for (i = g->guard_from; i < end; i++)
		g->base[i] = (char) mc_guard_byte(i - g->guard_from);
	g->armed = end > g->guard_from;
}

/* compare; the changed range as offsets past the requested size */
static bool
mc_guard_intact(const McGuard *g, int64 *first, int64 *last, int64 *count)
{
	Size		end = g->allocated + g->block_len;
	Size		i;

	*count = 0;
	*first = *last = -1;
	for (i = g->guard_from; i < end; i++)
		if ((uint8) g->base[i] != mc_guard_byte(i - g->guard_from))
		{
			if (*first < 0)
				*first = (int64) i - (int64) g->size;
			*last = (int64) i - (int64) g->size;
			(*count)++;
		}
	return *count == 0;
}

/* ---------- shared memory ---------- */

static Size
mc_guards_shmem_size(void)
{
	return sizeof(McGuardShared);
}

void
mc_guards_request_shmem(void)
{
	RequestAddinShmemSpace(add_size(mc_guards_shmem_size(),
									mul_size(MC_GUARD_BLOCKS, CACHELINEALIGN(MC_GUARD_BLOCK))));
	RequestNamedLWLockTranche(MC_GUARD_TRANCHE, 1);
}

/*
 * Before the libraries' shmem_startup_hook code runs (pg_ext_memcheck.c):
 * everything allocated so far is PostgreSQL's.
 */
void
mc_guards_shmem_startup(void)
{
	bool		found;

	shared = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct(MC_GUARD_SHMEM_NAME, mc_guards_shmem_size(), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(*shared));
		shared->lock = &(GetNamedLWLockTranche(MC_GUARD_TRANCHE))->lock;
		shared->mark = (char *) shared;
		shared->blocks_left = MC_GUARD_BLOCKS;
	}
	LWLockRelease(AddinShmemInitLock);
}

static McGuard *
mc_guard_find(const char *name)
{
	int			i;

	for (i = 0; i < shared->nguards; i++)
		if (strcmp(shared->guards[i].name, name) == 0)
			return &shared->guards[i];
	return NULL;
}

/* a new entry (caller holds the lock exclusively), or NULL when full */
static McGuard *
mc_guard_new(const char *name)
{
	McGuard    *g;

	if (shared->nguards >= MC_GUARD_MAX)
	{
		shared->full = true;
		return NULL;
	}
	g = &shared->guards[shared->nguards++];
	memset(g, 0, sizeof(*g));
	mc_strlcpy(g->name, name, MC_GUARD_NAME_LEN);
	return g;
}

/* ---------- foreign libraries' calls (their GOT points here) ---------- */

/*
 * A foreign library creates a shared structure: put a guard block right
 * behind it and arm slack and block before the library fills it in.  May
 * run in the postmaster (shmem_startup_hook) or, for structures created
 * later, in a backend.
 */
static void
mc_guard_adopt(const char *name, char *p, Size size, int lib)
{
	McGuard    *g;
	char	   *block = NULL;
	Size		allocated = CACHELINEALIGN(size);
	bool		noroom;

	if (shared == NULL || p == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (mc_guard_find(name) != NULL || (g = mc_guard_new(name)) == NULL)
	{
		LWLockRelease(shared->lock);
		return;
	}
	if (shared->blocks_left > 0)
	{
		block = ShmemAllocNoError(MC_GUARD_BLOCK);
		if (block != NULL)
			shared->blocks_left--;
	}
	g->base = p;
	g->size = size;
	g->allocated = allocated;
	g->guard_from = size;
	/* only a block right behind the structure guards it */
	g->block_len = (block != NULL && block == p + allocated) ? CACHELINEALIGN(MC_GUARD_BLOCK) : 0;
	g->foreign = lib != MC_NO_LIB;
	g->wrapped = true;
	mc_strlcpy(g->owner, lib != MC_NO_LIB ? mc_lib_name(lib) : MC_OWNER_UNKNOWN, MC_LIB_LEN);
	mc_guard_write(g);
	noroom = !g->armed;
	LWLockRelease(shared->lock);

	if (noroom)
	{
		char		detail[256];

		snprintf(detail, sizeof(detail),
				 "shared memory \"%s\" (%zu bytes) has no room for a guard: writes past its end are not detected",
				 name, size);
		mc_record_gap(lib != MC_NO_LIB ? mc_lib_name(lib) : NULL, "shared memory guard", detail);
	}
}

static void *
mc_guard_ShmemInitStruct(const char *name, Size size, bool *foundPtr)
{
	void	   *p = ShmemInitStruct(name, size, foundPtr);

	if (!*foundPtr)
		mc_guard_adopt(name, (char *) p, size,
					   mc_lib_of_address(__builtin_return_address(0)));
	return p;
}

/* the header of a shared hash table: its name tells the owner */
static void
mc_guard_hint(const char *name, int lib)
{
	int			i;

	if (shared == NULL || lib == MC_NO_LIB)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->nhints; i++)
		if (strcmp(shared->hints[i].name, name) == 0)
			break;
	if (i == shared->nhints && i < MC_GUARD_HINTS)
	{
		mc_strlcpy(shared->hints[i].name, name, MC_GUARD_NAME_LEN);
		mc_strlcpy(shared->hints[i].owner, mc_lib_name(lib), MC_LIB_LEN);
		shared->nhints++;
	}
	LWLockRelease(shared->lock);
}

#if PG_VERSION_NUM < 190000
static HTAB *
mc_guard_ShmemInitHash(const char *name, long init_size, long max_size,
					   HASHCTL *infoP, int hash_flags)
{
	HTAB	   *h = ShmemInitHash(name, init_size, max_size, infoP, hash_flags);

	mc_guard_hint(name, mc_lib_of_address(__builtin_return_address(0)));
	return h;
}
#endif

static const McGotTarget guard_targets[] = {
	{"ShmemInitStruct", (void *) mc_guard_ShmemInitStruct, NULL},
#if PG_VERSION_NUM < 190000
	{"ShmemInitHash", (void *) mc_guard_ShmemInitHash, NULL},
#endif
};

/* ---------- arming every named allocation (in a backend) ---------- */

typedef struct McShmemRow
{
	char		name[MC_GUARD_NAME_LEN];
	int64		off;
	int64		size;
	int64		allocated;
} McShmemRow;

/*
 * pg_shmem_allocations' named rows, read by calling its function directly
 * (its EXECUTE privilege is for SQL callers).  Needs a transaction.
 */
static McShmemRow *
mc_shmem_allocations(int *nrows)
{
	FmgrInfo	flinfo;
	ReturnSetInfo rsinfo;
	ExprContext *econtext = CreateStandaloneExprContext();
	TupleTableSlot *slot;
	McShmemRow *rows;
	int			cap = 256;
	int			n = 0;
	LOCAL_FCINFO(fcinfo, 0);

	fmgr_info(F_PG_GET_SHMEM_ALLOCATIONS, &flinfo);
	memset(&rsinfo, 0, sizeof(rsinfo));
	rsinfo.type = T_ReturnSetInfo;
	rsinfo.econtext = econtext;
	rsinfo.allowedModes = (int) SFRM_Materialize;
	rsinfo.returnMode = SFRM_ValuePerCall;
	InitFunctionCallInfoData(*fcinfo, &flinfo, 0, InvalidOid, NULL, (Node *) &rsinfo);
	(void) FunctionCallInvoke(fcinfo);
	rows = palloc(sizeof(McShmemRow) * cap);
	if (rsinfo.setResult != NULL)
	{
		slot = MakeSingleTupleTableSlot(rsinfo.setDesc, &TTSOpsMinimalTuple);
		while (tuplestore_gettupleslot(rsinfo.setResult, true, false, slot))
		{
			bool		isnull_name;
			bool		isnull_off;
			Datum		name = slot_getattr(slot, 1, &isnull_name);
			Datum		off = slot_getattr(slot, 2, &isnull_off);
			bool		isnull;

			if (isnull_name || isnull_off)
				continue;
			if (n == cap)
			{
				cap *= 2;
				rows = repalloc(rows, sizeof(McShmemRow) * cap);
			}
			mc_strlcpy(rows[n].name, TextDatumGetCString(name), MC_GUARD_NAME_LEN);
			rows[n].off = DatumGetInt64(off);
			rows[n].size = DatumGetInt64(slot_getattr(slot, 3, &isnull));
			rows[n].allocated = DatumGetInt64(slot_getattr(slot, 4, &isnull));
			n++;
		}
		ExecDropSingleTupleTableSlot(slot);
		tuplestore_end(rsinfo.setResult);
	}
	FreeExprContext(econtext, true);
	*nrows = n;
	return rows;
}

static const char *
mc_guard_owner_hint(const char *name)
{
	int			i;

	for (i = 0; i < shared->nhints; i++)
		if (strcmp(shared->hints[i].name, name) == 0)
			return shared->hints[i].owner;
	return NULL;
}

/* register and arm the named allocations not guarded yet */
static void
mc_guards_scan(void)
{
	McShmemRow *rows;
	int			n;
	int			i;
	char	   *shmem_base = NULL;

	if (shared == NULL)
		return;
	rows = mc_shmem_allocations(&n);
	/* our own structure tells where offset 0 is */
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].name, MC_GUARD_SHMEM_NAME) == 0)
			shmem_base = (char *) shared - rows[i].off;
	if (shmem_base == NULL)
	{
		pfree(rows);
		return;
	}
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		McGuard    *g;
		const char *owner;
		char	   *base = shmem_base + rows[i].off;

		if (mc_guard_find(rows[i].name) != NULL || rows[i].size < 0 ||
			rows[i].allocated < rows[i].size)
			continue;
		if ((g = mc_guard_new(rows[i].name)) == NULL)
			break;
		g->base = base;
		g->size = (Size) rows[i].size;
		g->allocated = (Size) rows[i].allocated;
		g->guard_from = g->size;
		owner = mc_guard_owner_hint(rows[i].name);
		if (owner != NULL)
		{
			mc_strlcpy(g->owner, owner, MC_LIB_LEN);
			g->foreign = true;
		}
		else if (strncmp(rows[i].name, "pg_ext_memcheck", strlen("pg_ext_memcheck")) == 0)
			mc_strlcpy(g->owner, "pg_ext_memcheck", MC_LIB_LEN);
		else
			mc_strlcpy(g->owner, base < shared->mark ? MC_OWNER_POSTGRES : MC_OWNER_UNKNOWN,
					   MC_LIB_LEN);
		mc_guard_write(g);
	}
	LWLockRelease(shared->lock);
	pfree(rows);
}

/* ---------- checking ---------- */

/*
 * Arm what is new, then compare every guard.  A changed one is recorded
 * (in shared memory, for every backend's window) and written again.
 * Returns the number found changed now.
 */
int
mc_guards_check(void)
{
	int			i;
	int			found = 0;

	if (shared == NULL || !IsTransactionState())
		return 0;
	mc_guards_scan();
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->nguards; i++)
	{
		McGuard    *g = &shared->guards[i];
		int64		first;
		int64		last;
		int64		count;

		if (!g->armed || mc_guard_intact(g, &first, &last, &count))
			continue;
		g->overruns++;
		g->detected_at = GetCurrentTimestamp();
		g->detected_by = MyProcPid;
		g->bad_first = first;
		g->bad_last = last;
		g->bad_bytes = count;
		mc_guard_write(g);
		found++;
	}
	LWLockRelease(shared->lock);
	return found;
}

/* one shmem_overrun finding per overrun guard detected since `since` */
void
mc_guards_report(TimestampTz since)
{
	int			i;
	McGuard    *copy;
	int			n;

	if (shared == NULL)
		return;
	LWLockAcquire(shared->lock, LW_SHARED);
	n = shared->nguards;
	copy = palloc(sizeof(McGuard) * Max(n, 1));
	memcpy(copy, shared->guards, sizeof(McGuard) * n);
	LWLockRelease(shared->lock);

	for (i = 0; i < n; i++)
	{
		McGuard    *g = &copy[i];
		McFindingKey key;
		McViolation *v;
		bool		created;
		char		path[MC_PATH_LEN];

		if (g->overruns == 0 || g->detected_at < since)
			continue;
		snprintf(path, sizeof(path), "shared memory/%s", g->name);
		key.check = MC_CHECK_SHMEM_OVERRUN;
		key.lifetime = MC_LIFE_UNKNOWN;
		key.lib = g->foreign ? mc_lib_by_name(g->owner) : MC_NO_LIB;
		key.path = path;
		v = mc_finding_get(&key, &created);
		if (v == NULL)
			continue;
		v->severity = MC_SEV_ERROR;
		v->phase = MC_PHASE_OTHER;
		v->occurrences = g->overruns;
		v->used_before = (int64) g->size;
		v->used_after = (int64) g->size + g->bad_last + 1;
		v->used_delta = g->bad_bytes;
		mc_strlcpy(v->context_name, g->name, MC_NAME_LEN);
		mc_strlcpy(v->context_path, path, MC_PATH_LEN);
		mc_strlcpy(v->source_lib, g->foreign ? g->owner : "", MC_LIB_LEN);
		snprintf(v->detail, MC_DETAIL_LEN,
				 "shared memory \"%s\" (owner %s; %zu bytes requested, %zu reserved%s): %lld byte%s past its end overwritten (from +%lld to +%lld past the end), seen %u time%s, last by pid %d; the guard was written again",
				 g->name, g->owner, g->size, g->allocated,
				 g->block_len > 0 ? ", guard block behind it" : "",
				 (long long) g->bad_bytes, g->bad_bytes == 1 ? "" : "s",
				 (long long) g->bad_first, (long long) g->bad_last,
				 g->overruns, g->overruns == 1 ? "" : "s", g->detected_by);
		mc_finding_changed(v);
	}
	pfree(copy);
}

void
mc_guards_window_begin(void)
{
	window_started = GetCurrentTimestamp();
	mc_guards_check();
	/* what was found before the window is not the window's */
	window_started = GetCurrentTimestamp();
}

/* end(): check, and report what any backend found since begin() */
void
mc_guards_window_end(void)
{
	mc_guards_check();
	mc_guards_report(window_started);
}

/* ---------- what is guarded (coverage(), shmem_guards(), the probe) ---------- */

static Size
mc_guard_bytes(const McGuard *g)
{
	Size		end = g->allocated + g->block_len;

	return end > g->guard_from ? end - g->guard_from : 0;
}

/* coverage(): foreign allocations, and every allocation without a guard */
void
mc_guards_coverage(Tuplestorestate *tupstore, TupleDesc tupdesc)
{
	int			i;
	int			guarded_core = 0;

	if (shared == NULL)
		return;
	mc_guards_scan();
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nguards; i++)
	{
		McGuard    *g = &shared->guards[i];
		Datum		values[4];
		bool		nulls[4] = {0};
		char		detail[256];

		if (g->armed && !g->foreign)
		{
			guarded_core++;
			continue;
		}
		if (g->armed)
			snprintf(detail, sizeof(detail), "%s: %zu guard bytes behind %zu requested",
					 g->owner, mc_guard_bytes(g), g->size);
		else
			snprintf(detail, sizeof(detail),
					 "%s: no room for a guard (%zu bytes requested, %zu reserved, no guard block)",
					 g->owner, g->size, g->allocated);
		values[0] = CStringGetTextDatum("shared memory");
		values[1] = CStringGetTextDatum(g->name);
		values[2] = BoolGetDatum(g->armed);
		values[3] = CStringGetTextDatum(detail);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	if (guarded_core > 0 || shared->full)
	{
		Datum		values[4];
		bool		nulls[4] = {0};
		char		detail[256];

		snprintf(detail, sizeof(detail), "%d other allocations guarded in their alignment slack%s",
				 guarded_core, shared->full ? "; more allocations exist than are followed" : "");
		values[0] = CStringGetTextDatum("shared memory");
		values[1] = CStringGetTextDatum("(other allocations)");
		values[2] = BoolGetDatum(!shared->full);
		values[3] = CStringGetTextDatum(detail);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	LWLockRelease(shared->lock);
}

/* shmem_guards(): name, owner, size, allocated_size, guard_bytes, guarded, overruns, detected_at, detail */
Datum
mc_shmem_guards(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore = mc_srf_begin(fcinfo, &tupdesc);
	int			i;

	if (shared == NULL)
		return (Datum) 0;
	mc_guards_check();
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nguards; i++)
	{
		McGuard    *g = &shared->guards[i];
		Datum		values[9];
		bool		nulls[9] = {0};
		char		detail[200];

		values[0] = CStringGetTextDatum(g->name);
		values[1] = CStringGetTextDatum(g->owner);
		values[2] = Int64GetDatum((int64) g->size);
		values[3] = Int64GetDatum((int64) g->allocated);
		values[4] = Int32GetDatum((int32) mc_guard_bytes(g));
		values[5] = BoolGetDatum(g->armed);
		values[6] = Int32GetDatum((int32) g->overruns);
		if (g->detected_at != 0)
			values[7] = TimestampTzGetDatum(g->detected_at);
		else
			nulls[7] = true;
		if (!g->armed)
			snprintf(detail, sizeof(detail), "no room for a guard");
		else
			snprintf(detail, sizeof(detail), "%zu bytes of alignment slack%s",
					 g->allocated - g->guard_from,
					 g->block_len > 0 ? " and a guard block" : "");
		values[8] = CStringGetTextDatum(detail);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	LWLockRelease(shared->lock);
	return (Datum) 0;
}

static void
mc_require_guards(void)
{
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_ext_memcheck must be loaded via shared_preload_libraries")));
}

/* clear_shmem_registry(): forget detections and probes, write every guard again */
Datum
mc_clear_shmem_registry(PG_FUNCTION_ARGS)
{
	int			i;

	(void) fcinfo;
	mc_require_guards();
	mc_guards_scan();
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->nguards; i++)
	{
		McGuard    *g = &shared->guards[i];

		g->overruns = 0;
		g->detected_at = 0;
		g->detected_by = 0;
		g->bad_first = g->bad_last = g->bad_bytes = 0;
		g->guard_from = g->size;
		mc_guard_write(g);
	}
	LWLockRelease(shared->lock);
	PG_RETURN_VOID();
}

/*
 * register_shmem_probe(seg_name, allocated_size): the original's manual
 * registration.  Every allocation is guarded already, in the slack behind
 * the size it was created with; that is the only memory nobody owns.  A
 * smaller size is refused: the structure's own bytes are live (PostgreSQL's
 * buffer descriptors, a library's state), and a guard written over them
 * would crash whoever reads them next.
 */
Datum
mc_register_shmem_probe(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		used = PG_GETARG_INT64(1);
	McGuard    *g;
	char		msg[256];

	mc_require_guards();
	mc_guards_scan();
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	g = mc_guard_find(name);
	if (g == NULL)
	{
		LWLockRelease(shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no shared memory allocation named \"%s\"", name),
				 errhint("The names are those of pg_shmem_allocations (ShmemInitStruct's first argument).")));
	}
	if (used < 0 || (Size) used < g->size)
	{
		Size		size = g->size;
		Size		slack = mc_guard_bytes(g);
		char		owner[MC_LIB_LEN];

		mc_strlcpy(owner, g->owner, MC_LIB_LEN);
		LWLockRelease(shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("allocated_size %lld is below the %zu bytes shared memory \"%s\" was created with",
						(long long) used, size, name),
				 errdetail("Its owner (%s) uses those bytes; guard bytes are written only behind them (%zu here), never into them.",
						   owner, slack),
				 errhint("Pass its size (pg_shmem_allocations.size), or call probe_check() alone: every allocation is guarded already.")));
	}
	mc_guard_write(g);
	snprintf(msg, sizeof(msg), "shared memory \"%s\" (owner %s): %zu guard bytes from offset %zu%s",
			 g->name, g->owner, mc_guard_bytes(g), g->guard_from,
			 g->armed ? "" : " (no room for a guard)");
	LWLockRelease(shared->lock);
	PG_RETURN_TEXT_P(cstring_to_text(msg));
}

/* probe_check(seg_name): are its guard bytes intact?  NULL when it has none */
Datum
mc_probe_check(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	McGuard    *g;
	bool		armed;
	uint32		before;
	uint32		after;
	TimestampTz now = GetCurrentTimestamp();

	mc_require_guards();
	mc_guards_scan();
	LWLockAcquire(shared->lock, LW_SHARED);
	g = mc_guard_find(name);
	armed = g != NULL && g->armed;
	before = g != NULL ? g->overruns : 0;
	LWLockRelease(shared->lock);
	if (g == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no shared memory allocation named \"%s\"", name)));
	if (!armed)
		PG_RETURN_NULL();
	mc_guards_check();
	LWLockAcquire(shared->lock, LW_SHARED);
	after = g->overruns;
	LWLockRelease(shared->lock);
	if (after != before)
		mc_guards_report(now);
	PG_RETURN_BOOL(after == before);
}

/* ---------- shmem_sentinel_probe ---------- */

typedef struct McGuardProbe
{
	int			checks;
	int			found;
} McGuardProbe;

static void
mc_guards_probe_start(McScenario *sc)
{
	McGuardProbe *p = MemoryContextAllocZero(sc->cxt, sizeof(McGuardProbe));

	sc->state = p;
	mc_guards_check();
}

static void
mc_guards_probe_iteration(McScenario *sc, int32 done)
{
	McGuardProbe *p = (McGuardProbe *) sc->state;

	(void) done;
	p->found += mc_guards_check();
	p->checks++;
}

/* "guards": {"guarded": n, "allocations": n, "checks": n, "overruns": n, "unguarded": [...], "overrun": [...]} */
static void
mc_guards_probe_result(McScenario *sc, StringInfo out)
{
	McGuardProbe *p = (McGuardProbe *) sc->state;
	int			i;
	int			guarded = 0;
	bool		first = true;

	if (shared == NULL || p == NULL)
		return;
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nguards; i++)
		if (shared->guards[i].armed)
			guarded++;
	mc_json_key(out, "guards");
	appendStringInfo(out, "{\"allocations\": %d, \"guarded\": %d, \"checks\": %d, \"overruns_found\": %d",
					 shared->nguards, guarded, p->checks, p->found);
	appendStringInfoString(out, ", \"unguarded\": [");
	for (i = 0; i < shared->nguards; i++)
		if (!shared->guards[i].armed)
		{
			appendStringInfoString(out, first ? "" : ", ");
			escape_json(out, shared->guards[i].name);
			first = false;
		}
	appendStringInfoString(out, "], \"overrun\": [");
	first = true;
	for (i = 0; i < shared->nguards; i++)
	{
		McGuard    *g = &shared->guards[i];

		if (g->overruns == 0 || g->detected_at < sc->started)
			continue;
		appendStringInfoString(out, first ? "{\"name\": " : ", {\"name\": ");
		escape_json(out, g->name);
		appendStringInfoString(out, ", \"owner\": ");
		escape_json(out, g->owner);
		appendStringInfo(out, ", \"bytes_past_end\": %lld, \"times\": %u}",
						 (long long) g->bad_last + 1, g->overruns);
		first = false;
	}
	appendStringInfoString(out, "]}");
	LWLockRelease(shared->lock);
}

static const McScenarioKind shmem_sentinel_probe = {
	"shmem_sentinel_probe", "Checks the guard bytes behind every shared-memory allocation after every iteration",
	100, false, false, false, false,
	mc_guards_probe_start, mc_guards_probe_iteration, NULL, NULL, mc_guards_probe_result
};

/* every scenario ends with the guards checked (scenarios/ calls it) */
static void
mc_guards_scenario_end(McScenario *sc)
{
	mc_guards_check();
	mc_guards_report(sc->started);
}

/* a worker may have damaged them too */
static void
mc_guards_job_end(void)
{
	(void) mc_guards_check();
}

void
mc_guards_init(void)
{
	mc_gotwrap_add_targets(guard_targets, lengthof(guard_targets));
	mc_scenario_register(&shmem_sentinel_probe);
	mc_scenario_on_end(mc_guards_scenario_end);
	mc_worker_on_job(NULL, mc_guards_job_end);
}
