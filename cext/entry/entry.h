/*-------------------------------------------------------------------------
 *
 * entry.h
 *		Layer 3 of the hook library (base/base.h lists the layers): the ways
 *		into a foreign library, each bracketed as a segment (observe/).
 *
 * This layer offers: our layers in every hook chain and the work done at
 * statement boundaries (hooks.c, hooktable.c; hooks.h is this layer's own
 * descriptor table); every call of a foreign C function (fmgrhook.c);
 * foreign transaction and subtransaction callbacks, and our own, which
 * mark the quiet points and clean up after errors (xactcb.c); the callbacks
 * of access methods, FDWs and custom scans (routines.c); background
 * workers of foreign libraries, loop by loop (bgworker.c).
 * mc_entry_init() puts this layer's GOT targets, entry-point names and
 * mode listener into observe/ and base/.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_ENTRY_H
#define PG_EXT_MEMCHECK_ENTRY_H

#include "observe/observe.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

/* hooktable.c */
extern void mc_entry_init(void);
extern void mc_hooks_attach(bool on);
extern void mc_hooks_install_outer(void);
extern void mc_hooks_check_late(void);
extern void mc_hooks_layer_late(bool record_gaps);
extern const char *mc_hook_name(int hook);
extern int	mc_hook_count(void);
extern bool mc_libs_dirty;
extern void mc_hook_describe(int hook, char *buf, size_t len);
extern void mc_hooks_safe_point(void);

/* fmgrhook.c; the hook ids of another library's fmgr hooks (mc_hook_name) */
#define MC_HOOK_FMGR			0x7ff0
#define MC_HOOK_NEEDS_FMGR	0x7ff1
extern void mc_fmgr_install(void);

/* thunks.c: entry points that are call thunks */
typedef uintptr_t (*McThunkPost) (uint8 post, uintptr_t ret, int lib);
extern void mc_entry_thunks_init(void);
extern int	mc_entry_thunk(void *fn, int lib, McEntryKind kind, McPhase phase, const char *name,
						   const char *what, uint8 post);
extern int	mc_entry_thunk_of(const void *fn);
extern void mc_entry_thunk_post(McThunkPost post);

/* functions.c: SQL-callable C functions, through PostgreSQL's dlsym() */
extern void mc_functions_init(void);

/* routines.c: access methods, FDWs, custom scans */
typedef enum McRoutineKindId
{
	MC_ROUTINE_INDEX_AM,
	MC_ROUTINE_TABLE_AM,
	MC_ROUTINE_FDW,
	MC_ROUTINE_TSM,
	MC_ROUTINE_CUSTOM_PATH,
	MC_ROUTINE_CUSTOM_SCAN,
	MC_ROUTINE_CUSTOM_EXEC
} McRoutineKindId;

struct RelOptInfo;
extern void mc_routines_init(void);
extern int	mc_routines_handler_kind(Oid rettype);
extern void *mc_routines_wrap(McRoutineKindId which, void *routine, int lib);
extern void mc_routines_custom_paths(struct RelOptInfo *rel);

/* bgworker.c: background workers of foreign libraries */
extern void mc_bgworker_init(void);
extern Size mc_bgworker_shmem_size(void);
extern void mc_bgworker_shmem_startup(void);
extern int	mc_bgworker_count(void);
extern int	mc_bgworker_collect(void);
extern bool mc_bgworker_at(int i, char *what, size_t whatlen, char *detail, size_t detaillen,
						   bool *measured);

/* xactcb.c */
extern void mc_xact_init(void);
extern void mc_xact_adopt_registered(void);
extern void mc_xact_callbacks_register(void);

#pragma GCC visibility pop

#endif							/* PG_EXT_MEMCHECK_ENTRY_H */
