/*-------------------------------------------------------------------------
 *
 * checks.c
 *		Severity rules and the filling-in of a violation before it is
 *		written to the ring.
 *
 * Severity follows the reference tool: below min_leak_bytes nothing is
 * recorded (callers check), INFO from min_leak_bytes, WARNING above
 * warning_bytes, ERROR above error_bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"

#include "pg_ext_memcheck.h"

McSeverity
mc_severity_for(int64 bytes)
{
	if (bytes > (int64) mc_error_bytes)
		return MC_SEV_ERROR;
	if (bytes > (int64) mc_warning_bytes)
		return MC_SEV_WARNING;
	return MC_SEV_INFO;
}

const char *
mc_check_name(int check)
{
	switch (check)
	{
		case MC_CHECK_CONTEXT_LEAK:
			return "context_leak";
		case MC_CHECK_WRONG_CTX_ALLOC:
			return "wrong_ctx_alloc";
		case MC_CHECK_RESOURCE_LEAK:
			return "resource_leak";
	}
	return "unknown";
}

const char *
mc_severity_name(int sev)
{
	switch (sev)
	{
		case MC_SEV_INFO:
			return "INFO";
		case MC_SEV_WARNING:
			return "WARNING";
		case MC_SEV_ERROR:
			return "ERROR";
	}
	return "unknown";
}

const char *
mc_phase_name(int phase)
{
	switch (phase)
	{
		case MC_PHASE_PLANNER:
			return "planner";
		case MC_PHASE_EXECUTOR:
			return "executor";
		case MC_PHASE_UTILITY:
			return "utility";
		case MC_PHASE_SCENARIO:
			return "scenario";
		case MC_PHASE_COMMIT:
			return "commit";
	}
	return "unknown";
}

/* name, path and depth of a live context */
void
mc_fill_context(McViolation *v, MemoryContext ctx)
{
	mc_strlcpy(v->context_name, mc_context_display_name(ctx), MC_NAME_LEN);
	mc_context_path(ctx, v->context_path, MC_PATH_LEN);
	v->depth = mc_context_depth(ctx);
}

/* stamp and write one violation; never reports an error */
void
mc_emit(McViolation *v)
{
	v->ts = GetCurrentTimestamp();
	v->pid = MyProcPid;
	if (v->nest_level < 0)
		v->nest_level = mc_nest_level();
	if (mc_statement_query()[0] != '\0')
		mc_strlcpy(v->query, mc_statement_query(), MC_QUERY_LEN);
	else
		mc_strlcpy(v->query, debug_query_string, MC_QUERY_LEN);
	mc_ring_record(v);
}
