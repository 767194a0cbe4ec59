/*-------------------------------------------------------------------------
 *
 * platform.h
 *		Layer 1 of the hook library (base/base.h lists the layers): the
 *		machine-specific mechanisms.
 *
 * This layer offers: reading a loaded object's dynamic section and
 * rewriting the GOT slots that name a symbol (gotpatch.c; x86-64 and
 * AArch64 Linux with glibc), so that a library's calls to PostgreSQL and
 * libc reach a wrapper of ours.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_PLATFORM_H
#define PG_EXT_MEMCHECK_PLATFORM_H

#include "base/base.h"

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

#endif							/* PG_EXT_MEMCHECK_PLATFORM_H */
