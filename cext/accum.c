/*-------------------------------------------------------------------------
 *
 * accum.c
 *		Per-statement accumulation of what other libraries' hook code did to
 *		the watched memory contexts, and the checks run on it when the
 *		statement's phase ends.
 *
 * hooks.c measures foreign segments (code of other libraries between two of
 * our hook layers) and adds their deltas here.  Summing over a whole
 * statement is what finds a per-call allocation in the context of a SQL
 * function called once per row: each call adds a little, the sum is large,
 * and the context is freed at the end of the statement, so no
 * between-statement comparison could see it.
 *
 * Everything here runs outside error handling; nothing allocates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "pg_ext_memcheck.h"

typedef struct McAcc
{
	MemoryContext ctx;
	bool		global;
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];
	int			depth;
	int64		used_before;	/* own used when first seen */
	int64		used_after;		/* own used when last seen */
	int64		used_delta;		/* sum of foreign deltas */
	int64		child_used;		/* used by new child contexts left behind */
	int64		child_alloc;
	int			calls;			/* distinct hook invocations that added */
	uint64		last_frame;
	int			phase;
	int			nest_level;
	char		lib[MC_LIB_LEN];
} McAcc;

typedef struct McNewChild
{
	MemoryContext parent;
	MemoryContext child;
	const char *name;			/* identity check: addresses get reused */
	int			phase;
	int			nest_level;
	char		lib[MC_LIB_LEN];
} McNewChild;

#define MC_MAX_ACC 32
#define MC_MAX_NEW 64

static McAcc accs[MC_MAX_ACC];
static int	naccs = 0;
static McNewChild newc[MC_MAX_NEW];
static int	nnewc = 0;

void
mc_accum_reset(void)
{
	naccs = 0;
	nnewc = 0;
}

static McAcc *
mc_acc_get(MemoryContext ctx, const char *lib, int phase, int nest_level)
{
	int			i;
	McAcc	   *a;

	for (i = 0; i < naccs; i++)
		if (accs[i].ctx == ctx && strcmp(accs[i].lib, lib) == 0)
			return &accs[i];
	if (naccs >= MC_MAX_ACC)
		return NULL;
	a = &accs[naccs++];
	memset(a, 0, sizeof(*a));
	a->ctx = ctx;
	a->global = mc_is_global_context(ctx);
	mc_strlcpy(a->name, mc_context_display_name(ctx), MC_NAME_LEN);
	mc_context_path(ctx, a->path, MC_PATH_LEN);
	a->depth = mc_context_depth(ctx);
	a->used_before = -1;
	a->phase = phase;
	a->nest_level = nest_level;
	mc_strlcpy(a->lib, lib, MC_LIB_LEN);
	return a;
}

/*
 * Add one foreign segment's effect on ctx (own used before and after it).
 * ctx must be alive now; its name and path are copied because it may be
 * gone when the statement ends.
 */
void
mc_accum_add(MemoryContext ctx, int64 before, int64 after, const char *lib,
			 int phase, int nest_level, uint64 frame_serial)
{
	McAcc	   *a;

	if (after == before)
		return;
	a = mc_acc_get(ctx, lib, phase, nest_level);
	if (a == NULL)
		return;
	if (a->used_before < 0)
		a->used_before = before;
	a->used_after = after;
	a->used_delta += after - before;
	if (a->last_frame != frame_serial)
	{
		a->calls++;
		a->last_frame = frame_serial;
	}
	if (nest_level > a->nest_level)
		a->nest_level = nest_level;
}

/* a context created under parent by foreign code; judged at phase end */
void
mc_accum_new_child(MemoryContext parent, MemoryContext child, const char *lib,
				   int phase, int nest_level)
{
	int			i;

	for (i = 0; i < nnewc; i++)
		if (newc[i].child == child)
			return;
	if (nnewc >= MC_MAX_NEW)
		return;
	newc[nnewc].parent = parent;
	newc[nnewc].child = child;
	newc[nnewc].name = child->name;
	newc[nnewc].phase = phase;
	newc[nnewc].nest_level = nest_level;
	mc_strlcpy(newc[nnewc].lib, lib, MC_LIB_LEN);
	nnewc++;
}

/* the library most responsible for growth of ctx, or NULL */
const char *
mc_accum_lib_for(MemoryContext ctx)
{
	int			i;
	const char *best = NULL;
	int64		best_bytes = 0;

	for (i = 0; i < naccs; i++)
		if (accs[i].ctx == ctx && accs[i].used_delta + accs[i].child_used > best_bytes)
		{
			best = accs[i].lib;
			best_bytes = accs[i].used_delta + accs[i].child_used;
		}
	for (i = 0; i < nnewc && best == NULL; i++)
		if (newc[i].parent == ctx)
			best = newc[i].lib;
	return best;
}

