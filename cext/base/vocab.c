/*-------------------------------------------------------------------------
 *
 * vocab.c
 *		Names of the library's vocabularies: check types, severities,
 *		phases, lifetimes, verdicts, rate units, modes and scenarios.
 *
 * These strings are the interface: they appear in violation_log, in end()
 * and in results.json.  reporter/vocab.py holds the same lists, and
 * tests/unit/test_vocab_c.py keeps the two (and the JSON schemas) equal.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "base/base.h"

static const char *const check_names[] = {
	[MC_CHECK_CONTEXT_LEAK] = "context_leak",
	[MC_CHECK_WRONG_CTX_ALLOC] = "wrong_ctx_alloc",
	[MC_CHECK_RESOURCE_LEAK] = "resource_leak",
	[MC_CHECK_MALLOC_LEAK] = "malloc_leak",
	[MC_CHECK_SETTINGS_CHANGED] = "settings_changed",
	[MC_CHECK_COVERAGE_GAP] = "coverage_gap",
	[MC_CHECK_MEMORY_CORRUPTION] = "memory_corruption",
	[MC_CHECK_SHMEM_OVERRUN] = "shmem_overrun",
	[MC_CHECK_DSM_LEAK] = "dsm_leak",
	[MC_CHECK_CTX_BLOAT] = "ctx_bloat",
	[MC_CHECK_USE_AFTER_RESET] = "use_after_reset",
	[MC_CHECK_CONCURRENCY_ERROR] = "concurrency_error",
};

static const char *const severity_names[] = {
	[MC_SEV_INFO] = "INFO",
	[MC_SEV_WARNING] = "WARNING",
	[MC_SEV_ERROR] = "ERROR",
};

static const char *const phase_names[] = {
	[MC_PHASE_PLANNER] = "planner",
	[MC_PHASE_EXECUTOR] = "executor",
	[MC_PHASE_UTILITY] = "utility",
	[MC_PHASE_SCENARIO] = "scenario",
	[MC_PHASE_COMMIT] = "commit",
	[MC_PHASE_FUNCTION] = "function",
	[MC_PHASE_CALLBACK] = "callback",
	[MC_PHASE_OTHER] = "other",
};

static const char *const lifetime_names[] = {
	[MC_LIFE_UNKNOWN] = NULL,
	[MC_LIFE_STATEMENT] = "statement",
	[MC_LIFE_TRANSACTION] = "transaction",
	[MC_LIFE_BACKEND] = "backend",
};

static const char *const verdict_names[] = {
	[MC_VERDICT_NONE] = NULL,
	[MC_VERDICT_LEAK] = "leak",
	[MC_VERDICT_CACHE] = "cache",
};

static const char *const unit_names[] = {
	[MC_UNIT_NONE] = NULL,
	[MC_UNIT_CALL] = "call",
	[MC_UNIT_ROW] = "row",
	[MC_UNIT_ITERATION] = "iteration",
	[MC_UNIT_STATEMENT] = "statement",
	[MC_UNIT_TRANSACTION] = "transaction",
	[MC_UNIT_SUBTRANSACTION] = "subtransaction",
	[MC_UNIT_LOOP] = "loop",
};

static const char *const mode_names[] = {
	[MC_MODE_OFF] = "off",
	[MC_MODE_PLANNER] = "planner",
	[MC_MODE_EXECUTOR] = "executor",
	[MC_MODE_ALL] = "all",
};

/* the scenarios run_scenario() knows, in the order scenarios() lists them */
static const char *const scenario_names[MC_NUM_SCENARIOS] = {
	"growth_benchmark",
	"tx_abort_loop",
	"shmem_sentinel_probe",
	"wrong_context_probe",
	"context_reset_storm",
	"concurrent_backends",
	"dsm_lifecycle_check",
};

#define MC_NAME_OF(table, i) \
	(((i) >= 0 && (i) < (int) lengthof(table)) ? (table)[(i)] : NULL)

const char *
mc_check_name(int check)
{
	const char *s = MC_NAME_OF(check_names, check);

	return s ? s : "unknown";
}

const char *
mc_severity_name(int sev)
{
	const char *s = MC_NAME_OF(severity_names, sev);

	return s ? s : "unknown";
}

const char *
mc_phase_name(int phase)
{
	const char *s = MC_NAME_OF(phase_names, phase);

	return s ? s : "unknown";
}

/* NULL for "unknown": shown as SQL NULL */
const char *
mc_lifetime_name(int lifetime)
{
	return MC_NAME_OF(lifetime_names, lifetime);
}

const char *
mc_verdict_name(int verdict)
{
	return MC_NAME_OF(verdict_names, verdict);
}

const char *
mc_unit_name(int unit)
{
	return MC_NAME_OF(unit_names, unit);
}

const char *
mc_mode_name(int mode)
{
	const char *s = MC_NAME_OF(mode_names, mode);

	return s ? s : "off";
}

const char *
mc_scenario_name(int scenario)
{
	const char *s = MC_NAME_OF(scenario_names, scenario);

	return s ? s : "unknown";
}
