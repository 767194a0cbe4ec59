/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		Planner, executor and utility hooks, installed in layers, that
 *		measure what other libraries' hook code does to long-lived memory
 *		contexts.
 *
 * pg_ext_memcheck wraps each hook chain more than once:
 *
 *	- the inner layer, installed by _PG_init; with pg_ext_memcheck first in
 *	  shared_preload_libraries it sits right around PostgreSQL's standard_*
 *	  functions;
 *	- the outer layer, installed once every preloaded library has run its
 *	  _PG_init (from shmem_startup_hook), so it sits outside all of them;
 *	- a late layer, installed in a backend when a library loaded later (by
 *	  LOAD or CREATE EXTENSION) wrapped the chain outside the outer layer.
 *
 * Code that runs between two of our layers belongs to other libraries: a
 * "foreign segment".  Each hook invocation gets a frame; a segment opens
 * where one of our layers hands control to foreign code and closes where
 * control comes back to one of our layers.  Closing a segment measures the
 * watched contexts (TopMemoryContext, CacheMemoryContext, ErrorContext,
 * MessageContext and the caller's CurrentMemoryContext: own used bytes, and
 * new child contexts), and the difference is added to the statement's
 * accumulators (accum.c).  PostgreSQL's own allocations fall between the
 * inner layer's entry and exit and so cancel out: no false positives from
 * the core's caches, resource owners or expression contexts.
 *
 * When no foreign hook sits between two of our layers nothing is measured,
 * so the library costs a few function calls per hook.  A nested invocation
 * (SPI, SQL functions) pauses the enclosing segment so that the core work it
 * does is not charged to the foreign code that triggered it; its own foreign
 * segments are measured by its own frame.
 *
 * Frames live in a fixed array: nothing here allocates memory.  The layer
 * that owns a frame pops it in PG_CATCH when an error passes, so a failed
 * statement leaves nothing stale behind.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "tcop/utility.h"
#include "utils/memutils.h"

#include "compat.h"
#include "pg_ext_memcheck.h"

typedef enum McHook
{
	MC_HOOK_PLANNER,
	MC_HOOK_EXEC_START,
	MC_HOOK_EXEC_RUN,
	MC_HOOK_EXEC_FINISH,
	MC_HOOK_EXEC_END,
	MC_HOOK_UTILITY,
	MC_NUM_HOOKS
} McHook;

#define MC_LAYER_INNER	0
#define MC_LAYER_OUTER	1
#define MC_LAYER_LATE	2
#define MC_NUM_LAYERS	3

#define MC_MAX_WATCH	5
#define MC_MAX_FRAMES	64
#define MC_MAX_CALLER_NEW 8
#define MC_MAX_CHILD_WALK 64

/* saved previous hooks, per layer */
static planner_hook_type prev_planner[MC_NUM_LAYERS];
static ExecutorStart_hook_type prev_start[MC_NUM_LAYERS];
static ExecutorRun_hook_type prev_run[MC_NUM_LAYERS];
static ExecutorFinish_hook_type prev_finish[MC_NUM_LAYERS];
static ExecutorEnd_hook_type prev_end[MC_NUM_LAYERS];
static ProcessUtility_hook_type prev_utility[MC_NUM_LAYERS];

static bool layer_installed[MC_NUM_LAYERS][MC_NUM_HOOKS];
/* does this layer's previous hook belong to another library? */
static bool prev_foreign[MC_NUM_LAYERS][MC_NUM_HOOKS];
static char prev_lib[MC_NUM_LAYERS][MC_NUM_HOOKS][MC_LIB_LEN];
static bool hook_has_foreign[MC_NUM_HOOKS];
/* the foreign libraries in the chains, for resource-leak attribution */
static char chain_libs[MC_LIB_LEN * 2];

typedef struct McProbe
{
	int64		used[MC_MAX_WATCH];
	MemoryContext head[MC_MAX_WATCH];
} McProbe;

