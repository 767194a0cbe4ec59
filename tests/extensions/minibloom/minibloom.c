/*-------------------------------------------------------------------------
 *
 * minibloom.c
 *		A minimal but real index access method, for tests only (issue 19,
 *		items 2 and 5: code entered without a bracket).
 *
 * Shaped like contrib/bloom: an amhandler returns the IndexAmRoutine; the
 * pages are plain data pages written through generic WAL; the index stores
 * (heap TID, int4 key) items instead of bloom signatures, so a scan is exact.
 * Its memory handling is bloom's:
 *
 *	ambuild		creates "minibloom build context", where it collects every
 *				entry (an array grown by repalloc) to write them sorted by key
 *				at the end, and "minibloom build temporary context", where the
 *				per-tuple callback it hands to table_index_build_scan computes
 *				an 8,800-byte scratch "signature" (more than an AllocSet chunk:
 *				a block of its own) and which it resets every tuple; the build
 *				deletes both contexts at its end.  With
 *				minibloom.build_work_mb > 0 the build first grows a work area
 *				of that many MB in its build context, 2 MB at a time, and
 *				raises an ERROR when that is more than maintenance_work_mem
 *				(item 2: abort cleanup frees it).
 *	aminsert	creates "minibloom insert temporary context" per call and
 *				deletes it before returning.
 *	ambeginscan / amrescan / amgettuple / amendscan: the matching TIDs are
 *				collected in the scan's memory, freed at rescan and end.
 *	amcostestimate: genericcostestimate.
 *
 * All of that is clean.  The real bug (item 5'), minibloom.insert_leak = on:
 * aminsert keeps 512 bytes per call in the index's relcache memory
 * (rd_indexcxt, under CacheMemoryContext, alive until the backend exits),
 * "remembering the last key".  minibloom_kept() is the truth the checker's
 * rate is compared with.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/genam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#define MB_SCRATCH_BYTES 8800	/* per tuple built, like bloom's signature */
#define MB_WORK_PIECE (2 * 1024 * 1024)	/* the work area grows by this much */
#define MB_LEAK_BYTES 512		/* the insert_leak bug, per aminsert call */

/* one index entry */
typedef struct MbTuple
{
	ItemPointerData heap_tid;
	int32		key;
} MbTuple;

static int	build_work_mb = 0;
static bool insert_leak = false;
static int64 kept_bytes = 0;
static int64 kept_calls = 0;

/* ---------- pages ---------- */

/* a new, exclusively locked page at the end of the index */
static Buffer
mb_new_buffer(Relation index)
{
#if PG_VERSION_NUM >= 160000
	return ExtendBufferedRel(BMR_REL(index), MAIN_FORKNUM, NULL, EB_LOCK_FIRST);
#else
	bool		need_lock = !RELATION_IS_LOCAL(index);
	Buffer		buffer;

	if (need_lock)
		LockRelationForExtension(index, ExclusiveLock);
	buffer = ReadBuffer(index, P_NEW);
	LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
	if (need_lock)
		UnlockRelationForExtension(index, ExclusiveLock);
	return buffer;
#endif
}

static bool
mb_page_add(Page page, MbTuple *tup)
{
	return PageAddItem(page, (Item) tup, sizeof(MbTuple), InvalidOffsetNumber, false, false)
		!= InvalidOffsetNumber;
}

/* write a page built in local memory as a new page of the index */
static void
mb_flush_page(Relation index, Page local)
{
	Buffer		buffer = mb_new_buffer(index);
	GenericXLogState *state = GenericXLogStart(index);
	Page		page = GenericXLogRegisterBuffer(state, buffer, GENERIC_XLOG_FULL_IMAGE);

	memcpy(page, local, BLCKSZ);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buffer);
}

/* add one entry to the last page, or to a new one when it is full */
static void
mb_append(Relation index, MbTuple *tup)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	GenericXLogState *state;
	Buffer		buffer;
	Page		page;

	if (nblocks > 0)
	{
		buffer = ReadBuffer(index, nblocks - 1);
		LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buffer, 0);
		if (PageIsNew(page))
			PageInit(page, BLCKSZ, 0);
		if (mb_page_add(page, tup))
		{
			GenericXLogFinish(state);
			UnlockReleaseBuffer(buffer);
			return;
		}
		GenericXLogAbort(state);
		UnlockReleaseBuffer(buffer);
	}
	buffer = mb_new_buffer(index);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buffer, GENERIC_XLOG_FULL_IMAGE);
	PageInit(page, BLCKSZ, 0);
	if (!mb_page_add(page, tup))
		elog(ERROR, "minibloom: could not add an item to an empty page");
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buffer);
}

