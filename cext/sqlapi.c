/*-------------------------------------------------------------------------
 *
 * sqlapi.c
 *		SQL-callable functions: pending violations, ring status, flush
 *		bookkeeping, and the begin()/end() window of a backend.
 *
 * Privileges are granted in the extension script; these functions only
 * check that the library was preloaded, since without shared memory there
 * is nothing to read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pg_ext_memcheck.h"

#define MC_MAX_PATTERN		256
#define MC_MAX_ALLOWED		32

/* this backend's begin()/end() window */
static bool window_active = false;
static uint64 window_start_seq = 0;
static char window_pattern[MC_MAX_PATTERN + 1];
static int	window_nallowed = 0;
static char window_allowed[MC_MAX_ALLOWED][MC_NAME_LEN];

PG_FUNCTION_INFO_V1(mc_pending_violations);
PG_FUNCTION_INFO_V1(mc_status);
PG_FUNCTION_INFO_V1(mc_mark_flushed);
PG_FUNCTION_INFO_V1(mc_begin);
PG_FUNCTION_INFO_V1(mc_end_window);

static void
mc_require_ring(void)
{
	if (!mc_ring_attached())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_ext_memcheck must be loaded via shared_preload_libraries"),
				 errhint("Add pg_ext_memcheck first in shared_preload_libraries and restart the server.")));
}

/* a materialized SRF result, as InitMaterializedSRF does from 15 on */
static Tuplestorestate *
mc_begin_srf(FunctionCallInfo fcinfo, TupleDesc *tupdesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcxt;
	Tuplestorestate *tupstore;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	*tupdesc = CreateTupleDescCopy(*tupdesc);
	tupstore = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tupstore;
	rsinfo->setDesc = *tupdesc;
	MemoryContextSwitchTo(oldcxt);
	return tupstore;
}

static Datum
mc_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL || s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

#define MC_VIOLATION_COLS 19

/* columns as in violation_log, minus id */
static void
mc_violation_row(const McViolation *v, Datum *values, bool *nulls)
{
	int			i = 0;

	memset(nulls, 0, sizeof(bool) * MC_VIOLATION_COLS);
	values[i++] = Int64GetDatum((int64) v->seq);
	values[i++] = TimestampTzGetDatum(v->ts);
	values[i++] = Int32GetDatum(v->pid);
	values[i++] = CStringGetTextDatum(mc_check_name(v->check));
	values[i++] = CStringGetTextDatum(mc_severity_name(v->severity));
	values[i++] = CStringGetTextDatum(v->detail);
	values[i] = mc_text_or_null(v->source_lib, &nulls[i]);
	i++;
	values[i] = mc_text_or_null(v->context_name, &nulls[i]);
	i++;
	values[i] = mc_text_or_null(v->context_path, &nulls[i]);
	i++;
	values[i++] = Int32GetDatum(v->depth);
	values[i++] = Int64GetDatum(v->used_before);
	values[i++] = Int64GetDatum(v->used_after);
	values[i++] = Int64GetDatum(v->used_delta);
	values[i++] = Int64GetDatum(v->alloc_delta);
	if (v->bytes_per_iter < 0)
		nulls[i++] = true;
	else
		values[i++] = Float8GetDatum(v->bytes_per_iter);
	values[i++] = Int64GetDatum(v->iterations);
	values[i++] = CStringGetTextDatum(mc_phase_name(v->phase));
	values[i++] = Int32GetDatum(v->nest_level);
	values[i] = mc_text_or_null(v->query, &nulls[i]);
	i++;
	Assert(i == MC_VIOLATION_COLS);
}

Datum
mc_pending_violations(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore;
	McRingStatus st;
	McViolation *chunk;
	uint64		next;
	const int	chunk_len = 256;

	mc_require_ring();
	tupstore = mc_begin_srf(fcinfo, &tupdesc);
	mc_ring_status(&st);
	chunk = palloc(sizeof(McViolation) * chunk_len);
	next = st.flushed_upto;
	for (;;)
	{
		int			n = mc_ring_copy_pending(next, st.next_seq, chunk, chunk_len, &next);
		int			i;

		if (n == 0)
			break;
		for (i = 0; i < n; i++)
		{
			Datum		values[MC_VIOLATION_COLS];
			bool		nulls[MC_VIOLATION_COLS];

			mc_violation_row(&chunk[i], values, nulls);
			tuplestore_putvalues(tupstore, tupdesc, values, nulls);
		}
	}
	pfree(chunk);
	return (Datum) 0;
}