typedef struct McFrame
{
	int			hook;
	int			top_layer;		/* our outermost layer in this invocation */
	int			expect_layer;	/* our next layer down the chain */
	int			nest_level;
	uint64		serial;
	bool		measuring;
	bool		seg_open;
	bool		seg_paused;
	const char *seg_lib;
	McProbe		seg_start;
	int			nwatch;
	MemoryContext watch[MC_MAX_WATCH];
	bool		watch_stable[MC_MAX_WATCH];
	int			ncaller_new;
	MemoryContext caller_new[MC_MAX_CALLER_NEW];
	MemoryContext caller_new_parent[MC_MAX_CALLER_NEW];
	const char *caller_new_name[MC_MAX_CALLER_NEW];
	const char *caller_new_lib[MC_MAX_CALLER_NEW];
} McFrame;

static McFrame frames[MC_MAX_FRAMES];
/* text of the current (or last) top-level statement, for the reports */
static char stmt_query[MC_QUERY_LEN];
static int	nframes = 0;
static int	frames_overflow = 0;
static uint64 frame_serial = 0;

static void mc_check_late_hooks(void);

/* ---------- measuring ---------- */

static inline bool
mc_mode_covers(int hook)
{
	switch (mc_mode)
	{
		case MC_MODE_OFF:
			return false;
		case MC_MODE_PLANNER:
			return hook == MC_HOOK_PLANNER;
		case MC_MODE_EXECUTOR:
			return hook >= MC_HOOK_EXEC_START && hook <= MC_HOOK_EXEC_END;
		default:
			return true;
	}
}

static int
mc_phase_of(int hook)
{
	if (hook == MC_HOOK_PLANNER)
		return MC_PHASE_PLANNER;
	if (hook == MC_HOOK_UTILITY)
		return MC_PHASE_UTILITY;
	return MC_PHASE_EXECUTOR;
}

static bool
mc_is_under(MemoryContext ctx, MemoryContext root)
{
	for (; ctx != NULL; ctx = ctx->parent)
		if (ctx == root)
			return true;
	return false;
}

static void
mc_watch_add(McFrame *f, MemoryContext ctx, bool stable)
{
	int			i;

	if (ctx == NULL || f->nwatch >= MC_MAX_WATCH)
		return;
	for (i = 0; i < f->nwatch; i++)
		if (f->watch[i] == ctx)
			return;
	f->watch[f->nwatch] = ctx;
	f->watch_stable[f->nwatch] = stable;
	f->nwatch++;
}

static void
mc_probe(McFrame *f, McProbe *p)
{
	int			i;

	for (i = 0; i < f->nwatch; i++)
	{
		p->used[i] = (int64) mc_own_used(f->watch[i]);
		p->head[i] = f->watch[i]->firstchild;
	}
}

static void
mc_segment_open(McFrame *f, const char *lib)
{
	mc_probe(f, &f->seg_start);
	f->seg_lib = lib;
	f->seg_open = true;
}

/* the children created under watch[i] since the segment opened */
static void
mc_segment_new_children(McFrame *f, int i, MemoryContext now_head)
{
	MemoryContext stop = f->seg_start.head[i];
	MemoryContext c;
	bool		found_stop = false;
	int			steps = 0;

	for (c = now_head; c != NULL && steps < MC_MAX_CHILD_WALK; c = c->nextchild, steps++)
		if (c == stop)
		{
			found_stop = true;
			break;
		}

	steps = 0;
	for (c = now_head; c != NULL && c != stop && steps < MC_MAX_CHILD_WALK;
		 c = c->nextchild, steps++)
	{
		char		lib[MC_LIB_LEN];
		bool		creator_foreign = mc_foreign_lib_of(c->name, lib, sizeof(lib));

		/* the old head was freed meanwhile: trust only the creator's name */
		if (!found_stop && !creator_foreign)
			continue;
		if (f->watch_stable[i])
			mc_accum_new_child(f->watch[i], c, creator_foreign ? lib : f->seg_lib,
							   mc_phase_of(f->hook), f->nest_level);
		else if (f->ncaller_new < MC_MAX_CALLER_NEW)
		{
			int			k = f->ncaller_new++;

			f->caller_new[k] = c;
			f->caller_new_parent[k] = f->watch[i];
			f->caller_new_name[k] = c->name;
			f->caller_new_lib[k] = f->seg_lib;
		}
	}
}

