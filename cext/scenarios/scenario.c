/*-------------------------------------------------------------------------
 *
 * scenario.c
 *		run_scenario() and the scenario procedure: repeat a workload and
 *		judge after every iteration what foreign code left behind.
 *
 * Scenarios (the original tool's names; scenario.h lists where each one's
 * own work is done):
 *	growth_benchmark		run the workload N times; ctx_bloat from growth
 *							sampled at log-spaced checkpoints
 *	tx_abort_loop			run it N times, each in a subtransaction rolled back
 *	shmem_sentinel_probe	check the shared-memory guards after every
 *							iteration
 *	wrong_context_probe		report every allocation by foreign code into
 *							TopMemoryContext, CacheMemoryContext or named
 *							contexts, with its call site
 *	dsm_lifecycle_check		count the DSM segments foreign code attaches and
 *							detaches per iteration
 *	context_reset_storm		(background workers) poison and reset the memory
 *							foreign code allocated between invocations:
 *							use_after_reset
 *	concurrent_backends		(background workers) run the workload in several
 *							backends at once
 *
 * Every iteration is a quiet point (track.c): memory foreign code still
 * holds in long-lived contexts is compared with the last iteration, so a
 * leak shows as growth in every iteration and a cache as growth once.
 * After every scenario the shared-memory guards are checked.
 *
 * CALL ext_memcheck.scenario(...) commits after every iteration, so memory
 * freed at transaction end is seen being freed and is never mistaken for
 * memory that lives until the backend exits.  SELECT ext_memcheck.
 * run_scenario(...), the original tool's form, cannot commit inside a
 * SELECT: it runs the iterations in the calling transaction, and its
 * result says so.
 *
 * Arguments, as the original documents them: scenario_name, iterations
 * (default: the scenario's), workload (default 'SELECT 1') or target (a
 * function called without arguments), options (jsonb), args (text[] of
 * JSON objects merged into options), reset_frequency, workers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "scenarios/scenario.h"

PG_FUNCTION_INFO_V1(mc_run_scenario);
PG_FUNCTION_INFO_V1(mc_scenario_proc);
PG_FUNCTION_INFO_V1(mc_scenarios);

#define MC_MAX_ITERATIONS	10000000
#define MC_MAX_WORKERS		64
#define MC_REPORT_FINDINGS	20
#define MC_CHECKPOINTS		17		/* the start, then every sixteenth of the run */

/* what foreign code held at each checkpoint, per place a finding names */
typedef struct McHeldSeries
{
	char		path[MC_PATH_LEN];	/* hash key, zero padded */
	int64		held[MC_CHECKPOINTS];
} McHeldSeries;

/* the sparkline's samples: every sixteenth of the run (ctx_bloat has its own, bloat.c) */
typedef struct McSamples
{
	HTAB	   *series;
	int			ncheckpoints;
	int32		checkpoint_at[MC_CHECKPOINTS];
} McSamples;

/* argument positions of run_scenario() and scenario() */
#define MC_ARG_NAME			0
#define MC_ARG_ITERATIONS	1
#define MC_ARG_WORKLOAD		2
#define MC_ARG_OPTIONS		3
#define MC_ARG_TARGET		4
#define MC_ARG_ARGS			5
#define MC_ARG_RESET_FREQ	6
#define MC_ARG_WORKERS		7

/* what run_scenario() runs in this file itself: iterations in rolled-back subtransactions */
static const McScenarioKind tx_abort_loop = {
	"tx_abort_loop", "Runs the workload N times, each in a subtransaction rolled back: what abort paths leave behind",
	100, true, false, false, false,
	NULL, NULL, NULL, NULL, NULL
};

/*
 * The kinds, in the order of the scenario vocabulary (vocab.c): checks/
 * registers its own at start-up (mc_scenario_register), so this layer
 * never names a check.
 */
static const McScenarioKind *kinds[MC_NUM_SCENARIOS];

/* the finish work every scenario ends with (checks/: the shared-memory guards) */
#define MC_MAX_SCENARIO_END 4
static void (*end_listeners[MC_MAX_SCENARIO_END]) (McScenario *sc);
static int	nend_listeners = 0;

