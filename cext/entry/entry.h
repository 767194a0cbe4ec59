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
 * mark the quiet points and clean up after errors (xactcb.c).
 * mc_entry_init() puts this layer's GOT targets, entry-point names and
 * mode listener into observe/ and base/.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_ENTRY_H
#define PG_EXT_MEMCHECK_ENTRY_H

#include "observe/observe.h"

/* hooktable.c */
extern void mc_entry_init(void);
extern void mc_hooks_attach(bool on);
extern void mc_hooks_install_outer(void);
extern void mc_hooks_check_late(void);
extern const char *mc_hook_name(int hook);
extern int	mc_hook_count(void);
extern bool mc_libs_dirty;
extern void mc_hook_describe(int hook, char *buf, size_t len);
extern void mc_hooks_safe_point(void);

/* fmgrhook.c */
extern void mc_fmgr_install(void);

/* xactcb.c */
extern void mc_xact_init(void);
extern void mc_xact_callbacks_register(void);

#endif							/* PG_EXT_MEMCHECK_ENTRY_H */