static void
mc_record_child(McNewChild *nc, int64 used, int64 alloc)
{
	McViolation v;

	memset(&v, 0, sizeof(v));
	v.check = MC_CHECK_CONTEXT_LEAK;
	v.severity = mc_severity_for(used);
	v.phase = nc->phase;
	v.nest_level = nc->nest_level;
	mc_fill_context(&v, nc->child);
	v.used_before = 0;
	v.used_after = used;
	v.used_delta = used;
	v.alloc_delta = alloc;
	v.bytes_per_iter = -1;
	v.iterations = 1;
	mc_strlcpy(v.source_lib, nc->lib, MC_LIB_LEN);
	snprintf(v.detail, MC_DETAIL_LEN,
			 "context '%s' (depth %d): created by %s during the %s phase and left behind; used grew by %lld bytes (before=0 after=%lld); allocated before=0 after=%lld",
			 v.context_name, (int) v.depth, nc->lib, mc_phase_name(nc->phase),
			 (long long) used, (long long) used, (long long) alloc);
	mc_emit(&v);

	if (mc_is_global_context(nc->parent))
	{
		memset(&v, 0, sizeof(v));
		v.check = MC_CHECK_WRONG_CTX_ALLOC;
		v.severity = MC_SEV_WARNING;
		v.phase = nc->phase;
		v.nest_level = nc->nest_level;
		mc_fill_context(&v, nc->parent);
		v.used_delta = used;
		v.alloc_delta = alloc;
		v.bytes_per_iter = -1;
		v.iterations = 1;
		mc_strlcpy(v.source_lib, nc->lib, MC_LIB_LEN);
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): new child context '%s' (%lld bytes used) created by %s in a known global context and left behind; it lives until the backend exits",
				 v.context_name, (int) v.depth, mc_context_display_name(nc->child),
				 (long long) used, nc->lib);
		mc_emit(&v);
	}
}

static void
mc_record_acc(McAcc *a)
{
	McViolation v;
	int64		total = a->used_delta + a->child_used;

	memset(&v, 0, sizeof(v));
	v.check = MC_CHECK_CONTEXT_LEAK;
	v.severity = mc_severity_for(total);
	v.phase = a->phase;
	v.nest_level = a->nest_level;
	mc_strlcpy(v.context_name, a->name, MC_NAME_LEN);
	mc_strlcpy(v.context_path, a->path, MC_PATH_LEN);
	v.depth = a->depth;
	v.used_before = a->used_before < 0 ? 0 : a->used_before;
	v.used_after = v.used_before + total;
	v.used_delta = total;
	v.alloc_delta = a->child_alloc;
	v.bytes_per_iter = -1;
	v.iterations = a->calls > 0 ? a->calls : 1;
	mc_strlcpy(v.source_lib, a->lib, MC_LIB_LEN);
	if (a->calls > 1)
	{
		v.bytes_per_iter = (double) total / a->calls;
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): used grew by %lld bytes over %d hook calls of %s (%.0f bytes per call) during one statement%s",
				 a->name, a->depth, (long long) total, a->calls, a->lib,
				 v.bytes_per_iter,
				 a->nest_level > 0 ? "; the calls were nested executions, so the growth scales with the rows the statement processes" : "");
	}
	else if (a->child_used > 0)
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): used grew by %lld bytes (before=%lld after=%lld), %lld of them in child contexts %s created and left behind",
				 a->name, a->depth, (long long) total,
				 (long long) v.used_before, (long long) v.used_after,
				 (long long) a->child_used, a->lib);
	else
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): used grew by %lld bytes (before=%lld after=%lld) in hook code of %s",
				 a->name, a->depth, (long long) total,
				 (long long) v.used_before, (long long) v.used_after, a->lib);
	mc_emit(&v);

	if (a->global && a->used_delta >= mc_min_leak_bytes)
	{
		v.check = MC_CHECK_WRONG_CTX_ALLOC;
		v.severity = MC_SEV_WARNING;
		v.used_delta = a->used_delta;
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %lld bytes allocated in a known global context by %s during the %s phase (before=%lld after=%lld); memory there lives until the backend exits",
				 a->name, a->depth, (long long) a->used_delta, a->lib,
				 mc_phase_name(a->phase), (long long) v.used_before,
				 (long long) (v.used_before + a->used_delta));
		mc_emit(&v);
	}
}

/*
 * The phase of a top-level statement ended: judge what accumulated.
 * Parents of new children are long-lived contexts still valid here.
 */
void
mc_accum_evaluate(void)
{
	int			i;

	for (i = 0; i < nnewc; i++)
	{
		McNewChild *nc = &newc[i];
		int64		used;
		int64		alloc;
		McAcc	   *a;

		if (!mc_child_of(nc->parent, nc->child) || nc->child->name != nc->name)
			continue;			/* freed before the phase ended: no leak */
		used = (int64) mc_subtree_used(nc->child);
		alloc = (int64) MemoryContextMemAllocated(nc->child, true);
		if (used < mc_min_leak_bytes)
			continue;
		mc_record_child(nc, used, alloc);
		a = mc_acc_get(nc->parent, nc->lib, nc->phase, nc->nest_level);
		if (a != NULL)
		{
			a->child_used += used;
			a->child_alloc += alloc;
			if (a->calls == 0)
				a->calls = 1;
		}
	}

	for (i = 0; i < naccs; i++)
		if (accs[i].used_delta + accs[i].child_used >= mc_min_leak_bytes)
			mc_record_acc(&accs[i]);

	mc_accum_reset();
}
