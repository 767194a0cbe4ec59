/*-------------------------------------------------------------------------
 *
 * ctxprobe.c
 *		wrong_context_probe: every allocation foreign code makes into
 *		TopMemoryContext, CacheMemoryContext or contexts the user names,
 *		with its call site.
 *
 * track.c already sees every allocation foreign code makes, directly
 * (through its GOT, with the exact call site) or by PostgreSQL on its
 * behalf inside a foreign segment.  While the probe runs, track.c hands
 * each one to mc_probe_note(), which counts those that land in a watched
 * context per (context, library, call site); an indirect allocation gets
 * its site from the first foreign frame of a stack trace (at most
 * MC_PROBE_BACKTRACES per run).  Like track.c this runs inside the
 * allocator: no palloc, no lock, no error; the table is static.
 *
 * At the end each (context, library) becomes a wrong_ctx_alloc finding:
 * WARNING when one of its call sites allocated there in more than one
 * iteration and still holds more there than before the probe (memory that
 * lives until the backend exits and grows with the workload); INFO
 * otherwise (a cache filled once, scratch space given back), so that the
 * report still lists every allocation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"
#include "utils/memutils.h"

#include "checks/checks.h"

#define MC_PROBE_HITS		256
#define MC_PROBE_BACKTRACES 4096
#define MC_PROBE_LISTED		50

typedef struct McProbeHit
{
	MemoryContext ctx;
	int16		lib;
	uintptr_t	site;
	int64		count;
	int64		bytes;
	int32		iterations;		/* distinct iterations that allocated here */
	int32		last_iteration;
	int64		live_before;	/* what this site held there when first seen */
	int64		kept;			/* what it holds at the end, above that */
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];
} McProbeHit;

/* what the library holds in a watched context: before the probe and after */
typedef struct McProbeHeld
{
	MemoryContext ctx;
	int16		lib;
	int64		before;
	int64		after;
} McProbeHeld;

typedef struct McProbe
{
	McProbeHeld held[MC_PROBE_HITS];
	int			nheld;
} McProbe;

static McProbeHit hits[MC_PROBE_HITS];
static int	nhits = 0;
static int64 dropped = 0;
static int	backtraces = 0;
static int32 iteration = 0;
static int	nwatched = 0;
static const char (*watched)[MC_NAME_LEN] = NULL;

static bool
mc_probe_watches(MemoryContext ctx)
{
	int			i;

	if (ctx == TopMemoryContext || ctx == CacheMemoryContext)
		return true;
	for (i = 0; i < nwatched; i++)
		if (strcmp(ctx->name, watched[i]) == 0 ||
			strcmp(mc_context_display_name(ctx), watched[i]) == 0)
			return true;
	return false;
}

/* the first frame of a stack trace in a foreign library */
static uintptr_t
mc_probe_stack_site(int *lib)
{
	if (backtraces >= MC_PROBE_BACKTRACES)
		return 0;
	backtraces++;
	return mc_foreign_frame(lib);
}

/* track.c: foreign code allocated size bytes in ctx (child_name: a context it created) */
static void
mc_probe_note(MemoryContext ctx, int lib, uintptr_t *site, Size size, const char *child_name)
{
	int			i;
	McProbeHit *h;

	if (!mc_probe_watches(ctx))
		return;
	if (*site == 0 && child_name == NULL)
		*site = mc_probe_stack_site(&lib);
	for (i = 0; i < nhits; i++)
		if (hits[i].ctx == ctx && hits[i].lib == lib && hits[i].site == *site)
			break;
	if (i == nhits)
	{
		if (nhits >= MC_PROBE_HITS)
		{
			dropped++;
			return;
		}
		h = &hits[nhits++];
		memset(h, 0, sizeof(*h));
		h->ctx = ctx;
		h->lib = (int16) lib;
		h->site = *site;
		h->live_before = child_name ? 0 : mc_track_live_at(ctx, lib, *site);
		mc_strlcpy(h->name, mc_context_display_name(ctx), MC_NAME_LEN);
		mc_context_path(ctx, h->path, MC_PATH_LEN);
	}
	h = &hits[i];
	h->count++;
	h->bytes += (int64) size;
	if (h->last_iteration != iteration)
	{
		h->iterations++;
		h->last_iteration = iteration;
	}
}

