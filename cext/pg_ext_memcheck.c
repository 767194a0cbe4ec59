/*-------------------------------------------------------------------------
 *
 * pg_ext_memcheck.c
 *		Module entry: shared memory, and putting the layers together.
 *
 * pg_ext_memcheck finds memory misuse by OTHER extensions: allocations in
 * long-lived contexts on every query, child contexts left behind, per-call
 * allocations that pile up for a statement or a transaction, malloc'd
 * memory never freed, leaked resources.  It must be in
 * shared_preload_libraries; its position there does not matter (see
 * platform/gotpatch.c).  base/base.h gives the map of the layers; this file
 * is the only one that names them all: _PG_init calls each layer's
 * start-up, which registers what it adds to the layers below.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "checks/checks.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

/* the shared memory of the ring, the guards and the DSM records */
static void
mc_request_shmem(void)
{
	mc_ring_request_shmem();
	mc_guards_request_shmem();
	mc_dsm_request_shmem();
	RequestAddinShmemSpace(mc_bgworker_shmem_size());
}

#if PG_VERSION_NUM >= 150000
static void
mc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	mc_request_shmem();
}
#endif

/*
 * Runs in the postmaster after every preloaded library's _PG_init (and in a
 * single-user backend): the moment to follow the libraries loaded so far
 * and wrap the hook chains from the outside.  Backends inherit all of it.
 * The libraries are patched before their own shmem_startup_hook code runs
 * (the previous hook), so that the shared structures they create there get
 * guards (checks/shmemguard.c) in any load order.
 */
static void
mc_shmem_startup(void)
{
	mc_guards_shmem_startup();
	mc_dsm_shmem_startup();
	mc_foreign_scan();
	mc_note_foreign_overflow();
	mc_gotwrap_patch_all();
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	mc_ring_shmem_startup();
	mc_bgworker_shmem_startup();
	mc_hooks_install_outer();
}

void
_PG_init(void)
{
	mc_foreign_init();
	mc_settings_define();

	/* measuring needs the shared ring and hooks in place before any query */
	if (!process_shared_preload_libraries_in_progress)
		return;

	/* each layer registers what it adds to the ones below, before anything runs */
	mc_entry_init();
	mc_scenarios_init();
	mc_reslog_init();
	mc_guards_init();
	mc_dsm_init();
	mc_ctxprobe_init();
	mc_bloat_init();
	mc_storm_init();
	mc_concurrent_init();

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = mc_shmem_request;
#else
	mc_request_shmem();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = mc_shmem_startup;

	/*
	 * Libraries preloaded before us are followed through their GOT (patched
	 * at shmem startup, callbacks they registered adopted now); those loaded
	 * after us are patched as soon as they are loaded.
	 */
	mc_foreign_scan();
	mc_gotwrap_patch_core();
	mc_xact_adopt_registered();
	mc_fmgr_install();
}