void
mc_scenario_register(const McScenarioKind *kind)
{
	int			i;

	for (i = 0; i < MC_NUM_SCENARIOS; i++)
		if (strcmp(mc_scenario_name(i), kind->name) == 0)
		{
			kinds[i] = kind;
			return;
		}
	elog(ERROR, "pg_ext_memcheck: scenario %s is not in the vocabulary", kind->name);
}

void
mc_scenario_on_end(void (*listener) (McScenario *sc))
{
	if (nend_listeners >= MC_MAX_SCENARIO_END)
		elog(ERROR, "pg_ext_memcheck: too many scenario end listeners");
	end_listeners[nend_listeners++] = listener;
}

void
mc_scenarios_init(void)
{
	mc_scenario_register(&tx_abort_loop);
}

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

/* ---------- small JSON helpers shared with the kinds ---------- */

void
mc_json_key(StringInfo out, const char *key)
{
	appendStringInfoString(out, ", ");
	escape_json(out, key);
	appendStringInfoString(out, ": ");
}

void
mc_json_string(StringInfo out, const char *key, const char *value)
{
	mc_json_key(out, key);
	if (value == NULL)
		appendStringInfoString(out, "null");
	else
		escape_json(out, value);
}

/* ---------- the loop in this backend ---------- */

static void
mc_run_once(McScenario *sc)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int rc = 0;

	if (!sc->kind->rollback)
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
	McSamples  *sm = (McSamples *) arg;
	char		key[MC_PATH_LEN];
	McHeldSeries *e;
	bool		found;

	memset(key, 0, sizeof(key));
	strlcpy(key, path, sizeof(key));
	e = (McHeldSeries *) hash_search(sm->series, key, HASH_ENTER, &found);
	if (!found)
		memset(e->held, 0, sizeof(e->held));
	e->held[sm->ncheckpoints] += bytes;
}