/* an entry built in CurrentMemoryContext, with bloom-like scratch work */
static MbTuple *
mb_form_tuple(ItemPointer tid, Datum key)
{
	MbTuple    *tup = palloc0(sizeof(MbTuple));
	char	   *scratch = palloc0(MB_SCRATCH_BYTES);

	scratch[0] = (char) DatumGetInt32(key);
	tup->heap_tid = *tid;
	tup->key = DatumGetInt32(key);
	return tup;
}

/* ---------- build ---------- */

typedef struct MbBuildState
{
	MemoryContext build_cxt;	/* the collected entries; deleted at the end */
	MemoryContext tmp_cxt;		/* reset after every tuple */
	MbTuple    *entries;
	int			nentries;
	int			room;
} MbBuildState;

static void
mb_build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool tupleIsAlive,
				  void *state)
{
	MbBuildState *bs = (MbBuildState *) state;
	MemoryContext old;
	MbTuple    *tup;

	(void) index;
	(void) tupleIsAlive;
	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmp_cxt);
	tup = mb_form_tuple(tid, values[0]);
	if (bs->nentries == bs->room)
	{
		bs->room *= 2;
		bs->entries = repalloc(bs->entries, bs->room * sizeof(MbTuple));
	}
	bs->entries[bs->nentries++] = *tup;
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmp_cxt);
}

static int
mb_cmp_key(const void *a, const void *b)
{
	int32		ka = ((const MbTuple *) a)->key;
	int32		kb = ((const MbTuple *) b)->key;

	return (ka > kb) - (ka < kb);
}

/* item 2's shape: a large work area grown in the build's context, then a memory-limit check */
static void
mb_build_work_area(MemoryContext build_cxt)
{
	Size		total = 0;

	while (total < (Size) build_work_mb * 1024 * 1024)
	{
		memset(MemoryContextAlloc(build_cxt, MB_WORK_PIECE), 0x5a, MB_WORK_PIECE);
		total += MB_WORK_PIECE;
	}
	if ((int64) build_work_mb * 1024 > (int64) maintenance_work_mem)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("minibloom: the build's work area needs %d MB, maintenance_work_mem is %d kB",
						build_work_mb, maintenance_work_mem)));
}

static IndexBuildResult *
mb_build(Relation heap, Relation index, IndexInfo *indexInfo)
{
	MbBuildState bs;
	IndexBuildResult *result;
	PGAlignedBlock page;
	double		heap_tuples;
	int			i;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	memset(&bs, 0, sizeof(bs));
	bs.build_cxt = AllocSetContextCreate(CurrentMemoryContext, "minibloom build context",
										 ALLOCSET_DEFAULT_SIZES);
	bs.tmp_cxt = AllocSetContextCreate(CurrentMemoryContext, "minibloom build temporary context",
									   ALLOCSET_DEFAULT_SIZES);
	if (build_work_mb > 0)
		mb_build_work_area(bs.build_cxt);
	bs.room = 256;
	bs.entries = MemoryContextAlloc(bs.build_cxt, bs.room * sizeof(MbTuple));
	heap_tuples = table_index_build_scan(heap, index, indexInfo, true, true, mb_build_callback,
										 &bs, NULL);

	/* the entries sorted by key, page after page */
	qsort(bs.entries, bs.nentries, sizeof(MbTuple), mb_cmp_key);
	PageInit((Page) page.data, BLCKSZ, 0);
	for (i = 0; i < bs.nentries; i++)
	{
		if (mb_page_add((Page) page.data, &bs.entries[i]))
			continue;
		mb_flush_page(index, (Page) page.data);
		PageInit((Page) page.data, BLCKSZ, 0);
		if (!mb_page_add((Page) page.data, &bs.entries[i]))
			elog(ERROR, "minibloom: could not add an item to an empty page");
	}
	if (bs.nentries > 0)
		mb_flush_page(index, (Page) page.data);
	MemoryContextDelete(bs.tmp_cxt);
	MemoryContextDelete(bs.build_cxt);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = heap_tuples;
	result->index_tuples = i;
	return result;
}