static void
mc_segment_close(McFrame *f)
{
	McProbe		now;
	int			i;

	mc_probe(f, &now);
	for (i = 0; i < f->nwatch; i++)
	{
		mc_accum_add(f->watch[i], f->seg_start.used[i], now.used[i], f->seg_lib,
					 mc_phase_of(f->hook), f->nest_level, f->serial);
		if (now.head[i] != f->seg_start.head[i])
			mc_segment_new_children(f, i, now.head[i]);
	}
	f->seg_open = false;
}

/*
 * Children left under the caller's context are judged when the invocation
 * ends, while that context is certainly alive.
 */
static void
mc_frame_finish_caller_children(McFrame *f)
{
	int			k;

	for (k = 0; k < f->ncaller_new; k++)
	{
		MemoryContext parent = f->caller_new_parent[k];
		MemoryContext child = f->caller_new[k];
		int64		used;

		if (!mc_child_of(parent, child) || child->name != f->caller_new_name[k])
			continue;
		used = (int64) mc_subtree_used(child);
		mc_accum_add(parent, 0, used, f->caller_new_lib[k],
					 mc_phase_of(f->hook), f->nest_level, f->serial);
	}
	f->ncaller_new = 0;
}

/*
 * Our layer `layer` was entered for `hook`.  Returns the frame of this
 * invocation (new, or continued when foreign code called down to us), or
 * NULL when nothing is measured.
 */
static McFrame *
mc_enter(int layer, int hook, MemoryContext exclude_root, const char *query,
		 bool *overflow)
{
	McFrame    *top = nframes > 0 ? &frames[nframes - 1] : NULL;
	McFrame    *f;
	MemoryContext caller = CurrentMemoryContext;

	*overflow = false;
	if (frames_overflow > 0)
	{
		frames_overflow++;
		*overflow = true;
		return NULL;
	}

	/* reached through foreign code from our layer above: same invocation */
	if (top != NULL && top->hook == hook && top->expect_layer == layer)
	{
		if (top->seg_open)
			mc_segment_close(top);
		top->expect_layer = layer - 1;
		if (top->measuring && layer > MC_LAYER_INNER && prev_foreign[layer][hook])
			mc_segment_open(top, prev_lib[layer][hook]);
		return top;
	}

	if (!mc_mode_covers(hook))
		return NULL;
	if (nframes >= MC_MAX_FRAMES)
	{
		frames_overflow++;
		*overflow = true;
		return NULL;
	}

	/* a nested invocation: its core work is not the enclosing segment's */
	if (top != NULL && top->seg_open)
	{
		mc_segment_close(top);
		top->seg_paused = true;
	}

	f = &frames[nframes++];
	f->hook = hook;
	f->top_layer = layer;
	f->expect_layer = layer - 1;
	f->nest_level = nframes - 1;
	f->serial = ++frame_serial;
	f->measuring = hook_has_foreign[hook];
	f->seg_open = false;
	f->seg_paused = false;
	f->seg_lib = NULL;
	f->nwatch = 0;
	f->ncaller_new = 0;

	if (f->measuring)
	{
		/* extended protocol: debug_query_string is unset at portal drop */
		if (nframes == 1)
			mc_strlcpy(stmt_query, query, sizeof(stmt_query));
		mc_watch_add(f, TopMemoryContext, true);
		mc_watch_add(f, CacheMemoryContext, true);
		mc_watch_add(f, ErrorContext, true);
		mc_watch_add(f, MessageContext, true);
		/* ExecutorEnd frees the executor's own context: never watch it */
		if (exclude_root == NULL || !mc_is_under(caller, exclude_root))
			mc_watch_add(f, caller, false);
		if (layer > MC_LAYER_INNER && prev_foreign[layer][hook])
			mc_segment_open(f, prev_lib[layer][hook]);
	}
	return f;
}