/* a checkpoint after `done` iterations: what foreign code holds now */
static void
mc_checkpoint(McSamples *sm, int32 done)
{
	if (sm->ncheckpoints >= MC_CHECKPOINTS)
		return;
	mc_track_foreach_held(mc_add_held, sm);
	sm->checkpoint_at[sm->ncheckpoints++] = done;
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
mc_scenario_loop(McScenario *sc)
{
	int32		i;
	HASHCTL		ctl;
	McSamples  *sm = MemoryContextAllocZero(sc->cxt, sizeof(McSamples));

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = MC_PATH_LEN;
	ctl.entrysize = sizeof(McHeldSeries);
	ctl.hcxt = sc->cxt;
	sm->series = hash_create("pg_ext_memcheck scenario samples", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	sc->samples = sm;
	if (SPI_connect_ext(sc->nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* growth is measured from here */
	mc_settle_for_scenario();
	mc_checkpoint(sm, 0);
	if (sc->kind->start)
		sc->kind->start(sc);
	for (i = 0; i < sc->iterations; i++)
	{
		mc_run_once(sc);
		if (sc->each)
		{
			SPI_commit();
			SPI_start_transaction();
		}
		sc->done = i + 1;
		if (sc->kind->iteration)
			sc->kind->iteration(sc, sc->done);
		mc_track_judge(true);
		if (i + 1 >= mc_checkpoint_due(sc, sm->ncheckpoints))
			mc_checkpoint(sm, i + 1);
		CHECK_FOR_INTERRUPTS();
	}
	if (sc->kind->finish)
		sc->kind->finish(sc);
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
 * held there at each checkpoint.  Scenarios that run in background workers
 * have none.
 */
static void
mc_append_samples(StringInfo out, McScenario *sc)
{
	McSamples  *sm = (McSamples *) sc->samples;
	int			i;
	int			k;
	int			shown = 0;

	if (sm == NULL)
		return;
	appendStringInfoString(out, ", \"checkpoints\": [");
	for (k = 0; k < sm->ncheckpoints; k++)
		appendStringInfo(out, k ? ", %d" : "%d", sm->checkpoint_at[k]);
	appendStringInfoString(out, "], \"contexts\": [");
	for (i = 0; i < mc_findings_count() && shown < MC_REPORT_FINDINGS; i++)
	{
		bool		in_window;
		const McViolation *v = mc_finding_at(i, &in_window);
		char		key[MC_PATH_LEN];
		McHeldSeries *e;

		if (v == NULL || v->ts < sc->started || v->check == MC_CHECK_COVERAGE_GAP)
			continue;
		memset(key, 0, sizeof(key));
		strlcpy(key, v->context_path, sizeof(key));
		e = (McHeldSeries *) hash_search(sm->series, key, HASH_REMOVE, NULL);
		if (e == NULL)
			continue;			/* no samples, or already shown */
		appendStringInfoString(out, shown++ ? ", {\"path\": " : "{\"path\": ");
		escape_json(out, e->path);
		appendStringInfoString(out, ", \"samples\": [");
		for (k = 0; k < sm->ncheckpoints; k++)
			appendStringInfo(out, k ? ", " INT64_FORMAT : INT64_FORMAT, e->held[k]);
		appendStringInfoString(out, "]}");
	}
	appendStringInfoChar(out, ']');
}

/*
 * What every scenario checks at its end, whatever its kind: the guards
 * behind shared-memory allocations (a changed one is a shmem_overrun).
 */
void
mc_scenario_judge_shared(McScenario *sc)
{
	int			i;

	for (i = 0; i < nend_listeners; i++)
		end_listeners[i] (sc);
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
	mc_json_string(&out, "workload", sc->workload);
	if (sc->transaction_note != NULL)
		mc_json_string(&out, "transaction_note", sc->transaction_note);
	if (!mc_active)
		mc_json_string(&out, "measuring_note",
					   "pg_ext_memcheck.memcheck_mode is off in this session: memory was not measured");
	if (sc->first_error != NULL)
	{
		mc_json_string(&out, "first_error", sc->first_error);
		appendStringInfo(&out, ", \"first_sqlstate\": \"%s\"", unpack_sql_state(sc->first_sqlerrcode));
	}
	if (sc->kind->result)
		sc->kind->result(sc, &out);
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
		mc_json_string(&out, "detail", v->detail);
		appendStringInfoChar(&out, '}');
	}
	appendStringInfo(&out, "], \"verdict\": \"%s\"", leak ? "leak" : "plateau");
	mc_append_samples(&out, sc);
	appendStringInfoChar(&out, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data));
}

/* ---------- arguments ---------- */

static const McScenarioKind *
mc_scenario_kind(const char *name)
{
	int			i;
	StringInfoData names;

	for (i = 0; i < MC_NUM_SCENARIOS; i++)
		if (kinds[i] != NULL && strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	initStringInfo(&names);
	for (i = 0; i < MC_NUM_SCENARIOS; i++)
		if (kinds[i] != NULL)
			appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "", kinds[i]->name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown scenario_name \"%s\"", name),
			 errhint("Use one of %s.", names.data)));
	return NULL;				/* keep the compiler quiet */
}

/* a context name to watch; comma-separated lists are split */
static void
mc_watch_add(McScenario *sc, const char *names, int len, const char *key)
{
	char	   *copy = pnstrdup(names, len);
	char	   *tok;
	char	   *save = NULL;

	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
	{
		while (*tok == ' ')
			tok++;
		while (*tok != '\0' && tok[strlen(tok) - 1] == ' ')
			tok[strlen(tok) - 1] = '\0';
		if (*tok == '\0')
			continue;
		if (strlen(tok) >= MC_NAME_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("a context name in options key \"%s\" is longer than %d bytes",
							key, MC_NAME_LEN - 1)));
		if (sc->nwatched >= MC_MAX_WATCHED)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("options key \"%s\" names more than %d contexts", key, MC_MAX_WATCHED)));
		mc_strlcpy(sc->watched[sc->nwatched++], tok, MC_NAME_LEN);
	}
}

static int32
mc_option_int(JsonbValue *v, const char *key, int32 lo, int32 hi)
{
	int64		n;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options key \"%s\" must be a number", key)));
	n = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if (n < lo || n > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options key \"%s\" must be between %d and %d (got %lld)",
						key, lo, hi, (long long) n)));
	return (int32) n;
}

/* what an options key takes */
typedef enum McOptionKind
{
	MC_OPT_TRANSACTION,			/* "each" or "one" */
	MC_OPT_CONTEXTS,			/* a name, "A,B", or (contexts) an array */
	MC_OPT_INT					/* a number between lo and hi, into field */
} McOptionKind;