static void
mb_buildempty(Relation index)
{
	(void) index;				/* an empty init fork is an empty index */
}

/* ---------- insert ---------- */

static bool
mb_insert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid, Relation heap,
		  IndexUniqueCheck checkUnique,
#if PG_VERSION_NUM >= 140000
		  bool indexUnchanged,
#endif
		  IndexInfo *indexInfo)
{
	MemoryContext insert_cxt;
	MemoryContext old;

	(void) heap;
	(void) checkUnique;
	(void) indexInfo;
#if PG_VERSION_NUM >= 140000
	(void) indexUnchanged;
#endif
	if (isnull[0])
		return false;
	insert_cxt = AllocSetContextCreate(CurrentMemoryContext, "minibloom insert temporary context",
									   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(insert_cxt);
	mb_append(index, mb_form_tuple(heap_tid, values[0]));
	if (insert_leak)
	{
		/* BUG: "remember the last key" in the index's relcache memory, every call */
		int32	   *last = MemoryContextAlloc(index->rd_indexcxt, MB_LEAK_BYTES);

		*last = DatumGetInt32(values[0]);
		kept_bytes += GetMemoryChunkSpace(last);
		kept_calls++;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(insert_cxt);
	return false;
}

/* ---------- scans ---------- */

typedef struct MbScanOpaque
{
	MemoryContext cxt;			/* the scan's memory (CurrentMemoryContext at begin) */
	bool		collected;
	ItemPointerData *tids;
	int			ntids;
	int			next;
} MbScanOpaque;

static IndexScanDesc
mb_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	MbScanOpaque *so = palloc0(sizeof(MbScanOpaque));

	so->cxt = CurrentMemoryContext;
	scan->opaque = so;
	return scan;
}

static void
mb_forget(MbScanOpaque *so)
{
	if (so->tids != NULL)
		pfree(so->tids);
	so->tids = NULL;
	so->ntids = 0;
	so->next = 0;
	so->collected = false;
}

static void
mb_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	(void) nkeys;
	(void) orderbys;
	(void) norderbys;
	if (keys != NULL && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	mb_forget((MbScanOpaque *) scan->opaque);
}

static bool
mb_matches(IndexScanDesc scan, const MbTuple *tup)
{
	int			i;

	for (i = 0; i < scan->numberOfKeys; i++)
	{
		ScanKey		key = &scan->keyData[i];

		if ((key->sk_flags & SK_ISNULL) || DatumGetInt32(key->sk_argument) != tup->key)
			return false;
	}
	return true;
}

/* every matching TID, read page by page into the scan's memory */
static void
mb_collect(IndexScanDesc scan, MbScanOpaque *so)
{
	Relation	index = scan->indexRelation;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	BlockNumber blkno;
	int			room = 64;

	so->tids = MemoryContextAlloc(so->cxt, room * sizeof(ItemPointerData));
	for (blkno = 0; blkno < nblocks; blkno++)
	{
		Buffer		buffer = ReadBuffer(index, blkno);
		Page		page;
		OffsetNumber off;
		OffsetNumber max;

		LockBuffer(buffer, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buffer);
		max = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
		for (off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off))
		{
			MbTuple    *tup = (MbTuple *) PageGetItem(page, PageGetItemId(page, off));

			if (!mb_matches(scan, tup))
				continue;
			if (so->ntids == room)
			{
				room *= 2;
				so->tids = repalloc(so->tids, room * sizeof(ItemPointerData));
			}
			so->tids[so->ntids++] = tup->heap_tid;
		}
		UnlockReleaseBuffer(buffer);
	}
	so->collected = true;
}

static bool
mb_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	MbScanOpaque *so = (MbScanOpaque *) scan->opaque;

	(void) dir;
	if (!so->collected)
		mb_collect(scan, so);
	if (so->next >= so->ntids)
		return false;
	scan->xs_heaptid = so->tids[so->next++];
	scan->xs_recheck = true;
	return true;
}

static void
mb_endscan(IndexScanDesc scan)
{
	MbScanOpaque *so = (MbScanOpaque *) scan->opaque;

	mb_forget(so);
	pfree(so);
}

/* ---------- vacuum ---------- */

