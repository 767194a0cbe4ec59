/*-------------------------------------------------------------------------
 *
 * reparent_ctx.c
 *		Contexts that change parents, for tests only (issue 19, item 3).
 *
 * With reparent_ctx.enabled on, the ExecutorStart hook does what executor
 * hooks do when they need per-query state before the executor state exists
 * (auto_explain and pg_stat_statements switch to es_query_cxt after
 * standard_ExecutorStart; some extensions set their state up before it):
 * it creates a context under CurrentMemoryContext, allocates its state
 * there, calls the next ExecutorStart and then moves the context under
 * queryDesc->estate->es_query_cxt with MemoryContextSetParent.  The context
 * is deleted with the query's executor state at ExecutorEnd: clean.
 *
 * reparent_ctx_keepplan(int) is the same in PostgreSQL's hands: SPI_keepplan
 * moves the prepared plan's context under CacheMemoryContext on the
 * library's behalf, and SPI_freeplan deletes it again before the function
 * returns: clean.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#define STATE_BYTES 4096

static bool enabled = false;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;

static void
reparent_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	MemoryContext state_cxt = NULL;

	if (enabled)
	{
		state_cxt = AllocSetContextCreate(CurrentMemoryContext, "reparent_ctx query state",
										  ALLOCSET_DEFAULT_SIZES);
		memset(MemoryContextAlloc(state_cxt, STATE_BYTES), 0, STATE_BYTES);
	}
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	/* from now on it lives and dies with the query */
	if (state_cxt != NULL)
		MemoryContextSetParent(state_cxt, queryDesc->estate->es_query_cxt);
}

PG_FUNCTION_INFO_V1(reparent_ctx_keepplan);

Datum
reparent_ctx_keepplan(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	SPIPlanPtr	plan;
	bool		isnull;
	int32		result;

	values[0] = PG_GETARG_DATUM(0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "reparent_ctx: SPI_connect failed");
	plan = SPI_prepare("SELECT $1 + 1", 1, argtypes);
	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "reparent_ctx: SPI_prepare/SPI_keepplan failed");
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reparent_ctx: the kept plan did not return one row");
	result = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freeplan(plan);
	SPI_finish();
	PG_RETURN_INT32(result);
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("reparent_ctx.enabled",
							 "Create a per-query context in ExecutorStart and move it under es_query_cxt.",
							 NULL, &enabled, false, PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("reparent_ctx");
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = reparent_ExecutorStart;
}
