/*-------------------------------------------------------------------------
 *
 * settings.c
 *		The settings (GUCs) of pg_ext_memcheck, who may write findings, and
 *		changes made to them under a measurement.
 *
 * The settings that decide what is measured and how severe a finding is
 * are superuser-only: the code under test must not be able to switch the
 * checker off.  Changing one inside a begin()/end() window is itself a
 * finding (settings_changed).  Switching measuring on or off is passed on
 * to the listeners the higher layers registered at start-up.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/guc.h"

#include "base/compat.h"

#include "base/base.h"

int			mc_mode = MC_MODE_OFF;
int			mc_min_leak_bytes = 8192;
int			mc_warning_bytes = 65536;
int			mc_error_bytes = 1048576;
int			mc_ring_capacity = 4096;
int			mc_max_tracked = 65536;
int			mc_bloat_min_bytes = 16384;
bool		mc_record_all_sessions = false;

bool		mc_settings_dirty = true;

static bool window_active = false;
/* begin() calls over an open window since the last window that was closed */
static int	window_resets = 0;

static const struct config_enum_entry mode_options[] = {
	{"off", MC_MODE_OFF, false},
	{"none", MC_MODE_OFF, true},	/* the reference tool's spelling */
	{"planner", MC_MODE_PLANNER, false},
	{"executor", MC_MODE_EXECUTOR, false},
	{"all", MC_MODE_ALL, false},
	{NULL, 0, false}
};

/* ---------- settings that must not change under a measurement ---------- */

/*
 * The settings_changed finding named `name` in the open window (NULL when
 * no window is open or the table is full), seen once more.
 */
