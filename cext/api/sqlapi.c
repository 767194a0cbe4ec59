/*-------------------------------------------------------------------------
 *
 * sqlapi.c
 *		SQL-callable functions: the ring's pending rows and status, flush
 *		bookkeeping, this backend's begin()/end() window and findings, and
 *		what is and is not measured (coverage()).  The window's end also
 *		checks the shared-memory guards and the DSM mappings.
 *
 * Privileges are granted in the extension script; these functions check
 * only that the library was preloaded, since without shared memory and the
 * hooks there is nothing to read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "checks/checks.h"

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
PG_FUNCTION_INFO_V1(mc_publish);
PG_FUNCTION_INFO_V1(mc_begin);
PG_FUNCTION_INFO_V1(mc_end_window);
PG_FUNCTION_INFO_V1(mc_end);
PG_FUNCTION_INFO_V1(mc_coverage);

static void
mc_require_ring(void)
{
	if (!mc_ring_attached())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_ext_memcheck must be loaded via shared_preload_libraries"),
				 errhint("Add pg_ext_memcheck to shared_preload_libraries and restart the server.")));
}

/*
 * Bring findings up to date before they are read: what the last finished
 * transaction left behind is judged (if the safe point at this statement's
 * start did not already).  The calling statement's own work is not judged:
 * its transaction has not ended, and end() must not report itself.
 */
static void
mc_settle(void)
{
	mc_hooks_safe_point();
}

static Datum
mc_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL || s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

/* [{"lib": ..., "offset": "0x..", "bytes": n, "count": n}, ...] */
static Datum
mc_sites_jsonb(const McViolation *v)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (i = 0; i < v->nsites && i < MC_MAX_SITES; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, "{\"lib\": ");
		escape_json(&buf, v->sites[i].lib);
		appendStringInfo(&buf, ", \"offset\": \"0x%llx\", \"bytes\": %lld, \"count\": %lld}",
						 (unsigned long long) v->sites[i].offset,
						 (long long) v->sites[i].bytes, (long long) v->sites[i].count);
	}
	appendStringInfoChar(&buf, ']');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/*
 * Columns of violation_log minus id, in order; version 1.0 of the SQL
 * declares only the first MC_COLS_10 of them.
 */
#define MC_COLS_10	19
#define MC_COLS		28	/* 1.1 */

static void
mc_violation_row(const McViolation *v, Datum *values, bool *nulls)
{
	int			i = 0;
	const char *s;

	memset(nulls, 0, sizeof(bool) * MC_COLS);
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
	Assert(i == MC_COLS_10);
	s = mc_lifetime_name(v->lifetime);
	values[i] = mc_text_or_null(s, &nulls[i]);
	i++;
	s = mc_verdict_name(v->verdict);
	values[i] = mc_text_or_null(s, &nulls[i]);
	i++;
	if (v->rate_bytes < 0)
		nulls[i++] = true;
	else
		values[i++] = Float8GetDatum(v->rate_bytes);
	s = mc_unit_name(v->unit);
	values[i] = mc_text_or_null(v->rate_bytes < 0 ? NULL : s, &nulls[i]);
	i++;
	values[i++] = Int64GetDatum(v->calls);
	values[i++] = Int64GetDatum(v->occurrences);
	values[i] = mc_text_or_null(v->entry, &nulls[i]);
	i++;
	values[i++] = mc_sites_jsonb(v);
	values[i++] = Int32GetDatum(v->finding_id);
	Assert(i == MC_COLS);
}

Datum
mc_pending_violations(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore;
	McRingStatus st;
	McViolation *chunk;
	uint64		next;
	const int	chunk_len = 64;

	mc_require_ring();
	tupstore = mc_srf_begin(fcinfo, &tupdesc);
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
			Datum		values[MC_COLS];
			bool		nulls[MC_COLS];

			mc_violation_row(&chunk[i], values, nulls);
			tuplestore_putvalues(tupstore, tupdesc, values, nulls);
		}
	}
	pfree(chunk);
	return (Datum) 0;
}

