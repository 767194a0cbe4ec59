/*-------------------------------------------------------------------------
 *
 * functions.c
 *		Every C function of a foreign library that PostgreSQL calls through
 *		the function manager is a foreign segment: its SQL functions,
 *		operator-class support functions, type I/O, triggers, aggregate
 *		functions, planner support functions, and a background worker's
 *		main function.
 *
 * PostgreSQL finds such a function with dlsym() (load_external_function,
 * from fmgr_info and LookupBackgroundWorkerFunction) and keeps the address
 * in its caches.  Its own dlsym() call goes through its GOT, which points
 * here: for a function in a foreign library we hand back a call thunk
 * (entry/thunks.c) that opens a segment around every call, one call being
 * one unit of work.  The function manager calls it directly: no
 * fmgr_security_definer frame, no fmgr hook, and another library's fmgr
 * hooks and their private state are never touched.  The module's own
 * symbols (Pg_magic_func, _PG_init, pg_finfo_ records) are handed back
 * as they are, and so is everything looked up while measuring is off.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>

#include "fmgr.h"
#include "miscadmin.h"

#include "entry/hooks.h"

/* symbols PostgreSQL looks up that are not entry points into the library's work */
static bool
mc_module_symbol(const char *name)
{
	return strcmp(name, "Pg_magic_func") == 0 || strcmp(name, "_PG_init") == 0 ||
		strcmp(name, "_PG_fini") == 0 || strncmp(name, "pg_finfo_", 9) == 0;
}

/*
 * A library loaded in a session (CREATE EXTENSION, LOAD, a function's first
 * call, session_preload_libraries) installs its hooks in _PG_init, above
 * ours.  PostgreSQL looks _PG_init up and calls it at once: we hand back
 * this instead, which calls it and then puts a layer of ours over the
 * hooks it installed, before any statement runs them (the library's code
 * in its hooks is then bracketed, and ours see every statement start).
 */
static void (*pending_init) (void) = NULL;

static void
mc_pg_init_then_layer(void)
{
	void		(*init) (void) = pending_init;

	pending_init = NULL;		/* a library its _PG_init loads gets its own */
	if (init != NULL)
		init();
	mc_hooks_check_late();
}

/*
 * Is name a V1 function, Datum name(FunctionCallInfo)?  As fmgr decides it:
 * the library declares a pg_finfo_<name> record saying so.  Its thunk then
 * keeps one argument and one result (platform/thunk.c); anything else (a
 * background worker's main function, an output plugin's init) gets the
 * general one.
 */
static bool
mc_v1_function(void *handle, const char *name)
{
	char		finfo[NAMEDATALEN + 16];
	const Pg_finfo_record *(*record) (void);

	if (snprintf(finfo, sizeof(finfo), "pg_finfo_%s", name) >= (int) sizeof(finfo))
		return false;
	record = (const Pg_finfo_record *(*) (void)) dlsym(handle, finfo);
	return record != NULL && record() != NULL && record()->api_version == 1;
}

static void *
mc_core_dlsym(void *handle, const char *name)
{
	void	   *fn = dlsym(handle, name);
	int			lib;
	int			k;

	if (fn != NULL && name != NULL && strcmp(name, "_PG_init") == 0 && IsUnderPostmaster &&
		!process_shared_preload_libraries_in_progress && mc_lib_of_address(fn) != MC_NO_LIB)
	{
		pending_init = (void (*) (void)) fn;
		return (void *) mc_pg_init_then_layer;
	}
	if (fn == NULL || name == NULL || mc_mode == MC_MODE_OFF || mc_module_symbol(name))
		return fn;
	lib = mc_lib_of_address(fn);
	if (lib == MC_NO_LIB)
		return fn;
	k = mc_entry_thunk(fn, lib, MC_ENTRY_FUNCTION, MC_PHASE_FUNCTION, name, NULL, 0);
	if (k < 0)
		return fn;
	return mc_v1_function(handle, name) ? mc_thunk_address_one_arg(k) : mc_thunk_address(k);
}

void
mc_functions_init(void)
{
	static const McGotTarget dlsym_target = {"dlsym", (void *) mc_core_dlsym, NULL};

	mc_gotwrap_add_core_target(&dlsym_target);
}
