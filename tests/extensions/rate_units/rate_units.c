/*-------------------------------------------------------------------------
 *
 * rate_units.c
 *		A per-statement leak made by two hook entries, for tests only
 *		(issue 19, item 8: the rate a user means).
 *
 * Statement-tracking extensions (pg_stat_statements, pg_stat_monitor,
 * pg_qualstats) enter a library twice or more per statement: ExecutorStart
 * and ExecutorEnd, or the planner and ExecutorEnd.  With rate_units.leak set,
 * each entry keeps a chunk in TopMemoryContext that is never freed:
 *
 *	executor	ExecutorStart keeps 8,000 bytes, ExecutorEnd 16,000
 *	planner		the planner keeps 8,000 bytes, ExecutorEnd 16,000
 *
 * at every nesting level, so a statement that EXECUTEs inner statements in a
 * PL/pgSQL loop keeps that much per inner execution.  The user's unit is the
 * statement (or the execution): about 24 kB each, not 12 kB "per call".
 * rate_units_bytes_per_statement() is the truth: the two chunks' real
 * footprint in TopMemoryContext.
 *
 * rate_units.warmup_kb > 0 adds a cache filled once, at the first
 * statement after it is set: that many kB kept in TopMemoryContext besides
 * the leak (a lazily built lookup table).  It is not part of the rate.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "optimizer/planner.h"
#include "utils/guc.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#if PG_VERSION_NUM >= 190000
#define PLANNER_PARAMS Query *parse, const char *query_string, int cursorOptions, \
	ParamListInfo boundParams, ExplainState *es
#define PLANNER_ARGS parse, query_string, cursorOptions, boundParams, es
#else
#define PLANNER_PARAMS Query *parse, const char *query_string, int cursorOptions, \
	ParamListInfo boundParams
#define PLANNER_ARGS parse, query_string, cursorOptions, boundParams
#endif

#define FIRST_BYTES 8000		/* ExecutorStart, or the planner */
#define END_BYTES 16000			/* ExecutorEnd */

typedef enum RateLeak
{
	LEAK_NONE,
	LEAK_EXECUTOR,
	LEAK_PLANNER
} RateLeak;

static const struct config_enum_entry leak_options[] = {
	{"none", LEAK_NONE, false},
	{"executor", LEAK_EXECUTOR, false},
	{"planner", LEAK_PLANNER, false},
	{NULL, 0, false}
};

static int	leak = LEAK_NONE;
static int	warmup_kb = 0;
static void *warmup_cache = NULL;
static int64 kept_bytes = 0;
static int64 kept_statements = 0;
static planner_hook_type prev_planner = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

/* BUG: kept in TopMemoryContext, never freed */
static void
keep(Size bytes)
{
	char	   *p = MemoryContextAlloc(TopMemoryContext, bytes);

	memset(p, 0, bytes);
	kept_bytes += GetMemoryChunkSpace(p);
}

static PlannedStmt *
rate_planner(PLANNER_PARAMS)
{
	if (leak == LEAK_PLANNER)
		keep(FIRST_BYTES);
	if (prev_planner)
		return prev_planner(PLANNER_ARGS);
	return standard_planner(PLANNER_ARGS);
}

static void
rate_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (warmup_kb > 0 && warmup_cache == NULL)
		warmup_cache = MemoryContextAllocZero(TopMemoryContext, (Size) warmup_kb * 1024);
	if (leak == LEAK_EXECUTOR)
		keep(FIRST_BYTES);
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
rate_ExecutorEnd(QueryDesc *queryDesc)
{
	if (leak != LEAK_NONE)
	{
		keep(END_BYTES);
		kept_statements++;
	}
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static Size
footprint(Size bytes)
{
	void	   *p = MemoryContextAlloc(TopMemoryContext, bytes);
	Size		size = GetMemoryChunkSpace(p);

	pfree(p);
	return size;
}

PG_FUNCTION_INFO_V1(rate_units_bytes_per_statement);

Datum
rate_units_bytes_per_statement(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_INT64((int64) (footprint(FIRST_BYTES) + footprint(END_BYTES)));
}

PG_FUNCTION_INFO_V1(rate_units_kept);

Datum
rate_units_kept(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "rate_units: return type must be a row type");
	values[0] = Int64GetDatum(kept_bytes);
	values[1] = Int64GetDatum(kept_statements);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

void
_PG_init(void)
{
	DefineCustomEnumVariable("rate_units.leak",
							 "BUG: which hooks keep memory in TopMemoryContext on every statement.",
							 NULL, &leak, LEAK_NONE, leak_options, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("rate_units.warmup_kb",
							"A cache of this many kB kept once, at the first statement after it is set.",
							NULL, &warmup_kb, 0, 0, 64 * 1024, PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("rate_units");
	prev_planner = planner_hook;
	planner_hook = rate_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = rate_ExecutorStart;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = rate_ExecutorEnd;
}