typedef struct McScenarioOption
{
	const char *key;
	McOptionKind kind;
	size_t		field;			/* MC_OPT_INT: offset of an int32 in McScenario */
	int32		lo;
	int32		hi;
} McScenarioOption;

/* the keys options (and args[]) take, in the order the hint lists them */
static const McScenarioOption scenario_options[] = {
	{"transaction", MC_OPT_TRANSACTION, 0, 0, 0},
	{"contexts", MC_OPT_CONTEXTS, 0, 0, 0},
	{"pg_ext_memcheck.watch_contexts", MC_OPT_CONTEXTS, 0, 0, 0},
	{"reset_frequency", MC_OPT_INT, offsetof(McScenario, reset_frequency), 1, MC_MAX_ITERATIONS},
	{"workers", MC_OPT_INT, offsetof(McScenario, workers), 1, MC_MAX_WORKERS},
	{"timeout_ms", MC_OPT_INT, offsetof(McScenario, timeout_ms), 100, INT_MAX},
	{"lock_timeout_ms", MC_OPT_INT, offsetof(McScenario, lock_timeout_ms), 1, INT_MAX},
};

/* the option named key, or an error that lists the known ones */
static const McScenarioOption *
mc_option_lookup(const char *key, const char *where)
{
	StringInfoData known;
	int			i;

	for (i = 0; i < (int) lengthof(scenario_options); i++)
		if (strcmp(key, scenario_options[i].key) == 0)
			return &scenario_options[i];
	initStringInfo(&known);
	for (i = 0; i < (int) lengthof(scenario_options); i++)
		appendStringInfo(&known, "%s%s", i ? ", " : "", scenario_options[i].key);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown options key \"%s\" in %s", key, where),
			 errhint("Known keys: %s.", known.data)));
	return NULL;				/* not reached */
}

/* only "contexts" may hold a value that is not a scalar: an array of names */
static void
mc_option_nesting(int level, JsonbIteratorToken tok, const McScenarioOption *opt,
				  const char *where)
{
	if (level == 2 && (opt == NULL || strcmp(opt->key, "contexts") != 0 || tok != WJB_BEGIN_ARRAY))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options key \"%s\" in %s must not be an object or array",
						opt ? opt->key : "?", where)));
	if (level > 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options key \"contexts\" in %s must be an array of context names", where)));
}

/* one element of the "contexts" array */
static void
mc_option_element(McScenario *sc, JsonbValue *v, const char *where)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options key \"contexts\" in %s must contain only strings", where)));
	mc_watch_add(sc, v->val.string.val, v->val.string.len, "contexts");
}

/* the scalar value of opt */
static void
mc_option_value(McScenario *sc, const McScenarioOption *opt, JsonbValue *v,
				const char *where, const char **transaction)
{
	switch (opt->kind)
	{
		case MC_OPT_TRANSACTION:
			if (v->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options key \"transaction\" must be \"each\" or \"one\"")));
			*transaction = pnstrdup(v->val.string.val, v->val.string.len);
			if (strcmp(*transaction, "each") != 0 && strcmp(*transaction, "one") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options key \"transaction\" must be \"each\" or \"one\", not \"%s\"",
								*transaction)));
			break;
		case MC_OPT_CONTEXTS:
			if (v->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options key \"%s\" in %s must be a context name, a comma-separated list or an array of names",
								opt->key, where)));
			mc_watch_add(sc, v->val.string.val, v->val.string.len, opt->key);
			break;
		case MC_OPT_INT:
			*(int32 *) ((char *) sc + opt->field) = mc_option_int(v, opt->key, opt->lo, opt->hi);
			break;
	}
}

/*
 * One options object: {"transaction": "each"|"one", "contexts": [...],
 * "pg_ext_memcheck.watch_contexts": "A,B", "reset_frequency": n,
 * "workers": n, "timeout_ms": n, "lock_timeout_ms": n} (scenario_options).
 * where names the argument in errors.
 */