/* the loaded foreign libraries, as a text[] */
static Datum
mc_libraries_array(void)
{
	int			n = mc_lib_count();
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(mc_lib_name(i));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

#define MC_STATUS_COLS_10	7
#define MC_STATUS_COLS		15

Datum
mc_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	McRingStatus st;
	Datum		values[MC_STATUS_COLS];
	bool		nulls[MC_STATUS_COLS] = {0};
	int			i = 0;

	mc_require_ring();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	mc_hooks_safe_point();
	mc_ring_status(&st);
	values[i++] = Int32GetDatum(st.capacity);
	values[i++] = Int64GetDatum((int64) (st.next_seq - st.flushed_upto));
	values[i++] = Int64GetDatum((int64) st.written);
	values[i++] = Int64GetDatum((int64) st.dropped);
	values[i++] = Int64GetDatum((int64) st.flushed_upto);
	values[i++] = Int64GetDatum((int64) st.next_seq);
	values[i++] = CStringGetTextDatum(mc_mode_name(mc_mode));
	values[i++] = BoolGetDatum(st.next_seq - st.flushed_upto >= (uint64) st.capacity);
	values[i++] = Int64GetDatum((int64) st.refused);
	values[i++] = mc_libraries_array();
	values[i++] = Int64GetDatum(mc_track_chunks());
	values[i++] = Int64GetDatum(mc_track_untracked());
	values[i++] = Int32GetDatum(mc_findings_count());
	values[i++] = BoolGetDatum(window_active);
	values[i++] = Int32GetDatum(mc_findings_gaps());
	Assert(i == MC_STATUS_COLS);
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

/* put this backend's findings (their latest state) into the ring */
Datum
mc_publish(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	mc_require_ring();
	mc_settle();
	mc_workers_collect_crashes();
	(void) mc_bgworker_collect();
	mc_findings_publish(true);
	PG_RETURN_VOID();
}

/* parse begin()'s options into *nallowed/allowed; errors leave them untouched */
static void
mc_parse_options(Jsonb *jb, int *nallowed, char allowed[][MC_NAME_LEN])
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		in_allowed = false;
	int			level = 0;

	*nallowed = 0;
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
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options key \"allowed_contexts\" must be an array of context names")));
				break;
			case WJB_ELEM:
				if (v.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("options key \"allowed_contexts\" must contain only strings")));
				if (*nallowed >= MC_MAX_ALLOWED)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("options key \"allowed_contexts\" has more than %d entries",
									MC_MAX_ALLOWED)));
				if (v.val.string.len >= MC_NAME_LEN)
					ereport(ERROR,
							(errcode(ERRCODE_NAME_TOO_LONG),
							 errmsg("a context name in \"allowed_contexts\" is longer than %d bytes",
									MC_NAME_LEN - 1)));
				memcpy(allowed[*nallowed], v.val.string.val, v.val.string.len);
				allowed[*nallowed][v.val.string.len] = '\0';
				(*nallowed)++;
				break;
			default:
				break;
		}
	}
}

/* begin(pattern text, options jsonb): a fresh measuring window in this backend */
Datum
mc_begin(PG_FUNCTION_ARGS)
{
	const char *pattern = PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		allowed[MC_MAX_ALLOWED][MC_NAME_LEN];
	int			nallowed = 0;
	McRingStatus st;
	bool		reopened = window_active;

	mc_require_ring();
	if (strlen(pattern) > MC_MAX_PATTERN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("pattern is too long (%d bytes, at most %d)",
						(int) strlen(pattern), MC_MAX_PATTERN)));
	if (!PG_ARGISNULL(1))
		mc_parse_options(PG_GETARG_JSONB_P(1), &nallowed, allowed);

	/*
	 * Everything parsed: now replace the window.  What foreign code allocated
	 * before it (this statement's planning included) is forgotten, so that
	 * its release later is not charged to the window.
	 */
	mc_settle();
	mc_findings_window_start();
	mc_track_reset_all();
	mc_ring_status(&st);
	mc_strlcpy(window_pattern, pattern, sizeof(window_pattern));
	memcpy(window_allowed, allowed, sizeof(allowed));
	window_nallowed = nallowed;
	window_start_seq = st.next_seq;
	window_active = true;
	mc_settings_window(true);
	/* a window opened over an open one: said in the new one */
	if (reopened)
		mc_settings_note_window_reset();
	mc_guards_window_begin();
	mc_dsm_window_begin();
	/* a scenario's workers that a server restart interrupted: reported in this window */
	mc_workers_collect_crashes();
	PG_RETURN_VOID();
}

static void
mc_require_window(void)
{
	if (!window_active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ext_memcheck.end() called without ext_memcheck.begin()")));
}

static void
mc_close_window(void)
{
	mc_settle();
	/* shared-memory guards and DSM mappings are judged at the window's end */
	mc_guards_window_end();
	mc_dsm_window_end();
	mc_workers_collect_crashes();
	mc_findings_publish(true);
	window_active = false;
	mc_settings_window(false);
}

/* 1.0's end(): the window's start, pattern and allowlist; closes it */
Datum
mc_end_window(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};
	Datum	   *elems;
	int			i;

	mc_require_ring();
	mc_require_window();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	mc_close_window();
	elems = palloc(sizeof(Datum) * (window_nallowed + 1));
	for (i = 0; i < window_nallowed; i++)
		elems[i] = CStringGetTextDatum(window_allowed[i]);
	values[0] = Int64GetDatum((int64) window_start_seq);
	values[1] = CStringGetTextDatum(window_pattern);
	values[2] = PointerGetDatum(construct_array(elems, window_nallowed, TEXTOID,
												-1, false, TYPALIGN_INT));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

static bool
mc_window_keeps(const McViolation *v)
{
	int			i;

	if (window_pattern[0] != '\0' &&
		!DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
											  CStringGetTextDatum(v->context_name),
											  CStringGetTextDatum(window_pattern))))
		return false;
	if (v->check == MC_CHECK_WRONG_CTX_ALLOC)
		for (i = 0; i < window_nallowed; i++)
			if (strcmp(window_allowed[i], v->context_name) == 0)
				return false;
	return true;
}