static IndexBulkDeleteResult *
mb_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats, IndexBulkDeleteCallback callback,
			  void *callback_state)
{
	Relation	index = info->index;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	BlockNumber blkno;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	for (blkno = 0; blkno < nblocks; blkno++)
	{
		Buffer		buffer = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, info->strategy);
		GenericXLogState *state;
		Page		page;
		OffsetNumber dead[MaxOffsetNumber];
		int			ndead = 0;
		OffsetNumber off;
		OffsetNumber max;

		LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buffer, 0);
		max = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
		for (off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off))
		{
			MbTuple    *tup = (MbTuple *) PageGetItem(page, PageGetItemId(page, off));

			if (callback(&tup->heap_tid, callback_state))
				dead[ndead++] = off;
			else
				stats->num_index_tuples += 1;
		}
		if (ndead > 0)
		{
			PageIndexMultiDelete(page, dead, ndead);
			GenericXLogFinish(state);
		}
		else
			GenericXLogAbort(state);
		stats->tuples_removed += ndead;
		UnlockReleaseBuffer(buffer);
	}
	stats->num_pages = nblocks;
	return stats;
}

static IndexBulkDeleteResult *
mb_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;
	if (stats == NULL)
	{
		stats = palloc0(sizeof(IndexBulkDeleteResult));
		stats->num_index_tuples = info->num_heap_tuples;
	}
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	return stats;
}

/* ---------- planning, options, validation ---------- */

static void
mb_costestimate(PlannerInfo *root, IndexPath *path, double loop_count, Cost *indexStartupCost,
				Cost *indexTotalCost, Selectivity *indexSelectivity, double *indexCorrelation,
				double *indexPages)
{
	GenericCosts costs;

	memset(&costs, 0, sizeof(costs));
	costs.numIndexTuples = path->indexinfo->tuples;	/* every scan reads the whole index */
	genericcostestimate(root, path, loop_count, &costs);
	*indexStartupCost = costs.indexStartupCost;
	*indexTotalCost = costs.indexTotalCost;
	*indexSelectivity = costs.indexSelectivity;
	*indexCorrelation = costs.indexCorrelation;
	*indexPages = costs.numIndexPages;
}

static bytea *
mb_options(Datum reloptions, bool validate)
{
	(void) reloptions;
	if (validate)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("minibloom indexes take no options")));
	return NULL;
}

static bool
mb_validate(Oid opclassoid)
{
	(void) opclassoid;
	return true;
}

PG_FUNCTION_INFO_V1(minibloom_handler);

Datum
minibloom_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	(void) fcinfo;
	am->amstrategies = 1;
	am->amsupport = 1;
	am->amoptsprocnum = 0;
	am->amcanorder = false;
	am->amcanorderbyop = false;
	am->amcanbackward = false;
	am->amcanunique = false;
	am->amcanmulticol = false;
	am->amoptionalkey = false;
	am->amsearcharray = false;
	am->amsearchnulls = false;
	am->amstorage = false;
	am->amclusterable = false;
	am->ampredlocks = false;
	am->amcanparallel = false;
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = false;
	am->amparallelvacuumoptions = 0;
	am->amkeytype = InvalidOid;

	am->ambuild = mb_build;
	am->ambuildempty = mb_buildempty;
	am->aminsert = mb_insert;
	am->ambulkdelete = mb_bulkdelete;
	am->amvacuumcleanup = mb_vacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = mb_costestimate;
	am->amoptions = mb_options;
	am->amproperty = NULL;
	am->ambuildphasename = NULL;
	am->amvalidate = mb_validate;
	am->ambeginscan = mb_beginscan;
	am->amrescan = mb_rescan;
	am->amgettuple = mb_gettuple;
	am->amgetbitmap = NULL;
	am->amendscan = mb_endscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;
	PG_RETURN_POINTER(am);
}

PG_FUNCTION_INFO_V1(minibloom_kept);

Datum
minibloom_kept(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "minibloom: return type must be a row type");
	values[0] = Int64GetDatum(kept_bytes);
	values[1] = Int64GetDatum(kept_calls);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

void
_PG_init(void)
{
	DefineCustomIntVariable("minibloom.build_work_mb",
							"Size of the work area each build fills before its memory-limit check (0: none).",
							NULL, &build_work_mb, 0, 0, 512, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("minibloom.insert_leak",
							 "BUG: aminsert keeps 512 bytes per call in the index's relcache memory.",
							 NULL, &insert_leak, false, PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("minibloom");
}