Datum
mc_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	McRingStatus st;
	Datum		values[7];
	bool		nulls[7] = {0};
	const char *mode;

	mc_require_ring();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	mc_ring_status(&st);
	switch (mc_mode)
	{
		case MC_MODE_PLANNER:
			mode = "planner";
			break;
		case MC_MODE_EXECUTOR:
			mode = "executor";
			break;
		case MC_MODE_ALL:
			mode = "all";
			break;
		default:
			mode = "off";
	}
	values[0] = Int32GetDatum(st.capacity);
	values[1] = Int64GetDatum((int64) (st.next_seq - st.flushed_upto));
	values[2] = Int64GetDatum((int64) st.written);
	values[3] = Int64GetDatum((int64) st.dropped);
	values[4] = Int64GetDatum((int64) st.flushed_upto);
	values[5] = Int64GetDatum((int64) st.next_seq);
	values[6] = CStringGetTextDatum(mode);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* flush_violations() inserted everything below upto; release it at commit */
Datum
mc_mark_flushed(PG_FUNCTION_ARGS)
{
	int64		upto = PG_GETARG_INT64(0);

	mc_require_ring();
	if (upto > 0)
		mc_ring_mark_flushed((uint64) upto);
	PG_RETURN_VOID();
}

static void
mc_parse_options(Jsonb *jb)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		in_allowed = false;
	int			level = 0;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object, like {\"allowed_contexts\": [\"TopMemoryContext\"]}")));

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_BEGIN_ARRAY:
				level++;
				if (level > 1 && !(in_allowed && level == 2 && tok == WJB_BEGIN_ARRAY))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("options key \"allowed_contexts\" must be an array of context names")));
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				level--;
				if (level == 1)
					in_allowed = false;
				break;
			case WJB_KEY:
				{
					char	   *key = pnstrdup(v.val.string.val, v.val.string.len);

					if (strcmp(key, "allowed_contexts") != 0)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("unknown options key \"%s\"", key),
								 errhint("The only key is \"allowed_contexts\".")));
					in_allowed = true;
					break;
				}
			case WJB_VALUE:
				/* a scalar directly under the key */
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options key \"allowed_contexts\" must be an array of context names")));
				break;
			case WJB_ELEM:
				if (v.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("options key \"allowed_contexts\" must contain only strings")));
				if (window_nallowed >= MC_MAX_ALLOWED)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("options key \"allowed_contexts\" has more than %d entries",
									MC_MAX_ALLOWED)));
				if (v.val.string.len >= MC_NAME_LEN)
					ereport(ERROR,
							(errcode(ERRCODE_NAME_TOO_LONG),
							 errmsg("a context name in \"allowed_contexts\" is longer than %d bytes",
									MC_NAME_LEN - 1)));
				memcpy(window_allowed[window_nallowed], v.val.string.val, v.val.string.len);
				window_allowed[window_nallowed][v.val.string.len] = '\0';
				window_nallowed++;
				break;
			default:
				break;
		}
	}
}

/* begin(pattern text, options jsonb) */
Datum
mc_begin(PG_FUNCTION_ARGS)
{
	const char *pattern = PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	McRingStatus st;

	mc_require_ring();
	if (strlen(pattern) > MC_MAX_PATTERN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("pattern is too long (%d bytes, at most %d)",
						(int) strlen(pattern), MC_MAX_PATTERN)));
	window_nallowed = 0;
	if (!PG_ARGISNULL(1))
		mc_parse_options(PG_GETARG_JSONB_P(1));

	mc_ring_status(&st);
	mc_strlcpy(window_pattern, pattern, sizeof(window_pattern));
	window_start_seq = st.next_seq;
	window_active = true;
	PG_RETURN_VOID();
}

/* _end_window(): the window's start, pattern and allowlist; closes it */
Datum
mc_end_window(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};
	Datum	   *elems;
	int			i;

	mc_require_ring();
	if (!window_active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ext_memcheck.end() called without ext_memcheck.begin()")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	elems = palloc(sizeof(Datum) * (window_nallowed + 1));
	for (i = 0; i < window_nallowed; i++)
		elems[i] = CStringGetTextDatum(window_allowed[i]);
	values[0] = Int64GetDatum((int64) window_start_seq);
	values[1] = CStringGetTextDatum(window_pattern);
	values[2] = PointerGetDatum(construct_array(elems, window_nallowed, TEXTOID,
												-1, false, TYPALIGN_INT));
	window_active = false;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