static void
mc_parse_scenario_options(McScenario *sc, Jsonb *opts, const char *where,
						  const char **transaction)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	const McScenarioOption *opt = NULL;
	int			level = 0;

	if (!JB_ROOT_IS_OBJECT(opts) || JB_ROOT_IS_SCALAR(opts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object, like {\"transaction\": \"one\"}", where)));
	it = JsonbIteratorInit(&opts->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_BEGIN_ARRAY:
				mc_option_nesting(++level, tok, opt, where);
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				level--;
				break;
			case WJB_KEY:
				opt = mc_option_lookup(pnstrdup(v.val.string.val, v.val.string.len), where);
				break;
			case WJB_ELEM:
				mc_option_element(sc, &v, where);
				break;
			case WJB_VALUE:
				if (opt != NULL)
					mc_option_value(sc, opt, &v, where, transaction);
				break;
			default:
				break;
		}
	}
}

/* target => 'schema.fn': SELECT "schema"."fn"(), a function that exists */
static const char *
mc_target_workload(text *target)
{
	List	   *names = textToQualifiedNameList(target);
	StringInfoData buf;
	ListCell   *lc;

	(void) LookupFuncName(names, 0, NULL, false);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	foreach(lc, names)
	{
		if (lc != list_head(names))
			appendStringInfoChar(&buf, '.');
		appendStringInfoString(&buf, quote_identifier(strVal(lfirst(lc))));
	}
	appendStringInfoString(&buf, "()");
	return buf.data;
}

static bool
mc_arg_given(FunctionCallInfo fcinfo, int n)
{
	return PG_NARGS() > n && !PG_ARGISNULL(n);
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
	if (PG_ARGISNULL(MC_ARG_NAME))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("scenario_name must not be null")));
	scenario = text_to_cstring(PG_GETARG_TEXT_PP(MC_ARG_NAME));
	sc->kind = mc_scenario_kind(scenario);
	sc->name = sc->kind->name;

	sc->iterations = mc_arg_given(fcinfo, MC_ARG_ITERATIONS) ?
		PG_GETARG_INT32(MC_ARG_ITERATIONS) : sc->kind->default_iterations;
	if (sc->iterations < 1 || sc->iterations > MC_MAX_ITERATIONS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iterations must be between 1 and %d (got %d)",
						MC_MAX_ITERATIONS, sc->iterations)));

	if (mc_arg_given(fcinfo, MC_ARG_TARGET))
	{
		if (mc_arg_given(fcinfo, MC_ARG_WORKLOAD))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("give either workload or target, not both")));
		sc->workload = mc_target_workload(PG_GETARG_TEXT_PP(MC_ARG_TARGET));
	}
	else if (mc_arg_given(fcinfo, MC_ARG_WORKLOAD))
		sc->workload = text_to_cstring(PG_GETARG_TEXT_PP(MC_ARG_WORKLOAD));
	else
		sc->workload = "SELECT 1";
	if (strspn(sc->workload, " \t\r\n;") == strlen(sc->workload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workload must be a non-empty SQL string")));

	*transaction = NULL;
	if (mc_arg_given(fcinfo, MC_ARG_OPTIONS))
		mc_parse_scenario_options(sc, PG_GETARG_JSONB_P(MC_ARG_OPTIONS), "options", transaction);
	if (mc_arg_given(fcinfo, MC_ARG_ARGS))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(MC_ARG_ARGS);
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			i;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (i = 0; i < n; i++)
		{
			char		where[32];
			Jsonb	   *jb;

			if (nulls[i])
				continue;
			snprintf(where, sizeof(where), "args[%d]", i + 1);
			jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													CStringGetDatum(TextDatumGetCString(elems[i]))));
			mc_parse_scenario_options(sc, jb, where, transaction);
		}
	}
	if (mc_arg_given(fcinfo, MC_ARG_RESET_FREQ))
	{
		sc->reset_frequency = PG_GETARG_INT32(MC_ARG_RESET_FREQ);
		if (sc->reset_frequency < 1 || sc->reset_frequency > MC_MAX_ITERATIONS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reset_frequency must be between 1 and %d (got %d)",
							MC_MAX_ITERATIONS, sc->reset_frequency)));
	}
	if (mc_arg_given(fcinfo, MC_ARG_WORKERS))
	{
		sc->workers = PG_GETARG_INT32(MC_ARG_WORKERS);
		if (sc->workers < 1 || sc->workers > MC_MAX_WORKERS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("workers must be between 1 and %d (got %d)",
							MC_MAX_WORKERS, sc->workers)));
	}
	if (sc->reset_frequency != 0 && !sc->kind->takes_reset_frequency)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reset_frequency applies to context_reset_storm only, not to %s", sc->name)));
	if (sc->workers != 0 && !sc->kind->takes_workers)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workers applies to concurrent_backends only, not to %s", sc->name)));
	if (sc->nwatched > 0 && !sc->kind->takes_contexts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("contexts to watch apply to wrong_context_probe only, not to %s", sc->name)));
	if (sc->reset_frequency == 0)
		sc->reset_frequency = 1;
	if (sc->workers == 0)
		sc->workers = 4;
}

