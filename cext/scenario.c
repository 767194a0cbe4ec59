/*-------------------------------------------------------------------------
 *
 * scenario.c
 *		run_scenario(): repeat a workload, sample the whole memory-context
 *		tree at checkpoints, and tell leaks (steady growth) from caches
 *		(growth that plateaus).
 *
 * The first iteration warms caches (relcache, plancache, typcache, pgstat
 * entries); the baseline is taken after it.  A context leaks when its used
 * bytes grew by at least min_leak_bytes from the baseline and grew between
 * most checkpoints; the rate is reported as bytes per iteration.  Growth of
 * a context is split into its own allocations and the child contexts that
 * appeared under it and stayed, so a leaked child context per iteration is
 * reported at its parent.
 *
 * Scenarios:
 *	growth_benchmark	run the workload N times in the calling transaction
 *	tx_abort_loop		run it N times, each in a subtransaction rolled back
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pg_ext_memcheck.h"

PG_FUNCTION_INFO_V1(mc_run_scenario);

#define MC_MAX_CHECKPOINTS	21
#define MC_MAX_ITERATIONS	10000000
#define MC_STEADY_FRACTION	0.6
#define MC_REPORT_CONTEXTS	20

typedef struct McSnapItem
{
	MemoryContext ctx;
	const char *name;
	MemoryContext parent;
	int			parent_idx;
	int64		own;
	int64		alloc;
	int64		sub;
} McSnapItem;

typedef struct McSnap
{
	int			n;
	int			cap;
	McSnapItem *items;
	int		   *order;			/* item indexes sorted by context address */
} McSnap;

/* per baseline context, its samples at each checkpoint */
typedef struct McSeries
{
	bool		present_all;
	int64		own[MC_MAX_CHECKPOINTS];
	int64		alloc[MC_MAX_CHECKPOINTS];
	int64		sub[MC_MAX_CHECKPOINTS];
	int64		persistent_children[MC_MAX_CHECKPOINTS];
} McSeries;

typedef struct McFinding
{
	int			idx;			/* baseline item */
	bool		children;		/* growth of new child contexts, not own */
	int64		growth;
	double		steady;
	bool		leak;
	int64		samples[MC_MAX_CHECKPOINTS];
} McFinding;

static const McSnap *sort_snap;
static int	mc_order_cmp(const void *a, const void *b);

static void
mc_snap_walk(McSnap *snap, MemoryContext ctx, int parent_idx, MemoryContext exclude)
{
	MemoryContext child;
	int			idx;

	if (ctx == exclude)
		return;
	if (snap->n == snap->cap)
	{
		snap->cap *= 2;
		snap->items = repalloc(snap->items, sizeof(McSnapItem) * snap->cap);
	}
	idx = snap->n++;
	snap->items[idx].ctx = ctx;
	snap->items[idx].name = ctx->name;
	snap->items[idx].parent = ctx->parent;
	snap->items[idx].parent_idx = parent_idx;
	snap->items[idx].own = (int64) mc_own_used(ctx);
	snap->items[idx].alloc = (int64) ctx->mem_allocated;
	snap->items[idx].sub = 0;
	for (child = ctx->firstchild; child != NULL; child = child->nextchild)
		mc_snap_walk(snap, child, idx, exclude);
}

/* snapshot of the whole tree but our own context; allocated in cxt */
static void
mc_snapshot(McSnap *snap, MemoryContext exclude, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int			i;

	snap->n = 0;
	snap->cap = 256;
	snap->items = palloc(sizeof(McSnapItem) * snap->cap);
	mc_snap_walk(snap, TopMemoryContext, -1, exclude);
	/* pre-order: children come after their parent */
	for (i = snap->n - 1; i >= 0; i--)
	{
		snap->items[i].sub += snap->items[i].own;
		if (snap->items[i].parent_idx >= 0)
			snap->items[snap->items[i].parent_idx].sub += snap->items[i].sub;
	}
	snap->order = palloc(sizeof(int) * snap->n);
	for (i = 0; i < snap->n; i++)
		snap->order[i] = i;
	sort_snap = snap;
	qsort(snap->order, snap->n, sizeof(int), mc_order_cmp);
	MemoryContextSwitchTo(old);
}

