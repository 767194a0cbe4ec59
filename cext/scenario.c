/*-------------------------------------------------------------------------
 *
 * scenario.c
 *		run_scenario() and the scenario procedure: repeat a workload and
 *		judge after every iteration what foreign code left behind.
 *
 * Scenarios:
 *	growth_benchmark	run the workload N times
 *	tx_abort_loop		run it N times, each in a subtransaction rolled back
 *
 * Every iteration is a quiet point (track.c): memory foreign code still
 * holds in long-lived contexts is compared with the last iteration, so a
 * leak shows as growth in every iteration and a cache as growth once.
 *
 * CALL ext_memcheck.scenario(...) commits after every iteration, so memory
 * freed at transaction end is seen being freed and is never mistaken for
 * memory that lives until the backend exits.  SELECT ext_memcheck.
 * run_scenario(...), the original tool's form, cannot commit inside a
 * SELECT: it runs the iterations in the calling transaction, and its
 * result says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "hooks.h"

PG_FUNCTION_INFO_V1(mc_run_scenario);
PG_FUNCTION_INFO_V1(mc_scenario_proc);

#define MC_MAX_ITERATIONS	10000000
#define MC_REPORT_FINDINGS	20
#define MC_CHECKPOINTS		17		/* the start, then every sixteenth of the run */

/* what foreign code held at each checkpoint, per place a finding names */
typedef struct McSeries
{
	char		path[MC_PATH_LEN];	/* hash key, zero padded */
	int64		held[MC_CHECKPOINTS];
} McSeries;

typedef struct McScenario
{
	const char *name;
	bool		rollback;
	int32		iterations;
	const char *workload;
	bool		each;			/* commit after every iteration */
	const char *transaction_note;
	int64		errors;
	char	   *first_error;
	int			first_sqlerrcode;
	TimestampTz started;
	MemoryContext cxt;
	HTAB	   *series;
	int			ncheckpoints;
	int32		checkpoint_at[MC_CHECKPOINTS];
} McScenario;

/* errors a scenario must not swallow: the caller wants the run to stop */
static bool
mc_error_stops_run(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_QUERY_CANCELED ||
		sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
		sqlerrcode == ERRCODE_CRASH_SHUTDOWN ||
		sqlerrcode == ERRCODE_OUT_OF_MEMORY ||
		sqlerrcode == ERRCODE_IDLE_IN_TRANSACTION_SESSION_TIMEOUT;
}

static void
mc_check_spi_result(int rc, const char *workload)
{
	if (rc >= 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("the workload cannot run inside a scenario: %s", SPI_result_code_string(rc)),
			 errdetail("Workload: %s", workload),
			 errhint("Transaction control (BEGIN, COMMIT, SAVEPOINT ...) and COPY FROM STDIN / TO STDOUT cannot run inside run_scenario; run them as plain statements.")));
}

