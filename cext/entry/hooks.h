/*-------------------------------------------------------------------------
 *
 * hooks.h
 *		The hook descriptor table shared by hooks.c (one descriptor and
 *		its layer functions per hook) and hooktable.c (installing layers and
 *		bracketing foreign hook code).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_HOOKS_H
#define PG_EXT_MEMCHECK_HOOKS_H

#include "entry/entry.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

/*
 * Our positions in a hook chain: OUTER is installed once every preloaded
 * library has loaded (shmem_startup_hook), so it sits above all of them;
 * LATE1/LATE2 in a backend when a library loaded by LOAD or CREATE
 * EXTENSION wrapped the chain outside OUTER.  Below the libraries no layer
 * is needed: the innermost one calls the standard function through its GOT,
 * which is pointed at the hook's "std" bracket (gotpatch.c), whatever the
 * load order.  With measuring off OUTER steps out of the chain, so an idle
 * pg_ext_memcheck costs one hop through the std bracket.
 */
typedef enum McLayer
{
	MC_LAYER_OUTER,
	MC_LAYER_LATE1,
	MC_LAYER_LATE2,
	MC_NUM_LAYERS
} McLayer;

typedef struct McHookDesc
{
	const char *name;			/* as users know it: "ExecutorRun" */
	McPhase		phase;
	void	  **var;			/* the hook variable */
	void	   *layer_fn[MC_NUM_LAYERS];	/* ours, one per position */
	const char *std_symbol;		/* "standard_ExecutorRun", or NULL */
	void	   *std_wrapper;	/* our bracket around it, for GOT slots */
	void	   *std_real;
	bool		needs_prev;		/* PostgreSQL does work itself when unset */
	bool		always;			/* OUTER even with no library in the chain:
								 * statement boundaries and nested work */

	/* state */
	void	   *prev[MC_NUM_LAYERS];
	int16		prev_lib[MC_NUM_LAYERS];	/* prev's library, or MC_NO_LIB */
	bool		installed[MC_NUM_LAYERS];
	bool		detached;		/* OUTER stepped out while measuring is off */
} McHookDesc;

extern McHookDesc mc_hooks[];
extern const int mc_nhooks;

/*
 * Call down the chain from layer `layer` of hook h: the previous hook (in a
 * foreign segment when it is another library's), or the default.  When
 * measuring is off it is only the call.
 *
 * An error raised in the next library's segment must not leave it on top
 * of the stack for PostgreSQL's error handling (its catch blocks allocate):
 * a layer that PostgreSQL called (no segment running) catches it, restores
 * the depth it found and throws on.  A layer that a library called (its
 * "prev" hook, between two libraries) does not: the error goes straight
 * back into that library's frame, and the layer PostgreSQL called, further
 * out, restores the depth; one setjmp per hook call instead of one per
 * library.
 */
#define MC_LAYER_CALL(h, layer, call_prev, call_default) \
	do { \
		if (!mc_active) \
		{ \
			if ((h)->prev[(layer)] == NULL) \
			{ \
				call_default; \
			} \
			else \
			{ \
				call_prev; \
			} \
		} \
		else if ((h)->prev[(layer)] != NULL && (h)->prev_lib[(layer)] != MC_NO_LIB) \
		{ \
			/* the next library's segment goes straight on top: no pause between */ \
			int			mc_depth_ = mc_seg_depth(); \
			bool		mc_called_by_core_ = mc_seg == NULL; \
			mc_seg_open_hook((h)->prev_lib[(layer)], (uint32) ((h) - mc_hooks), (h)->phase); \
			if (mc_called_by_core_) \
			{ \
				PG_TRY(); \
				{ \
					call_prev; \
				} \
				PG_CATCH(); \
				{ \
					mc_seg_unwind(mc_depth_); \
					PG_RE_THROW(); \
				} \
				PG_END_TRY(); \
			} \
			else \
			{ \
				call_prev; \
			} \
			mc_layer_leave(mc_depth_); \
		} \
		else \
		{ \
			int			mc_depth_ = mc_layer_enter(); \
			if ((h)->prev[(layer)] == NULL) \
			{ \
				call_default; \
			} \
			else \
			{ \
				call_prev; \
			} \
			mc_layer_leave(mc_depth_); \
		} \
	} while (0)

/*
 * Our wrapper around a standard function, reached through a foreign GOT:
 * PostgreSQL's work on the running segment's behalf is a pause.  With no
 * segment running (measuring off, or nothing to pause) it is the call, a
 * tail call without a frame of ours; the pause is a function of its own.
 */
#define MC_STD_FN_VOID(name, std, params, args) \
static pg_noinline void \
name##_paused params \
{ \
	int			mc_depth_ = mc_seg_depth(); \
	mc_seg_pause(); \
	std args; \
	mc_layer_leave(mc_depth_); \
} \
static void \
name params \
{ \
	if (likely(mc_seg == NULL)) \
		std args; \
	else \
		name##_paused args; \
}

#define MC_STD_FN_RET(type, name, std, params, args) \
static pg_noinline type \
name##_paused params \
{ \
	int			mc_depth_ = mc_seg_depth(); \
	type		result_; \
	mc_seg_pause(); \
	result_ = std args; \
	mc_layer_leave(mc_depth_); \
	return result_; \
} \
static type \
name params \
{ \
	if (likely(mc_seg == NULL)) \
		return std args; \
	return name##_paused args; \
}

/* the position entry points of one hook: prefix_outer, prefix_late1, prefix_late2 */
#define MC_LAYERS_VOID(prefix, params, args) \
static void prefix##_outer params { prefix##_layer(MC_LAYER_OUTER, args); } \
static void prefix##_late1 params { prefix##_layer(MC_LAYER_LATE1, args); } \
static void prefix##_late2 params { prefix##_layer(MC_LAYER_LATE2, args); }

#define MC_LAYERS_RET(type, prefix, params, args) \
static type prefix##_outer params { return prefix##_layer(MC_LAYER_OUTER, args); } \
static type prefix##_late1 params { return prefix##_layer(MC_LAYER_LATE1, args); } \
static type prefix##_late2 params { return prefix##_layer(MC_LAYER_LATE2, args); }

#define MC_LAYER_FNS(prefix) \
	{(void *) prefix##_outer, (void *) prefix##_late1, (void *) prefix##_late2}

/* hooks.c: statement boundaries seen by the executor and utility layers */

#pragma GCC visibility pop

#endif							/* PG_EXT_MEMCHECK_HOOKS_H */
