/*-------------------------------------------------------------------------
 *
 * platform.h
 *		Layer 1 of the hook library (base/base.h lists the layers): the
 *		machine-specific mechanisms.
 *
 * This layer offers: reading a loaded object's dynamic section and
 * rewriting the GOT slots that name a symbol (gotpatch.c; x86-64 and
 * AArch64 Linux with glibc), so that a library's calls to PostgreSQL and
 * libc reach a wrapper of ours; and call thunks (thunk.c; x86-64), which
 * bracket a call through a function pointer whatever its arguments.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_PLATFORM_H
#define PG_EXT_MEMCHECK_PLATFORM_H

#include "base/base.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

/* ---------- gotpatch.c ---------- */

typedef struct McGotTarget
{
	const char *symbol;
	void	   *wrapper;
	void	   *real;			/* retarget saved copies of it, or NULL */
} McGotTarget;

extern int	mc_got_patch_object(uintptr_t base, bool main_program,
								const McGotTarget *targets, int ntargets,
								char *why, size_t whylen);

/* ---------- thunk.c ---------- */

#define MC_NUM_THUNKS 8192

/* enter returns a cookie that leave gets back; leave returns what the caller gets */
typedef int (*McThunkEnter) (uint32 k);
typedef uintptr_t (*McThunkLeave) (uint32 k, uintptr_t ret, int cookie);

extern bool mc_thunk_available(void);
extern void mc_thunk_set_handlers(McThunkEnter enter, McThunkLeave leave);
extern int	mc_thunk_make(void *fn);
extern void *mc_thunk_address(int k);
extern void *mc_thunk_address_one_arg(int k);
extern int	mc_thunk_of_address(const void *addr);
extern void *mc_thunk_target(int k);

#pragma GCC visibility pop

#endif							/* PG_EXT_MEMCHECK_PLATFORM_H */