static int
mc_order_cmp(const void *a, const void *b)
{
	uintptr_t	pa = (uintptr_t) sort_snap->items[*(const int *) a].ctx;
	uintptr_t	pb = (uintptr_t) sort_snap->items[*(const int *) b].ctx;

	return pa < pb ? -1 : (pa > pb ? 1 : 0);
}

static int
mc_find(const McSnap *snap, const McSnapItem *key)
{
	int			lo = 0;
	int			hi = snap->n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		const McSnapItem *it = &snap->items[snap->order[mid]];

		if (it->ctx == key->ctx)
		{
			/* identity is weak (addresses are reused): check name and parent */
			if (it->name == key->name && it->parent == key->parent)
				return snap->order[mid];
			return -1;
		}
		if ((uintptr_t) it->ctx < (uintptr_t) key->ctx)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static void
mc_run_once(const char *workload, bool rollback, int64 *errors)
{
	if (!rollback)
	{
		SPI_execute(workload, false, 0);
		SPI_freetuptable(SPI_tuptable);
	}
	else
	{
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		PG_TRY();
		{
			SPI_execute(workload, false, 0);
			SPI_freetuptable(SPI_tuptable);
			RollbackAndReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(oldcxt);
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			(*errors)++;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	CHECK_FOR_INTERRUPTS();
}

static void
mc_judge(McFinding *f, int ncp, int64 min_growth)
{
	int			j;
	int			up = 0;

	f->growth = f->samples[ncp - 1] - f->samples[0];
	for (j = 1; j < ncp; j++)
		if (f->samples[j] > f->samples[j - 1])
			up++;
	f->steady = ncp > 1 ? (double) up / (ncp - 1) : 0.0;
	f->leak = f->growth >= min_growth && f->steady >= MC_STEADY_FRACTION;
}

static void
mc_record_finding(McFinding *f, const McSnap *base, const McSnap *last,
				  const McSeries *series, int ncp, int64 iters)
{
	McSnapItem *b = &base->items[f->idx];
	McViolation v;
	const char *lib = NULL;
	char		libbuf[MC_LIB_LEN];
	char		child_name[MC_NAME_LEN] = "";
	int			nchildren = 0;
	int			i;
	int64		alloc_growth = series->alloc[ncp - 1] - series->alloc[0];

	memset(&v, 0, sizeof(v));
	v.check = MC_CHECK_CONTEXT_LEAK;
	v.severity = mc_severity_for(f->growth);
	v.phase = MC_PHASE_SCENARIO;
	v.nest_level = -1;
	mc_fill_context(&v, b->ctx);
	v.used_before = f->samples[0];
	v.used_after = f->samples[ncp - 1];
	v.used_delta = f->growth;
	v.alloc_delta = alloc_growth;
	v.iterations = iters;
	v.bytes_per_iter = (double) f->growth / (double) iters;

	if (f->children)
	{
		/* the new children, and who created them */
		for (i = 0; i < last->n; i++)
			if (last->items[i].parent == b->ctx && mc_find(base, &last->items[i]) < 0)
			{
				if (nchildren++ == 0)
				{
					mc_strlcpy(child_name, mc_context_display_name(last->items[i].ctx),
							   sizeof(child_name));
					if (mc_foreign_lib_of(last->items[i].name, libbuf, sizeof(libbuf)))
						lib = libbuf;
				}
			}
	}
	if (lib == NULL)
		lib = mc_accum_lib_for(b->ctx);
	mc_strlcpy(v.source_lib, lib, MC_LIB_LEN);

	if (f->children)
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %d child contexts (like '%s') were left behind; used grew by %lld bytes over %lld iterations (%.0f bytes per iteration, growing at %.0f%% of checkpoints): leak",
				 v.context_name, (int) v.depth, nchildren, child_name,
				 (long long) f->growth, (long long) iters, v.bytes_per_iter,
				 f->steady * 100.0);
	else
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): used grew by %lld bytes (before=%lld after=%lld) over %lld iterations (%.0f bytes per iteration, growing at %.0f%% of checkpoints); allocated grew by %lld bytes: leak",
				 v.context_name, (int) v.depth, (long long) f->growth,
				 (long long) v.used_before, (long long) v.used_after,
				 (long long) iters, v.bytes_per_iter, f->steady * 100.0,
				 (long long) alloc_growth);
	mc_emit(&v);

	if (mc_is_global_context(b->ctx))
	{
		v.check = MC_CHECK_WRONG_CTX_ALLOC;
		v.severity = MC_SEV_WARNING;
		snprintf(v.detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): allocated grew by %lld bytes in a known global context over %lld iterations (used before=%lld after=%lld); memory there lives until the backend exits",
				 v.context_name, (int) v.depth, (long long) alloc_growth,
				 (long long) iters, (long long) v.used_before,
				 (long long) v.used_after);
		mc_emit(&v);
	}
}

