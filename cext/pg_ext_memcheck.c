/*-------------------------------------------------------------------------
 *
 * pg_ext_memcheck.c
 *		Module entry: settings, shared memory, and putting everything in
 *		place.
 *
 * pg_ext_memcheck finds memory misuse by OTHER extensions: allocations in
 * long-lived contexts on every query, child contexts left behind, per-call
 * allocations that pile up for a statement or a transaction, malloc'd
 * memory never freed, leaked resources.  It must be in
 * shared_preload_libraries; its position there does not matter (see
 * gotpatch.c).  pg_ext_memcheck.h gives the map of the files.
 *
 * The settings that decide what is measured and how severe a finding is
 * are superuser-only: the code under test must not be able to switch the
 * checker off.  Changing one inside a begin()/end() window is itself a
 * finding.
 *
 * contrib/pg_ext_memcheck/pg_ext_memcheck.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "base/compat.h"
#include "entry/hooks.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

int			mc_mode = MC_MODE_OFF;
int			mc_min_leak_bytes = 8192;
int			mc_warning_bytes = 65536;
int			mc_error_bytes = 1048576;
int			mc_ring_capacity = 4096;
int			mc_max_tracked = 1000000;
int			mc_bloat_min_bytes = 16384;

bool		mc_settings_dirty = true;

static bool window_active = false;
static bool privileged = false;

static const struct config_enum_entry mode_options[] = {
	{"off", MC_MODE_OFF, false},
	{"none", MC_MODE_OFF, true},	/* the reference tool's spelling */
	{"planner", MC_MODE_PLANNER, false},
	{"executor", MC_MODE_EXECUTOR, false},
	{"all", MC_MODE_ALL, false},
	{NULL, 0, false}
};

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

/* ---------- settings that must not change under a measurement ---------- */

/*
 * Record a change of one of our settings made while a begin()/end() window
 * is open.  Assign hooks run in odd places (transaction abort, the
 * postmaster's reload): this only writes a finding into local memory.
 */
static void
mc_note_setting(const char *name, const char *from, const char *to)
{
	McFindingKey key;
	McViolation *v;
	bool		created;
	char		path[MC_PATH_LEN];

	mc_settings_dirty = true;
	if (!window_active || MyProc == NULL || strcmp(from, to) == 0)
		return;
	snprintf(path, sizeof(path), "%s", name);
	key.check = MC_CHECK_SETTINGS_CHANGED;
	key.lifetime = MC_LIFE_UNKNOWN;
	key.lib = MC_NO_LIB;
	key.path = path;
	v = mc_finding_get(&key, &created);
	if (v == NULL)
		return;
	v->severity = MC_SEV_ERROR;
	v->phase = MC_PHASE_OTHER;
	v->occurrences++;
	mc_strlcpy(v->context_name, name, MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	snprintf(v->detail, MC_DETAIL_LEN,
			 "%s was changed from %s to %s while being measured (SET, RESET ALL or DISCARD ALL in the workload?); findings after the change cannot be trusted",
			 name, from, to);
	mc_finding_changed(v);
}

static void
mc_assign_mode(int newval, void *extra)
{
	(void) extra;
	mc_note_setting("pg_ext_memcheck.memcheck_mode", mc_mode_name(mc_mode),
					mc_mode_name(newval));
	mc_hooks_attach(newval != MC_MODE_OFF);
	if (newval == MC_MODE_OFF)
		mc_deactivate();
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
}

/* only privileged sessions may write into the shared ring (safe points only) */
void
mc_check_privileged(void)
{
	Oid			session = GetSessionUserId();

	privileged = OidIsValid(session) &&
		(superuser_arg(session) || has_privs_of_role(session, ROLE_PG_MONITOR));
}

bool
mc_session_privileged(void)
{
	return privileged;
}

static void
mc_define_gucs(void)
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
							"Beyond it allocations are counted but not followed, and a coverage_gap finding says so.",
							&mc_max_tracked, 1000000, 1024, INT_MAX / 64,
							PGC_SUSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("pg_ext_memcheck");
}

/* ---------- shared memory and start-up ---------- */

#if PG_VERSION_NUM >= 150000
static void
mc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	mc_ring_request_shmem();
	mc_guards_request_shmem();
	mc_dsm_request_shmem();
}
#endif

/*
 * Runs in the postmaster after every preloaded library's _PG_init (and in a
 * single-user backend): the moment to follow the libraries loaded so far
 * and wrap the hook chains from the outside.  Backends inherit all of it.
 * The libraries are patched before their own shmem_startup_hook code runs
 * (the previous hook), so that the shared structures they create there get
 * guards (shmemguard.c) in any load order.
 */
static void
mc_shmem_startup(void)
{
	mc_guards_shmem_startup();
	mc_dsm_shmem_startup();
	mc_foreign_scan();
	mc_gotwrap_patch_all();
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	mc_ring_shmem_startup();
	mc_hooks_install_outer();
}

/* the backend exits: what it found must not be lost */
static void
mc_before_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (!mc_active)
		return;
	mc_track_judge_if_pending();
	mc_findings_publish(true);
}

/* once per backend, when measuring starts */
void
mc_backend_exit_register(void)
{
	static bool registered = false;

	if (!registered)
		before_shmem_exit(mc_before_exit, (Datum) 0);
	registered = true;
}

void
_PG_init(void)
{
	mc_foreign_init();
	mc_define_gucs();

	/* measuring needs the shared ring and hooks in place before any query */
	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = mc_shmem_request;
#else
	mc_ring_request_shmem();
	mc_guards_request_shmem();
	mc_dsm_request_shmem();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = mc_shmem_startup;

	/* libraries preloaded before us are followed through their GOT */
	mc_foreign_scan();
	mc_install_emit_log_hook();
	mc_fmgr_install();
}