static void
mc_run_once(McScenario *sc)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int rc = 0;

	if (!sc->rollback)
	{
		rc = SPI_execute(sc->workload, false, 0);
		mc_check_spi_result(rc, sc->workload);
		SPI_freetuptable(SPI_tuptable);
		return;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		rc = SPI_execute(sc->workload, false, 0);
		if (rc >= 0)
			SPI_freetuptable(SPI_tuptable);
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(sc->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (mc_error_stops_run(edata->sqlerrcode))
			ReThrowError(edata);
		if (sc->errors++ == 0)
		{
			sc->first_error = edata->message ? edata->message : "error";
			sc->first_sqlerrcode = edata->sqlerrcode;
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	mc_check_spi_result(rc, sc->workload);
}

static void
mc_add_held(const char *path, int64 bytes, void *arg)
{
	McScenario *sc = (McScenario *) arg;
	char		key[MC_PATH_LEN];
	McSeries   *e;
	bool		found;

	memset(key, 0, sizeof(key));
	strlcpy(key, path, sizeof(key));
	e = (McSeries *) hash_search(sc->series, key, HASH_ENTER, &found);
	if (!found)
		memset(e->held, 0, sizeof(e->held));
	e->held[sc->ncheckpoints] += bytes;
}

/* a checkpoint after `done` iterations: what foreign code holds now */
static void
mc_checkpoint(McScenario *sc, int32 done)
{
	if (sc->ncheckpoints >= MC_CHECKPOINTS)
		return;
	mc_track_foreach_held(mc_add_held, sc);
	sc->checkpoint_at[sc->ncheckpoints++] = done;
}

/* the iteration count of checkpoint k (1..16) */
static int32
mc_checkpoint_due(McScenario *sc, int k)
{
	return (int32) (((int64) sc->iterations * k + MC_CHECKPOINTS - 2) / (MC_CHECKPOINTS - 1));
}

/* growth is measured from the scenario's start */
static void
mc_settle_for_scenario(void)
{
	mc_hooks_safe_point();
	if (mc_active)
		mc_track_judge(false);
	mc_track_series_reset();
}

static void
mc_scenario_loop(McScenario *sc, bool nonatomic)
{
	int32		i;
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = MC_PATH_LEN;
	ctl.entrysize = sizeof(McSeries);
	ctl.hcxt = sc->cxt;
	sc->series = hash_create("pg_ext_memcheck scenario samples", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* growth is measured from here */
	mc_settle_for_scenario();
	mc_checkpoint(sc, 0);
	for (i = 0; i < sc->iterations; i++)
	{
		mc_run_once(sc);
		if (sc->each)
		{
			SPI_commit();
			SPI_start_transaction();
		}
		mc_track_judge(true);
		if (i + 1 >= mc_checkpoint_due(sc, sc->ncheckpoints))
			mc_checkpoint(sc, i + 1);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	if (sc->errors > 0 && sc->errors == sc->iterations)
		ereport(ERROR,
				(errmsg("every iteration of the workload failed (%lld of %d): %s",
						(long long) sc->errors, sc->iterations,
						sc->first_error ? sc->first_error : "error"),
				 errcode(sc->first_sqlerrcode ? sc->first_sqlerrcode : ERRCODE_INVALID_PARAMETER_VALUE),
				 errdetail("Workload: %s", sc->workload)));
}

/*
 * "checkpoints" (iterations done at each) and, for every place a reported
 * finding names, "contexts": [{"path", "samples"}], the bytes foreign code
 * held there at each checkpoint.
 */
static void
mc_append_samples(StringInfo out, McScenario *sc)
{
	int			i;
	int			k;
	int			shown = 0;

	appendStringInfoString(out, ", \"checkpoints\": [");
	for (k = 0; k < sc->ncheckpoints; k++)
		appendStringInfo(out, k ? ", %d" : "%d", sc->checkpoint_at[k]);
	appendStringInfoString(out, "], \"contexts\": [");
	for (i = 0; i < mc_findings_count() && shown < MC_REPORT_FINDINGS; i++)
	{
		bool		in_window;
		const McViolation *v = mc_finding_at(i, &in_window);
		char		key[MC_PATH_LEN];
		McSeries   *e;

		if (v == NULL || v->ts < sc->started || v->check == MC_CHECK_COVERAGE_GAP)
			continue;
		memset(key, 0, sizeof(key));
		strlcpy(key, v->context_path, sizeof(key));
		e = (McSeries *) hash_search(sc->series, key, HASH_REMOVE, NULL);
		if (e == NULL)
			continue;			/* no samples, or already shown */
		appendStringInfoString(out, shown++ ? ", {\"path\": " : "{\"path\": ");
		escape_json(out, e->path);
		appendStringInfoString(out, ", \"samples\": [");
		for (k = 0; k < sc->ncheckpoints; k++)
			appendStringInfo(out, k ? ", " INT64_FORMAT : INT64_FORMAT, e->held[k]);
		appendStringInfoString(out, "]}");
	}
	appendStringInfoChar(out, ']');
}

/* the scenario's result: what it did and the findings it made or updated */
static Datum
mc_scenario_result(McScenario *sc)
{
	StringInfoData out;
	int			i;
	int			shown = 0;
	bool		leak = false;

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"scenario\": ");
	escape_json(&out, sc->name);
	appendStringInfo(&out, ", \"iterations\": %d, \"errors\": %lld, \"transaction\": \"%s\"",
					 sc->iterations, (long long) sc->errors, sc->each ? "each" : "one");
	if (sc->transaction_note != NULL)
	{
		appendStringInfoString(&out, ", \"transaction_note\": ");
		escape_json(&out, sc->transaction_note);
	}
	if (sc->first_error != NULL)
	{
		appendStringInfoString(&out, ", \"first_error\": ");
		escape_json(&out, sc->first_error);
		appendStringInfo(&out, ", \"first_sqlstate\": \"%s\"", unpack_sql_state(sc->first_sqlerrcode));
	}
	appendStringInfoString(&out, ", \"findings\": [");
	for (i = 0; i < mc_findings_count(); i++)
	{
		bool		in_window;
		const McViolation *v = mc_finding_at(i, &in_window);
		const char *life;

		if (v == NULL || v->ts < sc->started || v->check == MC_CHECK_COVERAGE_GAP)
			continue;
		if (v->verdict == MC_VERDICT_LEAK)
			leak = true;
		if (shown++ >= MC_REPORT_FINDINGS)
			continue;
		life = mc_lifetime_name(v->lifetime);
		appendStringInfoString(&out, shown > 1 ? ", {\"check\": " : "{\"check\": ");
		escape_json(&out, mc_check_name(v->check));
		appendStringInfo(&out, ", \"severity\": \"%s\", \"context\": ", mc_severity_name(v->severity));
		escape_json(&out, v->context_name);
		appendStringInfoString(&out, ", \"path\": ");
		escape_json(&out, v->context_path);
		appendStringInfoString(&out, ", \"lib\": ");
		escape_json(&out, v->source_lib);
		appendStringInfo(&out, ", \"lifetime\": %s%s%s, \"verdict\": %s%s%s, \"bytes\": %lld",
						 life ? "\"" : "", life ? life : "null", life ? "\"" : "",
						 mc_verdict_name(v->verdict) ? "\"" : "",
						 mc_verdict_name(v->verdict) ? mc_verdict_name(v->verdict) : "null",
						 mc_verdict_name(v->verdict) ? "\"" : "",
						 (long long) v->used_delta);
		if (v->rate_bytes >= 0)
			appendStringInfo(&out, ", \"rate\": %.1f, \"unit\": \"%s\"", v->rate_bytes,
							 mc_unit_name(v->unit));
		if (v->bytes_per_iter >= 0)
			appendStringInfo(&out, ", \"bytes_per_iteration\": %.1f", v->bytes_per_iter);
		appendStringInfoChar(&out, '}');
	}
	appendStringInfo(&out, "], \"verdict\": \"%s\"", leak ? "leak" : "plateau");
	mc_append_samples(&out, sc);
	appendStringInfoChar(&out, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data));
}

/* arguments common to both entry points; errors name the argument */
static void
mc_scenario_args(FunctionCallInfo fcinfo, McScenario *sc, const char **transaction)
{
	char	   *scenario;

	if (!mc_ring_attached())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_ext_memcheck must be loaded via shared_preload_libraries")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("scenario_name must not be null")));
	scenario = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strcmp(scenario, "growth_benchmark") == 0)
		sc->rollback = false;
	else if (strcmp(scenario, "tx_abort_loop") == 0)
		sc->rollback = true;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown scenario_name \"%s\"", scenario),
				 errhint("Use growth_benchmark or tx_abort_loop.")));
	sc->name = scenario;
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iterations must not be null")));
	sc->iterations = PG_GETARG_INT32(1);
	if (sc->iterations < 1 || sc->iterations > MC_MAX_ITERATIONS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iterations must be between 1 and %d (got %d)",
						MC_MAX_ITERATIONS, sc->iterations)));
	sc->workload = PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strspn(sc->workload, " \t\r\n;") == strlen(sc->workload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workload must be a non-empty SQL string")));
	*transaction = NULL;
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		Jsonb	   *opts = PG_GETARG_JSONB_P(3);
		JsonbValue	key;
		JsonbValue *val;

		if (!JB_ROOT_IS_OBJECT(opts) || JB_ROOT_IS_SCALAR(opts))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options must be a JSON object, like {\"transaction\": \"one\"}")));
		key.type = jbvString;
		key.val.string.val = "transaction";
		key.val.string.len = strlen("transaction");
		val = findJsonbValueFromContainer(&opts->root, JB_FOBJECT, &key);
		if (val != NULL)
		{
			if (val->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options key \"transaction\" must be \"each\" or \"one\"")));
			*transaction = pnstrdup(val->val.string.val, val->val.string.len);
			if (strcmp(*transaction, "each") != 0 && strcmp(*transaction, "one") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options key \"transaction\" must be \"each\" or \"one\", not \"%s\"",
								*transaction)));
		}
	}
}