/* what each library holds in watched contexts now */
static void
mc_probe_held_visit(const McGroupInfo *info, void *arg)
{
	McProbe    *p = (McProbe *) arg;
	bool		before = iteration == 0;	/* visited from start, else from finish */
	int			i;

	if (info->ctx == MC_MALLOC_HEAP || !mc_probe_watches(info->ctx))
		return;
	for (i = 0; i < p->nheld; i++)
		if (p->held[i].ctx == info->ctx && p->held[i].lib == info->lib)
			break;
	if (i == p->nheld)
	{
		if (p->nheld >= MC_PROBE_HITS)
			return;
		memset(&p->held[i], 0, sizeof(McProbeHeld));
		p->held[i].ctx = info->ctx;
		p->held[i].lib = info->lib;
		p->nheld++;
	}
	if (before)
		p->held[i].before += info->live_bytes;
	else
		p->held[i].after += info->live_bytes;
}

static void
mc_ctxprobe_start(McScenario *sc)
{
	McProbe    *p = MemoryContextAllocZero(sc->cxt, sizeof(McProbe));

	sc->state = p;
	nhits = 0;
	dropped = 0;
	backtraces = 0;
	nwatched = sc->nwatched;
	watched = (const char (*)[MC_NAME_LEN]) sc->watched;
	iteration = 0;
	mc_track_visit_groups(mc_probe_held_visit, p);
	iteration = 1;
	mc_track_listeners.watching = mc_active;
}

static void
mc_ctxprobe_iteration(McScenario *sc, int32 done)
{
	(void) sc;
	iteration = done + 1;
}

/* the sites of (ctx, lib), most bytes first */
static void
mc_probe_sites(MemoryContext ctx, int lib, McViolation *v)
{
	int			i;

	v->nsites = 0;
	for (i = 0; i < nhits; i++)
	{
		McProbeHit *h = &hits[i];

		if (h->ctx == ctx && h->lib == lib)
			mc_finding_add_site(v, h->site, lib, h->bytes, h->count);
	}
}

static void
mc_ctxprobe_finish(McScenario *sc)
{
	McProbe    *p = (McProbe *) sc->state;
	int			i;

	mc_track_listeners.watching = false;
	mc_track_visit_groups(mc_probe_held_visit, p);
	nwatched = 0;				/* sc->watched is gone with the scenario */
	for (i = 0; i < nhits; i++)
		hits[i].kept = hits[i].site == 0 ? 0 :
			mc_track_live_at(hits[i].ctx, hits[i].lib, hits[i].site) - hits[i].live_before;

	/* one finding per (context, library) */
	for (i = 0; i < nhits; i++)
	{
		McProbeHit *h = &hits[i];
		int			j;
		int64		count = 0;
		int64		bytes = 0;
		int32		iters = 0;
		int64		grew = 0;
		bool		repeats_kept = false;	/* a site that allocated again and again and kept it */
		McViolation *v;
		char		keypath[MC_PATH_LEN];

		for (j = 0; j < i; j++)
			if (hits[j].ctx == h->ctx && hits[j].lib == h->lib)
				break;
		if (j < i)
			continue;			/* done with its first site */
		for (j = i; j < nhits; j++)
			if (hits[j].ctx == h->ctx && hits[j].lib == h->lib)
			{
				count += hits[j].count;
				bytes += hits[j].bytes;
				iters = Max(iters, hits[j].iterations);
				if (hits[j].iterations >= 2 && hits[j].kept > 0)
					repeats_kept = true;
			}
		for (j = 0; j < p->nheld; j++)
			if (p->held[j].ctx == h->ctx && p->held[j].lib == h->lib)
				grew = p->held[j].after - p->held[j].before;
		snprintf(keypath, sizeof(keypath), "wrong_context_probe:%s", h->path);
		v = mc_finding_for(MC_CHECK_WRONG_CTX_ALLOC, MC_LIFE_BACKEND, h->lib,
						   keypath, NULL);
		if (v == NULL)
			continue;
		mc_strlcpy(v->context_name, h->name, MC_NAME_LEN);
		mc_strlcpy(v->context_path, h->path, MC_PATH_LEN);
		mc_strlcpy(v->source_lib, mc_lib_name(h->lib), MC_LIB_LEN);
		v->depth = (int16) mc_context_depth(h->ctx);
		v->phase = MC_PHASE_SCENARIO;
		v->severity = repeats_kept ? MC_SEV_WARNING : MC_SEV_INFO;
		v->verdict = repeats_kept ? MC_VERDICT_LEAK : (grew > 0 ? MC_VERDICT_CACHE : MC_VERDICT_NONE);
		v->calls = count;
		v->occurrences = count;
		v->iterations = sc->done;
		v->used_delta = grew;
		v->alloc_delta = bytes;
		v->rate_bytes = (double) bytes / Max(sc->done, 1);
		v->unit = MC_UNIT_ITERATION;
		v->bytes_per_iter = v->rate_bytes;
		mc_probe_sites(h->ctx, h->lib, v);
		snprintf(v->detail, MC_DETAIL_LEN,
				 "wrong_context_probe: %lld allocation%s (%lld bytes) by %s into '%s', a context that lives until the backend exits, in %d of %d iterations; %lld bytes of them are still held there",
				 (long long) count, count == 1 ? "" : "s", (long long) bytes, v->source_lib,
				 h->name, iters, sc->done, (long long) Max(grew, 0));
		mc_finding_changed(v);
	}
}