#define MC_END_COLS 23

/*
 * end(): this backend's findings since begin(), from its own table (so a
 * full ring hides nothing), filtered by the window's pattern and allowlist.
 */
Datum
mc_end(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore;
	int			i;

	mc_require_ring();
	mc_require_window();
	tupstore = mc_srf_begin(fcinfo, &tupdesc);
	mc_close_window();
	for (i = 0; i < mc_findings_count(); i++)
	{
		bool		in_window;
		const McViolation *v = mc_finding_at(i, &in_window);
		Datum		row[MC_COLS];
		bool		rownulls[MC_COLS];
		int			c;
		Datum		values[MC_END_COLS];
		bool		nulls[MC_END_COLS];
		int			k = 0;

		if (v == NULL || !in_window || !mc_window_keeps(v))
			continue;
		mc_violation_row(v, row, rownulls);
		/* ts, backend_pid, check_type, severity, detail, source_lib, context_name,
		 * context_path, depth, used_delta, allocated_delta, bytes_per_iteration,
		 * phase, query, then the 1.1 columns */
#define MC_TAKE(col) do { values[k] = row[(col)]; nulls[k] = rownulls[(col)]; k++; } while (0)
		MC_TAKE(1);
		MC_TAKE(2);
		MC_TAKE(3);
		MC_TAKE(4);
		MC_TAKE(5);
		MC_TAKE(6);
		MC_TAKE(7);
		MC_TAKE(8);
		MC_TAKE(9);
		MC_TAKE(12);
		MC_TAKE(13);
		MC_TAKE(14);
		MC_TAKE(16);
		MC_TAKE(18);
		for (c = MC_COLS_10; c < MC_COLS; c++)
			MC_TAKE(c);
#undef MC_TAKE
		Assert(k == MC_END_COLS);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * coverage(): what pg_ext_memcheck follows in this backend, and what it
 * cannot: one row per foreign library, per hook with foreign code in it,
 * and per coverage gap.
 */
Datum
mc_coverage(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore;
	int			i;

	mc_require_ring();
	tupstore = mc_srf_begin(fcinfo, &tupdesc);
	mc_hooks_safe_point();
	for (i = 0; i < mc_lib_count(); i++)
	{
		Datum		values[4];
		bool		nulls[4] = {0};

		values[0] = CStringGetTextDatum("library");
		values[1] = CStringGetTextDatum(mc_lib_name(i));
		values[2] = BoolGetDatum(true);
		values[3] = CStringGetTextDatum("hooks, functions, access-method/FDW/custom-scan callbacks, transaction callbacks and direct calls followed");
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	for (i = 0; i < mc_bgworker_count(); i++)
	{
		char		what[128];
		char		detail[256];
		bool		measured;
		Datum		values[4];
		bool		nulls[4] = {0};

		if (!mc_bgworker_at(i, what, sizeof(what), detail, sizeof(detail), &measured))
			continue;
		values[0] = CStringGetTextDatum("background worker");
		values[1] = CStringGetTextDatum(what);
		values[2] = BoolGetDatum(measured);
		values[3] = CStringGetTextDatum(detail);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	for (i = 0; i < mc_hook_count(); i++)
	{
		char		libs[256];
		Datum		values[4];
		bool		nulls[4] = {0};

		mc_hook_describe(i, libs, sizeof(libs));
		if (libs[0] == '\0')
			continue;
		values[0] = CStringGetTextDatum("hook");
		values[1] = CStringGetTextDatum(mc_hook_name(i));
		values[2] = BoolGetDatum(true);
		values[3] = CStringGetTextDatum(libs);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	mc_guards_coverage(tupstore, tupdesc);
	for (i = 0; i < mc_findings_count(); i++)
	{
		bool		in_window;
		const McViolation *v = mc_finding_at(i, &in_window);
		Datum		values[4];
		bool		nulls[4] = {0};

		if (v == NULL || v->check != MC_CHECK_COVERAGE_GAP)
			continue;
		values[0] = CStringGetTextDatum("gap");
		values[1] = CStringGetTextDatum(v->context_path);
		values[2] = BoolGetDatum(false);
		values[3] = CStringGetTextDatum(v->detail);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	return (Datum) 0;
}
