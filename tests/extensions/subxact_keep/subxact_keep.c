/*-------------------------------------------------------------------------
 *
 * subxact_keep.c
 *		A subtransaction callback that keeps memory until the top-level
 *		commit, for tests only (issue 19, item 7).
 *
 * Extensions that track state per subtransaction register a SubXactCallback
 * and hand state to the parent level at SUBXACT_EVENT_COMMIT_SUB (PL/Java's
 * SubXactListener, pg_mooncake's columnstore AtSubCommit).  With subxact_keep.enabled on,
 * this one list_copy()s its watch list there into CurrentMemoryContext:
 * ReleaseCurrentSubTransaction() switched to the committing subtransaction's
 * CurTransactionContext, which AtSubCommit_Memory would delete if it were
 * empty; with the copy in it PostgreSQL keeps the whole context (8 kB) until
 * the top-level transaction ends.  With one PL/pgSQL EXCEPTION block per
 * inserted row that is about 8 kB per row until commit.
 *
 * subxact_keep_stats() is the truth the checker's rate is compared with: for
 * every subtransaction whose context was empty before the copy, the
 * context's size (MemoryContextMemAllocated) is counted as kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "funcapi.h"
#include "nodes/pg_list.h"
#include "utils/guc.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#define WATCHED 4

static bool enabled = false;
static List *watch_list = NIL;	/* in TopMemoryContext, made once */
static List *committed_copy = NIL;	/* the copy handed "to the parent" */
static int64 stat_subxacts = 0;
static int64 stat_kept_contexts = 0;
static int64 stat_kept_bytes = 0;

static void
subxact_keep_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
					  void *arg)
{
	bool		was_empty;

	(void) mySubid;
	(void) parentSubid;
	(void) arg;
	if (!enabled || event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	was_empty = MemoryContextIsEmpty(CurrentMemoryContext);
	/* BUG: the copy lands in the committing subtransaction's CurTransactionContext */
	committed_copy = list_copy(watch_list);
	stat_subxacts++;
	if (was_empty)
	{
		stat_kept_contexts++;
		stat_kept_bytes += MemoryContextMemAllocated(CurrentMemoryContext, false);
	}
}

/* the copies die with the transaction: forget them */
static void
subxact_keep_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		committed_copy = NIL;
}

PG_FUNCTION_INFO_V1(subxact_keep_stats);

Datum
subxact_keep_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "subxact_keep: return type must be a row type");
	values[0] = Int64GetDatum(stat_subxacts);
	values[1] = Int64GetDatum(stat_kept_contexts);
	values[2] = Int64GetDatum(stat_kept_bytes);
	stat_subxacts = stat_kept_contexts = stat_kept_bytes = 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

void
_PG_init(void)
{
	MemoryContext old;
	int			i;

	DefineCustomBoolVariable("subxact_keep.enabled",
							 "BUG: copy the watch list into CurrentMemoryContext at every subtransaction commit.",
							 NULL, &enabled, false, PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("subxact_keep");
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (i = 0; i < WATCHED; i++)
		watch_list = lappend_oid(watch_list, (Oid) (16384 + i));
	MemoryContextSwitchTo(old);
	RegisterSubXactCallback(subxact_keep_callback, NULL);
	RegisterXactCallback(subxact_keep_xact_callback, NULL);
}