/* Our layer `layer` returns normally. */
static void
mc_exit(McFrame *f, int layer, int hook)
{
	McFrame    *parent;

	if (f == NULL)
		return;
	if (f->seg_open)
		mc_segment_close(f);
	if (layer != f->top_layer)
	{
		/* back into the foreign code that called us */
		if (f->measuring && prev_foreign[layer + 1][hook])
			mc_segment_open(f, prev_lib[layer + 1][hook]);
		return;
	}

	if (f->ncaller_new > 0)
		mc_frame_finish_caller_children(f);
	nframes--;
	parent = nframes > 0 ? &frames[nframes - 1] : NULL;
	if (parent != NULL && parent->seg_paused)
	{
		parent->seg_paused = false;
		mc_segment_open(parent, parent->seg_lib);
	}
	if (nframes == 0)
	{
		if (hook == MC_HOOK_PLANNER || hook == MC_HOOK_EXEC_END ||
			hook == MC_HOOK_UTILITY)
			mc_accum_evaluate();
		mc_check_late_hooks();
	}
}

/* An error passes the layer that owns frame f: forget f and what it nested. */
static void
mc_abort(McFrame *f)
{
	McFrame    *parent;

	nframes = (int) (f - frames);
	frames_overflow = 0;
	parent = nframes > 0 ? &frames[nframes - 1] : NULL;
	if (parent != NULL && parent->seg_paused)
	{
		parent->seg_paused = false;
		mc_segment_open(parent, parent->seg_lib);
	}
	if (nframes == 0)
		mc_accum_reset();
}

int
mc_nest_level(void)
{
	return nframes > 0 ? frames[nframes - 1].nest_level : 0;
}

const char *
mc_last_statement_libs(void)
{
	return chain_libs;
}

const char *
mc_statement_query(void)
{
	return stmt_query;
}

/* ---------- calling down the chain ---------- */

static PlannedStmt *
mc_call_planner(int layer, MC_PLANNER_PARAMS)
{
	if (prev_planner[layer])
		return prev_planner[layer] (MC_PLANNER_ARGS);
	return standard_planner(MC_PLANNER_ARGS);
}