static McViolation *
mc_settings_finding(const char *name)
{
	McFindingKey key;
	McViolation *v;
	bool		created;
	char		path[MC_PATH_LEN];

	if (!window_active || MyProc == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s", name);
	key.check = MC_CHECK_SETTINGS_CHANGED;
	key.lifetime = MC_LIFE_UNKNOWN;
	key.lib = MC_NO_LIB;
	key.path = path;
	v = mc_finding_get(&key, &created);
	if (v == NULL)
		return NULL;
	v->severity = MC_SEV_ERROR;
	v->phase = MC_PHASE_OTHER;
	v->occurrences++;
	mc_strlcpy(v->context_name, name, MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	return v;
}

/*
 * Record a change of one of our settings made while a begin()/end() window
 * is open.  Assign hooks run in odd places (transaction abort, the
 * postmaster's reload): this only writes a finding into local memory.
 */
static void
mc_note_setting(const char *name, const char *from, const char *to)
{
	McViolation *v;

	mc_settings_dirty = true;
	if (strcmp(from, to) == 0 || (v = mc_settings_finding(name)) == NULL)
		return;
	snprintf(v->detail, MC_DETAIL_LEN,
			 "%s was changed from %s to %s while being measured (SET, RESET ALL, DISCARD ALL, or ALTER SYSTEM and a reload, in the workload?); findings after the change cannot be trusted",
			 name, from, to);
	mc_finding_changed(v);
}

/*
 * begin() was called while a window was open (the caller opened the new
 * one already): what the old window measured is forgotten, so a leak that
 * grew before the call looks smaller or is gone.  Like a changed setting,
 * the window's findings cannot be trusted.
 */
void
mc_settings_note_window_reset(void)
{
	McViolation *v;

	window_resets++;
	v = mc_settings_finding("ext_memcheck.begin()");
	if (v == NULL)
		return;
	/* each reset starts a window of its own: the count is kept here */
	v->occurrences = window_resets;
	snprintf(v->detail, MC_DETAIL_LEN,
			 "ext_memcheck.begin() was called while a window was open (%d time%s): the window was reset, and what was measured before the call was forgotten; findings of this window cannot be trusted",
			 window_resets, window_resets == 1 ? "" : "s");
	mc_finding_changed(v);
}

#define MC_MAX_MODE_LISTENERS 4

static McModeListener mode_listeners[MC_MAX_MODE_LISTENERS];
static int	nmode_listeners = 0;

/* a higher layer acts when measuring is switched on or off (called at start-up) */
void
mc_settings_on_mode_change(McModeListener listener)
{
	if (nmode_listeners < MC_MAX_MODE_LISTENERS)
		mode_listeners[nmode_listeners++] = listener;
	else
		elog(ERROR, "pg_ext_memcheck: too many mode listeners");
}

/*
 * Also runs in the postmaster (backends inherit the result) and at
 * transaction abort: the listeners only store pointers and drop state.
 */
static void
mc_assign_mode(int newval, void *extra)
{
	int			i;

	(void) extra;
	mc_note_setting("pg_ext_memcheck.memcheck_mode", mc_mode_name(mc_mode),
					mc_mode_name(newval));
	for (i = 0; i < nmode_listeners; i++)
		mode_listeners[i] (newval != MC_MODE_OFF);
}

static void
mc_assign_threshold(const char *name, int oldval, int newval)
{
	char		from[32];
	char		to[32];

	snprintf(from, sizeof(from), "%d", oldval);
	snprintf(to, sizeof(to), "%d", newval);
	mc_note_setting(name, from, to);
}

static void
mc_assign_min_leak(int newval, void *extra)
{
	(void) extra;
	mc_assign_threshold("pg_ext_memcheck.min_leak_bytes", mc_min_leak_bytes, newval);
}

static void
mc_assign_warning(int newval, void *extra)
{
	(void) extra;
	mc_assign_threshold("pg_ext_memcheck.warning_bytes", mc_warning_bytes, newval);
}

static void
mc_assign_error(int newval, void *extra)
{
	(void) extra;
	mc_assign_threshold("pg_ext_memcheck.error_bytes", mc_error_bytes, newval);
}

static void
mc_assign_bloat(int newval, void *extra)
{
	(void) extra;
	mc_assign_threshold("pg_ext_memcheck.bloat_min_bytes", mc_bloat_min_bytes, newval);
}

void
mc_settings_window(bool active)
{
	window_active = active;
	if (!active)
		window_resets = 0;
}

static void
mc_assign_record_all(bool newval, void *extra)
{
	(void) extra;
	mc_settings_dirty = newval != mc_record_all_sessions || mc_settings_dirty;
}

void
mc_settings_define(void)
{
	DefineCustomEnumVariable("pg_ext_memcheck.memcheck_mode",
							 "Which code of other extensions pg_ext_memcheck measures.",
							 "off (or none), planner, executor or all.",
							 &mc_mode, MC_MODE_OFF, mode_options,
							 PGC_SUSET, 0, NULL, mc_assign_mode, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.min_leak_bytes",
							"Growth below this is not reported.",
							"Reported as INFO from this size on.",
							&mc_min_leak_bytes, 8192, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, mc_assign_min_leak, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.warning_bytes",
							"Repeating growth above this is reported as WARNING.",
							NULL,
							&mc_warning_bytes, 65536, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, mc_assign_warning, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.error_bytes",
							"Repeating growth above this is reported as ERROR.",
							NULL,
							&mc_error_bytes, 1048576, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, mc_assign_error, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.bloat_min_bytes",
							"Growth below this across growth_benchmark's checkpoints is not ctx_bloat.",
							"A context must grow by at least this much, in more than one checkpoint interval.",
							&mc_bloat_min_bytes, 16384, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, mc_assign_bloat, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.ring_capacity",
							"Violations the shared ring buffer holds until flushed.",
							"When it is full, further violations are counted as dropped.",
							&mc_ring_capacity, 4096, 16, 1048576,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.max_tracked_allocations",
							"Live allocations of other extensions followed one by one.",
							"Beyond it allocations are sampled (one per 4 kB allocated) and findings on them say their figures are estimates.",
							&mc_max_tracked, 65536, 1024, INT_MAX / 64,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_ext_memcheck.record_all_sessions",
							 "Let every session write its findings into the shared ring, not only privileged ones.",
							 "For a private test cluster whose tests connect as other roles; in the server's configuration only.",
							 &mc_record_all_sessions, false,
							 PGC_SIGHUP, 0, NULL, mc_assign_record_all, NULL);
	MarkGUCPrefixReserved("pg_ext_memcheck");
}