/* "watched": [...], "allocations": [{"context", "lib", "offset", "count", "bytes", "iterations"}, ...] */
static void
mc_ctxprobe_result(McScenario *sc, StringInfo out)
{
	int			i;

	mc_json_key(out, "watched");
	appendStringInfoString(out, "[\"TopMemoryContext\", \"CacheMemoryContext\"");
	for (i = 0; i < sc->nwatched; i++)
	{
		appendStringInfoString(out, ", ");
		escape_json(out, sc->watched[i]);
	}
	appendStringInfoChar(out, ']');
	mc_json_key(out, "allocations");
	appendStringInfoChar(out, '[');
	for (i = 0; i < nhits && i < MC_PROBE_LISTED; i++)
	{
		McProbeHit *h = &hits[i];
		int			l = h->site != 0 ? mc_lib_of_address((void *) h->site) : MC_NO_LIB;

		appendStringInfoString(out, i > 0 ? ", {\"context\": " : "{\"context\": ");
		escape_json(out, h->path);
		mc_json_string(out, "lib", mc_lib_name(h->lib));
		if (l != MC_NO_LIB)
			appendStringInfo(out, ", \"offset\": \"0x%llx\"",
							 (unsigned long long) (h->site - mc_lib_base(l)));
		else
			appendStringInfoString(out, ", \"offset\": null");
		appendStringInfo(out, ", \"count\": %lld, \"bytes\": %lld, \"iterations\": %d, \"kept\": %lld}",
						 (long long) h->count, (long long) h->bytes, h->iterations, (long long) h->kept);
	}
	appendStringInfoChar(out, ']');
	if (nhits > MC_PROBE_LISTED || dropped > 0)
		appendStringInfo(out, ", \"allocations_not_listed\": %lld",
						 (long long) (Max(nhits - MC_PROBE_LISTED, 0) + dropped));
}

static const McScenarioKind wrong_context_probe = {
	"wrong_context_probe", "Reports every allocation by the extension into TopMemoryContext, CacheMemoryContext or named contexts, with its call site",
	100, false, false, false, true,
	mc_ctxprobe_start, mc_ctxprobe_iteration, mc_ctxprobe_finish, NULL, mc_ctxprobe_result
};

void
mc_ctxprobe_init(void)
{
	mc_track_listeners.alloc_note = mc_probe_note;
	mc_scenario_register(&wrong_context_probe);
}