static void
mc_json_finding(StringInfo out, const McFinding *f, const McSnapItem *b, int ncp,
				int64 iters)
{
	char		path[MC_PATH_LEN];
	int			j;

	mc_context_path(b->ctx, path, sizeof(path));
	appendStringInfoString(out, "{\"context\": ");
	escape_json(out, mc_context_display_name(b->ctx));
	appendStringInfoString(out, ", \"path\": ");
	escape_json(out, path);
	appendStringInfo(out,
					 ", \"kind\": \"%s\", \"growth\": %lld, \"bytes_per_iteration\": %.1f, \"steady\": %.2f, \"verdict\": \"%s\", \"samples\": [",
					 f->children ? "children" : "own", (long long) f->growth,
					 (double) f->growth / (double) iters, f->steady,
					 f->leak ? "leak" : "plateau");
	for (j = 0; j < ncp; j++)
		appendStringInfo(out, "%s%lld", j > 0 ? ", " : "", (long long) f->samples[j]);
	appendStringInfoString(out, "]}");
}

static int
mc_finding_cmp(const void *a, const void *b)
{
	const McFinding *fa = a;
	const McFinding *fb = b;

	if (fa->leak != fb->leak)
		return fa->leak ? -1 : 1;
	if (fa->growth != fb->growth)
		return fa->growth > fb->growth ? -1 : 1;
	return 0;
}

