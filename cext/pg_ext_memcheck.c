/*-------------------------------------------------------------------------
 *
 * pg_ext_memcheck.c
 *		Module entry: GUCs, shared memory requests and hook installation.
 *
 * pg_ext_memcheck finds memory-context misuse by other extensions: hook
 * code that allocates in TopMemoryContext on every query, child contexts
 * left under long-lived parents, per-call allocations that pile up in the
 * context of a function called once per row, and leaked resources.  It must
 * be loaded through shared_preload_libraries, first in the list.
 *
 * contrib/pg_ext_memcheck/pg_ext_memcheck.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "compat.h"
#include "pg_ext_memcheck.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

int			mc_mode = MC_MODE_OFF;
int			mc_min_leak_bytes = 8192;
int			mc_warning_bytes = 65536;
int			mc_error_bytes = 1048576;
int			mc_ring_capacity = 4096;

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

#if PG_VERSION_NUM >= 150000
static void
mc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	mc_ring_request_shmem();
}
#endif

/*
 * Runs in the postmaster after every preloaded library's _PG_init: the
 * right moment to wrap the hook chains from the outside.
 */
static void
mc_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	mc_ring_shmem_startup();
	mc_install_outer_hooks();
}

static void
mc_define_gucs(void)
{
	DefineCustomEnumVariable("pg_ext_memcheck.memcheck_mode",
							 "Which phases pg_ext_memcheck measures.",
							 "off (or none), planner, executor or all.",
							 &mc_mode, MC_MODE_OFF, mode_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.min_leak_bytes",
							"Growth below this is not reported.",
							"Reported as INFO from this size on.",
							&mc_min_leak_bytes, 8192, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.warning_bytes",
							"Growth above this is reported as WARNING.",
							NULL,
							&mc_warning_bytes, 65536, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.error_bytes",
							"Growth above this is reported as ERROR.",
							NULL,
							&mc_error_bytes, 1048576, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_ext_memcheck.ring_capacity",
							"Violations the shared ring buffer holds until flushed.",
							"When it is full, further violations are counted as dropped.",
							&mc_ring_capacity, 4096, 16, 1048576,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("pg_ext_memcheck");
}

void
_PG_init(void)
{
	mc_ctxutil_init();
	mc_define_gucs();

	/* measuring needs the shared ring and the outer hook layer */
	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = mc_shmem_request;
#else
	mc_ring_request_shmem();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = mc_shmem_startup;

	mc_install_inner_hooks();
	mc_install_emit_log_hook();
}
