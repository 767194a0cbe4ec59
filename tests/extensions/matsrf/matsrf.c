/*-------------------------------------------------------------------------
 *
 * matsrf.c
 *		A materialize-mode set-returning function, for tests only (issue 19,
 *		item 4).
 *
 * Shaped like pg_stat_statements() and pg_buffercache's summary functions:
 * one call per statement builds every row in a tuplestore that PostgreSQL
 * created in the query's memory (InitMaterializedSRF from 15; the manual
 * pattern of contrib before it), and PostgreSQL frees the tuplestore and the
 * function's ExprContext memory when the statement ends.  matsrf_rows()
 * builds each row's values in the caller's per-tuple memory;
 * matsrf_rows_in_query_memory() builds them all in the query's memory
 * (ecxt_per_query_memory, as functions do that switch there once for their
 * whole body), where they stay until the statement ends.  Called once per
 * statement for 100 statements, either keeps nothing: clean.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_MODULE_MAGIC;

#define MATSRF_COLS 2
#define LABEL_LEN 100

#if PG_VERSION_NUM < 150000
/* the manual pattern (contrib before 15): a tuplestore in the query's memory */
static void
InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	MemoryContext old;

	(void) flags;
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("matsrf: materialize mode required, but it is not allowed in this context")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "matsrf: return type must be a row type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = CreateTupleDescCopy(tupdesc);
	MemoryContextSwitchTo(old);
}
#endif

static void
matsrf_fill(FunctionCallInfo fcinfo, int32 n)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		label[LABEL_LEN + 1];
	int32		i;

	memset(label, 'x', LABEL_LEN);
	label[LABEL_LEN] = '\0';
	for (i = 1; i <= n; i++)
	{
		Datum		values[MATSRF_COLS];
		bool		nulls[MATSRF_COLS] = {false, false};

		values[0] = Int32GetDatum(i);
		values[1] = CStringGetTextDatum(label);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

PG_FUNCTION_INFO_V1(matsrf_rows);

Datum
matsrf_rows(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	matsrf_fill(fcinfo, PG_GETARG_INT32(0));
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(matsrf_rows_in_query_memory);

Datum
matsrf_rows_in_query_memory(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;

	InitMaterializedSRF(fcinfo, 0);
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	matsrf_fill(fcinfo, PG_GETARG_INT32(0));
	MemoryContextSwitchTo(old);
	return (Datum) 0;
}