static Datum
mc_scenario_run(McScenario *sc)
{
	volatile Datum result = (Datum) 0;

	sc->cxt = AllocSetContextCreate(TopMemoryContext, "pg_ext_memcheck scenario",
									ALLOCSET_SMALL_SIZES);
	sc->started = GetCurrentTimestamp();
	mc_workers_collect_crashes();
	PG_TRY();
	{
		MemoryContext old = MemoryContextSwitchTo(sc->cxt);

		sc->workload = pstrdup(sc->workload);
		MemoryContextSwitchTo(old);
		if (sc->kind->run != NULL)
		{
			mc_hooks_safe_point();
			sc->kind->run(sc);
		}
		else
			mc_scenario_loop(sc);
		mc_scenario_judge_shared(sc);
		mc_findings_publish(true);
		result = mc_scenario_result(sc);
	}
	PG_FINALLY();
	{
		/* a probe stopped by an error must not go on watching */
		mc_track_listeners.watching = false;
		MemoryContextDelete(sc->cxt);
	}
	PG_END_TRY();
	return result;
}

/* SELECT run_scenario(scenario_name, iterations, workload, options, target, args, reset_frequency, workers) */
Datum
mc_run_scenario(PG_FUNCTION_ARGS)
{
	McScenario	sc;
	const char *transaction;

	memset(&sc, 0, sizeof(sc));
	mc_scenario_args(fcinfo, &sc, &transaction);
	if (sc.kind->run != NULL)
	{
		/* background workers commit after every invocation */
		sc.each = true;
		PG_RETURN_DATUM(mc_scenario_run(&sc));
	}
	if (transaction != NULL && strcmp(transaction, "each") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("run_scenario cannot commit after each iteration: a SELECT runs in one transaction"),
				 errhint("Use CALL ext_memcheck.scenario(...) for a transaction per iteration.")));
	sc.each = false;
	sc.nonatomic = false;
	sc.transaction_note = "called as a function, which runs in the caller's transaction; CALL ext_memcheck.scenario(...) commits after every iteration";
	PG_RETURN_DATUM(mc_scenario_run(&sc));
}

/*
 * CALL scenario(scenario_name, iterations, workload, options, target, args,
 * reset_frequency, workers, INOUT result): a transaction per iteration
 * unless {"transaction": "one"} is given or the CALL itself runs inside a
 * transaction block.
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
	sc.nonatomic = nonatomic;
	if (sc.kind->run != NULL)
		sc.each = true;			/* background workers commit after every invocation */
	else
	{
		sc.each = nonatomic && (transaction == NULL || strcmp(transaction, "each") == 0);
		if (!nonatomic)
			sc.transaction_note = "the CALL ran inside a transaction block or a function, so every iteration ran in that one transaction";
	}
	if (transaction != NULL && strcmp(transaction, "each") == 0 && !nonatomic && sc.kind->run == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("scenario cannot commit after each iteration here"),
				 errhint("CALL it at top level, outside a transaction block.")));
	values[0] = mc_scenario_run(&sc);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		PG_RETURN_DATUM(values[0]);
	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* _scenarios(): name, description, default_iterations (the scenarios view) */
Datum
mc_scenarios(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore = mc_srf_begin(fcinfo, &tupdesc);
	int			i;

	for (i = 0; i < MC_NUM_SCENARIOS; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (kinds[i] == NULL)
			continue;
		values[0] = CStringGetTextDatum(kinds[i]->name);
		values[1] = CStringGetTextDatum(kinds[i]->description);
		values[2] = Int32GetDatum(kinds[i]->default_iterations);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	return (Datum) 0;
}