static void
mc_call_start(int layer, QueryDesc *queryDesc, int eflags)
{
	if (prev_start[layer])
		prev_start[layer] (queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
mc_call_run(int layer, MC_EXECRUN_PARAMS)
{
	if (prev_run[layer])
		prev_run[layer] (MC_EXECRUN_ARGS);
	else
		standard_ExecutorRun(MC_EXECRUN_ARGS);
}

static void
mc_call_finish(int layer, QueryDesc *queryDesc)
{
	if (prev_finish[layer])
		prev_finish[layer] (queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
}

static void
mc_call_end(int layer, QueryDesc *queryDesc)
{
	if (prev_end[layer])
		prev_end[layer] (queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static void
mc_call_utility(int layer, MC_UTILITY_PARAMS)
{
	if (prev_utility[layer])
		prev_utility[layer] (MC_UTILITY_ARGS);
	else
		standard_ProcessUtility(MC_UTILITY_ARGS);
}

/*
 * The body every layer's hook shares: enter, call down (inside PG_TRY only
 * for the layer that owns the frame), exit.
 */
#define MC_HOOK_BODY(hookid, exclude, query, call) \
	do { \
		bool		overflow; \
		McFrame    *f = mc_enter(layer, (hookid), (exclude), (query), &overflow); \
		if (f != NULL && f->top_layer == layer) \
		{ \
			PG_TRY(); \
			{ \
				call; \
			} \
			PG_CATCH(); \
			{ \
				mc_abort(f); \
				PG_RE_THROW(); \
			} \
			PG_END_TRY(); \
		} \
		else \
			call; \
		mc_exit(f, layer, (hookid)); \
		if (overflow && frames_overflow > 0) \
			frames_overflow--; \
	} while (0)

static PlannedStmt *
mc_planner(int layer, MC_PLANNER_PARAMS)
{
	PlannedStmt *volatile result = NULL;

	MC_HOOK_BODY(MC_HOOK_PLANNER, NULL, query_string,
				 result = mc_call_planner(layer, MC_PLANNER_ARGS));
	return result;
}

static void
mc_start(int layer, QueryDesc *queryDesc, int eflags)
{
	MC_HOOK_BODY(MC_HOOK_EXEC_START, NULL, queryDesc->sourceText,
				 mc_call_start(layer, queryDesc, eflags));
}

static void
mc_run(int layer, MC_EXECRUN_PARAMS)
{
	MC_HOOK_BODY(MC_HOOK_EXEC_RUN, NULL, queryDesc->sourceText,
				 mc_call_run(layer, MC_EXECRUN_ARGS));
}

static void
mc_finish(int layer, QueryDesc *queryDesc)
{
	MC_HOOK_BODY(MC_HOOK_EXEC_FINISH, NULL, queryDesc->sourceText,
				 mc_call_finish(layer, queryDesc));
}

static void
mc_end(int layer, QueryDesc *queryDesc)
{
	MemoryContext exclude = queryDesc->estate ? queryDesc->estate->es_query_cxt : NULL;

	MC_HOOK_BODY(MC_HOOK_EXEC_END, exclude, queryDesc->sourceText,
				 mc_call_end(layer, queryDesc));
}

static void
mc_utility(int layer, MC_UTILITY_PARAMS)
{
	MC_HOOK_BODY(MC_HOOK_UTILITY, NULL, queryString,
				 mc_call_utility(layer, MC_UTILITY_ARGS));
	/* LOAD and CREATE EXTENSION load libraries: look for new wrappers */
	if (nframes == 0)
		mc_check_late_hooks();
}

/* one function per layer and hook: the chain needs distinct addresses */
#define MC_DEFINE_LAYER(L) \
static PlannedStmt *mc_planner_##L(MC_PLANNER_PARAMS) \
{ return mc_planner(L, MC_PLANNER_ARGS); } \
static void mc_start_##L(QueryDesc *queryDesc, int eflags) \
{ mc_start(L, queryDesc, eflags); } \
static void mc_run_##L(MC_EXECRUN_PARAMS) \
{ mc_run(L, MC_EXECRUN_ARGS); } \
static void mc_finish_##L(QueryDesc *queryDesc) \
{ mc_finish(L, queryDesc); } \
static void mc_end_##L(QueryDesc *queryDesc) \
{ mc_end(L, queryDesc); } \
static void mc_utility_##L(MC_UTILITY_PARAMS) \
{ mc_utility(L, MC_UTILITY_ARGS); }

MC_DEFINE_LAYER(0)
MC_DEFINE_LAYER(1)
MC_DEFINE_LAYER(2)

static const planner_hook_type layer_planner[MC_NUM_LAYERS] = {mc_planner_0, mc_planner_1, mc_planner_2};
static const ExecutorStart_hook_type layer_start[MC_NUM_LAYERS] = {mc_start_0, mc_start_1, mc_start_2};
static const ExecutorRun_hook_type layer_run[MC_NUM_LAYERS] = {mc_run_0, mc_run_1, mc_run_2};
static const ExecutorFinish_hook_type layer_finish[MC_NUM_LAYERS] = {mc_finish_0, mc_finish_1, mc_finish_2};
static const ExecutorEnd_hook_type layer_end[MC_NUM_LAYERS] = {mc_end_0, mc_end_1, mc_end_2};
static const ProcessUtility_hook_type layer_utility[MC_NUM_LAYERS] = {mc_utility_0, mc_utility_1, mc_utility_2};

/* ---------- installing ---------- */

static void
mc_note_prev(int layer, int hook, const void *prev, const void *our_lower)
{
	bool		foreign = false;

	prev_lib[layer][hook][0] = '\0';
	if (layer > MC_LAYER_INNER && prev != NULL && prev != our_lower)
		foreign = mc_foreign_lib_of(prev, prev_lib[layer][hook], MC_LIB_LEN);
	prev_foreign[layer][hook] = foreign;
	layer_installed[layer][hook] = true;
	if (foreign)
	{
		hook_has_foreign[hook] = true;
		if (strstr(chain_libs, prev_lib[layer][hook]) == NULL)
		{
			if (chain_libs[0] != '\0')
				strlcat(chain_libs, ",", sizeof(chain_libs));
			strlcat(chain_libs, prev_lib[layer][hook], sizeof(chain_libs));
		}
	}
}

static void
mc_install_layer(int layer)
{
	int			lower = layer - 1;

	prev_planner[layer] = planner_hook;
	planner_hook = layer_planner[layer];
	mc_note_prev(layer, MC_HOOK_PLANNER, (const void *) prev_planner[layer],
				 lower >= 0 ? (const void *) layer_planner[lower] : NULL);

	prev_start[layer] = ExecutorStart_hook;
	ExecutorStart_hook = layer_start[layer];
	mc_note_prev(layer, MC_HOOK_EXEC_START, (const void *) prev_start[layer],
				 lower >= 0 ? (const void *) layer_start[lower] : NULL);

	prev_run[layer] = ExecutorRun_hook;
	ExecutorRun_hook = layer_run[layer];
	mc_note_prev(layer, MC_HOOK_EXEC_RUN, (const void *) prev_run[layer],
				 lower >= 0 ? (const void *) layer_run[lower] : NULL);

	prev_finish[layer] = ExecutorFinish_hook;
	ExecutorFinish_hook = layer_finish[layer];
	mc_note_prev(layer, MC_HOOK_EXEC_FINISH, (const void *) prev_finish[layer],
				 lower >= 0 ? (const void *) layer_finish[lower] : NULL);

	prev_end[layer] = ExecutorEnd_hook;
	ExecutorEnd_hook = layer_end[layer];
	mc_note_prev(layer, MC_HOOK_EXEC_END, (const void *) prev_end[layer],
				 lower >= 0 ? (const void *) layer_end[lower] : NULL);

	prev_utility[layer] = ProcessUtility_hook;
	ProcessUtility_hook = layer_utility[layer];
	mc_note_prev(layer, MC_HOOK_UTILITY, (const void *) prev_utility[layer],
				 lower >= 0 ? (const void *) layer_utility[lower] : NULL);
}

void
mc_install_inner_hooks(void)
{
	char		lib[MC_LIB_LEN];

	/* what was loaded before us runs inside our innermost layer: unmeasurable */
	if (mc_foreign_lib_of((const void *) planner_hook, lib, sizeof(lib)) ||
		mc_foreign_lib_of((const void *) ExecutorStart_hook, lib, sizeof(lib)) ||
		mc_foreign_lib_of((const void *) ExecutorEnd_hook, lib, sizeof(lib)))
		ereport(LOG,
				(errmsg("pg_ext_memcheck: library \"%s\" was loaded before pg_ext_memcheck", lib),
				 errhint("List pg_ext_memcheck first in shared_preload_libraries; the hooks of libraries listed before it cannot be measured.")));
	mc_install_layer(MC_LAYER_INNER);
}

void
mc_install_outer_hooks(void)
{
	if (layer_installed[MC_LAYER_OUTER][MC_HOOK_PLANNER])
		return;					/* crash-restart reinitializes shmem only */
	mc_install_layer(MC_LAYER_OUTER);
}

/*
 * A library loaded in this backend after startup (LOAD, CREATE EXTENSION, a
 * C function's first call) wrapped a chain outside our outer layer: wrap it
 * once more so its hook code is a measurable segment too.
 */
#define MC_CHECK_LATE(var, hookid, prevarr, layerarr) \
	do { \
		if (layer_installed[MC_LAYER_OUTER][hookid] && \
			!layer_installed[MC_LAYER_LATE][hookid] && \
			(var) != layerarr[MC_LAYER_OUTER] && (var) != NULL) \
		{ \
			prevarr[MC_LAYER_LATE] = (var); \
			(var) = layerarr[MC_LAYER_LATE]; \
			mc_note_prev(MC_LAYER_LATE, hookid, (const void *) prevarr[MC_LAYER_LATE], \
						 (const void *) layerarr[MC_LAYER_OUTER]); \
		} \
	} while (0)

static void
mc_check_late_hooks(void)
{
	MC_CHECK_LATE(planner_hook, MC_HOOK_PLANNER, prev_planner, layer_planner);
	MC_CHECK_LATE(ExecutorStart_hook, MC_HOOK_EXEC_START, prev_start, layer_start);
	MC_CHECK_LATE(ExecutorRun_hook, MC_HOOK_EXEC_RUN, prev_run, layer_run);
	MC_CHECK_LATE(ExecutorFinish_hook, MC_HOOK_EXEC_FINISH, prev_finish, layer_finish);
	MC_CHECK_LATE(ExecutorEnd_hook, MC_HOOK_EXEC_END, prev_end, layer_end);
	MC_CHECK_LATE(ProcessUtility_hook, MC_HOOK_UTILITY, prev_utility, layer_utility);
}