static Datum
mc_scenario_run(McScenario *sc, bool nonatomic)
{
	volatile Datum result = (Datum) 0;

	sc->cxt = AllocSetContextCreate(TopMemoryContext, "pg_ext_memcheck scenario",
									ALLOCSET_SMALL_SIZES);
	sc->started = GetCurrentTimestamp();
	PG_TRY();
	{
		MemoryContext old = MemoryContextSwitchTo(sc->cxt);

		sc->name = pstrdup(sc->name);
		sc->workload = pstrdup(sc->workload);
		MemoryContextSwitchTo(old);
		mc_scenario_loop(sc, nonatomic);
		mc_findings_publish(true);
		result = mc_scenario_result(sc);
	}
	PG_FINALLY();
	{
		MemoryContextDelete(sc->cxt);
	}
	PG_END_TRY();
	return result;
}

/* SELECT run_scenario(scenario_name, iterations, workload [, options]) */
Datum
mc_run_scenario(PG_FUNCTION_ARGS)
{
	McScenario	sc;
	const char *transaction;

	memset(&sc, 0, sizeof(sc));
	mc_scenario_args(fcinfo, &sc, &transaction);
	if (transaction != NULL && strcmp(transaction, "each") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("run_scenario cannot commit after each iteration: a SELECT runs in one transaction"),
				 errhint("Use CALL ext_memcheck.scenario(...) for a transaction per iteration.")));
	sc.each = false;
	sc.transaction_note = "called as a function, which runs in the caller's transaction; CALL ext_memcheck.scenario(...) commits after every iteration";
	PG_RETURN_DATUM(mc_scenario_run(&sc, false));
}

/*
 * CALL scenario(scenario_name, iterations, workload, options, INOUT result):
 * a transaction per iteration unless {"transaction": "one"} is given or the
 * CALL itself runs inside a transaction block.
 */
Datum
mc_scenario_proc(PG_FUNCTION_ARGS)
{
	McScenario	sc;
	const char *transaction;
	bool		nonatomic;
	TupleDesc	tupdesc;
	Datum		values[1];
	bool		nulls[1] = {false};

	memset(&sc, 0, sizeof(sc));
	mc_scenario_args(fcinfo, &sc, &transaction);
	nonatomic = fcinfo->context != NULL && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	sc.each = nonatomic && (transaction == NULL || strcmp(transaction, "each") == 0);
	if (!nonatomic)
		sc.transaction_note = "the CALL ran inside a transaction block or a function, so every iteration ran in that one transaction";
	if (transaction != NULL && strcmp(transaction, "each") == 0 && !nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("scenario cannot commit after each iteration here"),
				 errhint("CALL it at top level, outside a transaction block.")));
	values[0] = mc_scenario_run(&sc, nonatomic);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		PG_RETURN_DATUM(values[0]);
	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