Datum
mc_run_scenario(PG_FUNCTION_ARGS)
{
	char	   *scenario;
	int32		iterations;
	char	   *workload;
	bool		rollback;
	MemoryContext cxt;
	MemoryContext old;
	int			cps[MC_MAX_CHECKPOINTS];
	int			ncp = 0;
	int			baseline_iter;
	int			steps;
	int			i, j, k;
	int64		errors = 0;
	McSnap		base;
	McSnap		snap;
	McSeries   *series;
	McFinding  *findings;
	int			nfindings = 0;
	int			nleaks = 0;
	int64		iters;
	StringInfoData out;
	Datum		result;

	if (!mc_ring_attached())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_ext_memcheck must be loaded via shared_preload_libraries")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("scenario_name must not be null")));
	scenario = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strcmp(scenario, "growth_benchmark") == 0)
		rollback = false;
	else if (strcmp(scenario, "tx_abort_loop") == 0)
		rollback = true;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown scenario_name \"%s\"", scenario),
				 errhint("Use growth_benchmark or tx_abort_loop.")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iterations must not be null")));
	iterations = PG_GETARG_INT32(1);
	if (iterations < 1 || iterations > MC_MAX_ITERATIONS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iterations must be between 1 and %d (got %d)",
						MC_MAX_ITERATIONS, iterations)));
	workload = PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strspn(workload, " \t\r\n;") == strlen(workload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workload must be a non-empty SQL string")));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_ext_memcheck scenario",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	/* checkpoints: the baseline after warm-up, then evenly spaced */
	baseline_iter = iterations >= 3 ? 1 : 0;
	steps = Min(MC_MAX_CHECKPOINTS - 1, iterations - baseline_iter);
	cps[ncp++] = baseline_iter;
	for (k = 1; k <= steps; k++)
	{
		int			it = baseline_iter +
			(int) (((int64) (iterations - baseline_iter) * k) / steps);

		if (it > cps[ncp - 1])
			cps[ncp++] = it;
	}
	iters = iterations - baseline_iter;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	series = NULL;
	base.n = 0;
	base.items = NULL;
	j = 0;
	for (i = 0; i <= iterations; i++)
	{
		if (i > 0)
			mc_run_once(workload, rollback, &errors);
		if (j < ncp && i == cps[j])
		{
			McSnap	   *s = (j == 0) ? &base : &snap;

			mc_snapshot(s, cxt, cxt);
			if (j == 0)
				series = MemoryContextAllocZero(cxt, sizeof(McSeries) * base.n);
			for (k = 0; k < base.n; k++)
			{
				int			idx = (j == 0) ? k : mc_find(s, &base.items[k]);

				if (j == 0)
					series[k].present_all = true;
				if (idx < 0)
				{
					series[k].present_all = false;
					continue;
				}
				series[k].own[j] = s->items[idx].own;
				series[k].alloc[j] = s->items[idx].alloc;
				series[k].sub[j] = s->items[idx].sub;
				if (base.items[k].parent_idx >= 0)
					series[base.items[k].parent_idx].persistent_children[j] +=
						s->items[idx].sub;
			}
			if (j > 0 && j < ncp - 1)
			{
				pfree(snap.items);
				pfree(snap.order);
			}
			j++;
		}
	}
	/*
	 * Judge before SPI_finish: the contexts must still be alive for their
	 * names and paths, and SPI_connect made SPI's context current.
	 */
	MemoryContextSwitchTo(cxt);

	/* judge every context present throughout: own growth and new children */
	findings = palloc(sizeof(McFinding) * base.n * 2);
	for (k = 0; k < base.n; k++)
	{
		int			kind;

		if (!series[k].present_all)
			continue;
		for (kind = 0; kind < 2; kind++)
		{
			McFinding  *f = &findings[nfindings];

			f->idx = k;
			f->children = (kind == 1);
			for (j = 0; j < ncp; j++)
				f->samples[j] = f->children ?
					series[k].sub[j] - series[k].own[j] - series[k].persistent_children[j] :
					series[k].own[j];
			mc_judge(f, ncp, mc_min_leak_bytes);
			if (f->growth > 0)
				nfindings++;
		}
	}
	qsort(findings, nfindings, sizeof(McFinding), mc_finding_cmp);

	for (i = 0; i < nfindings; i++)
		if (findings[i].leak)
		{
			nleaks++;
			mc_record_finding(&findings[i], &base, &snap, &series[findings[i].idx],
							  ncp, iters);
		}
	/* what the statement's hooks measured is reported here, not again */
	mc_accum_reset();

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"scenario\": ");
	escape_json(&out, scenario);
	appendStringInfo(&out,
					 ", \"iterations\": %d, \"baseline_iteration\": %d, \"errors\": %lld, \"verdict\": \"%s\", \"checkpoints\": [",
					 iterations, baseline_iter, (long long) errors,
					 nleaks > 0 ? "leak" : "plateau");
	for (j = 0; j < ncp; j++)
		appendStringInfo(&out, "%s%d", j > 0 ? ", " : "", cps[j]);
	appendStringInfoString(&out, "], \"contexts\": [");
	for (i = 0; i < nfindings && i < MC_REPORT_CONTEXTS; i++)
	{
		if (i > 0)
			appendStringInfoString(&out, ", ");
		mc_json_finding(&out, &findings[i], &base.items[findings[i].idx], ncp, iters);
	}
	appendStringInfoString(&out, "]}");

	SPI_finish();
	MemoryContextSwitchTo(old);
	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data));
	MemoryContextDelete(cxt);
	PG_RETURN_DATUM(result);
}
