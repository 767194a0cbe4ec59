/*-------------------------------------------------------------------------
 *
 * bloat.c
 *		growth_benchmark's checkpoints: ctx_bloat.
 *
 * The memory foreign code holds in each context (track.c's groups: one
 * series per context, library and kind) is sampled before the first
 * iteration and at log-spaced checkpoints: after iterations 1, 2, 4, 8 ...
 * and after the last one.  A series that grew by at least
 * pg_ext_memcheck.bloat_min_bytes is ctx_bloat:
 *
 *	- growth in a single checkpoint interval (a cache filled once) is a
 *	  cache: INFO, like every cache;
 *	- growth in several intervals is a leak, severity by its total (the
 *	  thresholds of every leak), and its shape compares the growth per
 *	  iteration late in the run (from the middle checkpoint on) with the
 *	  growth per iteration early in it: "superlinear" when late growth is
 *	  more than 1.5 times early growth, which raises the severity one
 *	  level, else "linear".
 *
 * The lifetime is the context's (a context under MessageContext grows for
 * the scenario's statement, TopMemoryContext for the backend).  The
 * samples go into the result ("contexts"), where the reporter draws them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"
#include "utils/memutils.h"

#include "checks/checks.h"

#define MC_BLOAT_SERIES		64
#define MC_BLOAT_POINTS		40
#define MC_BLOAT_LISTED		20
#define MC_SUPERLINEAR		1.5

/*
 * One per (library, context path): contexts the library created there and
 * the memory in them are one series, as several contexts of one path are.
 */
typedef struct McSeries
{
	int16		lib;
	McLifetime	lifetime;
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];
	uint32		group;			/* at the last sample, for sites */
	int64		samples[MC_BLOAT_POINTS];
	bool		seen;			/* visited at the current checkpoint */
	/* judged at the end */
	int64		growth;
	int			grew_intervals;
	double		early;
	double		late;
	const char *shape;
	bool		reported;
} McSeries;

typedef struct McBloat
{
	int			npoints;
	int32		checkpoints[MC_BLOAT_POINTS];
	int			nseries;
	bool		full;
	McSeries	series[MC_BLOAT_SERIES];
} McBloat;

static McSeries *
mc_bloat_series(McBloat *b, const McGroupInfo *info)
{
	int			i;
	McSeries   *s;

	for (i = 0; i < b->nseries; i++)
	{
		s = &b->series[i];
		if (s->lib == info->lib && strcmp(s->path, info->path) == 0)
			return s;
	}
	if (b->nseries >= MC_BLOAT_SERIES)
	{
		b->full = true;
		return NULL;
	}
	s = &b->series[b->nseries++];
	memset(s, 0, sizeof(*s));
	s->lib = info->lib;
	s->lifetime = info->lifetime;
	mc_strlcpy(s->name, info->name, MC_NAME_LEN);
	mc_strlcpy(s->path, info->path, MC_PATH_LEN);
	return s;
}

static void
mc_bloat_visit(const McGroupInfo *info, void *arg)
{
	McBloat    *b = (McBloat *) arg;
	McSeries   *s;

	/* memory outside contexts is malloc_leak's */
	if (info->ctx == MC_MALLOC_HEAP)
		return;
	s = mc_bloat_series(b, info);
	if (s == NULL)
		return;
	if (!s->seen)
		s->samples[b->npoints] = 0;
	s->samples[b->npoints] += info->live_bytes;
	s->group = info->group;
	s->seen = true;
}

/* one checkpoint: every series' bytes after `done` iterations */
static void
mc_bloat_sample(McBloat *b, int32 done)
{
	int			i;

	if (b->npoints >= MC_BLOAT_POINTS)
		return;
	for (i = 0; i < b->nseries; i++)
		b->series[i].seen = false;
	b->checkpoints[b->npoints] = done;
	mc_track_visit_groups(mc_bloat_visit, b);
	/* a series not visited holds nothing now (its context is gone) */
	for (i = 0; i < b->nseries; i++)
		if (!b->series[i].seen)
			b->series[i].samples[b->npoints] = 0;
	b->npoints++;
}

static void
mc_bloat_start(McScenario *sc)
{
	McBloat    *b = MemoryContextAllocZero(sc->cxt, sizeof(McBloat));

	sc->state = b;
	mc_bloat_sample(b, 0);
}

/* checkpoints after iterations 1, 2, 4, 8, ... and the last */
static void
mc_bloat_iteration(McScenario *sc, int32 done)
{
	McBloat    *b = (McBloat *) sc->state;

	if ((done & (done - 1)) == 0 || done == sc->iterations)
		mc_bloat_sample(b, done);
}

/* bytes at the checkpoint nearest below `at` */
static int
mc_bloat_point_at_most(const McBloat *b, int32 at)
{
	int			k;
	int			best = 0;

	for (k = 0; k < b->npoints; k++)
		if (b->checkpoints[k] <= at)
			best = k;
	return best;
}

static McSeverity
mc_raise(McSeverity s)
{
	return s == MC_SEV_INFO ? MC_SEV_WARNING : MC_SEV_ERROR;
}

static void
mc_bloat_judge(McScenario *sc, McBloat *b, McSeries *s)
{
	int			last = b->npoints - 1;
	int			k;
	int			mid;
	int			first;
	int32		n = b->checkpoints[last];
	McViolation *v;
	bool		cache;
	bool		superlinear;
	McSeverity	sev;
	char		keypath[MC_PATH_LEN];

	s->growth = s->samples[last] - s->samples[0];
	s->grew_intervals = 0;
	for (k = 1; k <= last; k++)
		if (s->samples[k] > s->samples[k - 1])
			s->grew_intervals++;
	/* early: iterations after the first up to the middle; late: the rest */
	first = b->npoints > 1 ? 1 : 0;
	mid = mc_bloat_point_at_most(b, n / 2);
	if (mid <= first)
		mid = Min(first + 1, last);
	s->early = b->checkpoints[mid] > b->checkpoints[first] ?
		(double) (s->samples[mid] - s->samples[first]) /
		(b->checkpoints[mid] - b->checkpoints[first]) : 0;
	s->late = n > b->checkpoints[mid] ?
		(double) (s->samples[last] - s->samples[mid]) / (n - b->checkpoints[mid]) : 0;
	cache = s->grew_intervals < 2;
	superlinear = !cache && s->late > 0 && s->late > MC_SUPERLINEAR * Max(s->early, 0.0);
	s->shape = s->growth <= 0 ? "flat" : cache ? "once" : superlinear ? "superlinear" : "linear";

	if (s->growth < (int64) mc_bloat_min_bytes || s->growth <= 0)
		return;
	sev = cache ? MC_SEV_INFO : mc_severity_for(s->growth);
	if (superlinear)
		sev = mc_raise(sev);

	snprintf(keypath, sizeof(keypath), "%s", s->path);
	v = mc_finding_for(MC_CHECK_CTX_BLOAT, s->lifetime, s->lib, keypath,
					   NULL);
	if (v == NULL)
		return;
	mc_track_group_fill(s->group, v);
	mc_strlcpy(v->context_name, s->name, MC_NAME_LEN);
	mc_strlcpy(v->context_path, s->path, MC_PATH_LEN);
	mc_strlcpy(v->source_lib, mc_lib_name(s->lib), MC_LIB_LEN);
	v->phase = MC_PHASE_SCENARIO;
	v->severity = sev;
	v->verdict = cache ? MC_VERDICT_CACHE : MC_VERDICT_LEAK;
	v->used_before = s->samples[0];
	v->used_after = s->samples[last];
	v->used_delta = s->growth;
	v->iterations = n;
	v->bytes_per_iter = (double) s->growth / Max(n, 1);
	v->rate_bytes = v->bytes_per_iter;
	v->unit = MC_UNIT_ITERATION;
	v->occurrences = s->grew_intervals;
	if (cache)
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (%s): %s's memory grew by %lld bytes in one of %d log-spaced checkpoint intervals of %d iterations and then stayed: a cache, not bloat",
				 s->name, s->path, v->source_lib, (long long) s->growth, last, n);
	else
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (%s): %s's memory grew by %lld bytes over %d iterations, in %d of %d log-spaced checkpoint intervals: %.0f bytes per iteration, %s (%.0f per iteration early, %.0f late)%s",
				 s->name, s->path, v->source_lib, (long long) s->growth, n,
				 s->grew_intervals, last, v->bytes_per_iter, s->shape, s->early, s->late,
				 superlinear ? "; late growth is more than 1.5 times early growth, so the severity is one level higher" : "");
	mc_finding_changed(v);
	s->reported = true;
	(void) sc;
}

static void
mc_bloat_finish(McScenario *sc)
{
	McBloat    *b = (McBloat *) sc->state;
	int			i;

	if (b->npoints == 0 || b->checkpoints[b->npoints - 1] != sc->done)
		mc_bloat_sample(b, sc->done);
	if (b->npoints < 2)
		return;
	for (i = 0; i < b->nseries; i++)
		mc_bloat_judge(sc, b, &b->series[i]);
}

/*
 * "ctx_bloat": {"checkpoints": [0, 1, 2, 4, ...], "contexts": [{"path",
 * "name", "lib", "samples", "growth", "bytes_per_iteration", "shape",
 * "reported"}, ...]}: the series that grew, largest first.  (The result's
 * own "checkpoints" and "contexts" are the report's evenly spaced samples.)
 */
static void
mc_bloat_result(McScenario *sc, StringInfo out)
{
	McBloat    *b = (McBloat *) sc->state;
	bool		listed[MC_BLOAT_SERIES] = {0};
	int			shown;
	int			k;

	if (b == NULL)
		return;
	mc_json_key(out, "ctx_bloat");
	appendStringInfoString(out, "{\"checkpoints\": [");
	for (k = 0; k < b->npoints; k++)
		appendStringInfo(out, "%s%d", k > 0 ? ", " : "", b->checkpoints[k]);
	appendStringInfoString(out, "], \"contexts\": [");
	for (shown = 0; shown < MC_BLOAT_LISTED; shown++)
	{
		int			best = -1;
		int			i;
		McSeries   *s;

		for (i = 0; i < b->nseries; i++)
			if (!listed[i] && b->series[i].growth > 0 &&
				(best < 0 || b->series[i].growth > b->series[best].growth))
				best = i;
		if (best < 0)
			break;
		listed[best] = true;
		s = &b->series[best];
		appendStringInfoString(out, shown > 0 ? ", {\"path\": " : "{\"path\": ");
		escape_json(out, s->path);
		mc_json_string(out, "name", s->name);
		mc_json_string(out, "lib", mc_lib_name(s->lib));
		appendStringInfoString(out, ", \"samples\": [");
		for (k = 0; k < b->npoints; k++)
			appendStringInfo(out, "%s" INT64_FORMAT, k > 0 ? ", " : "", s->samples[k]);
		appendStringInfo(out, "], \"growth\": " INT64_FORMAT ", \"bytes_per_iteration\": %.1f",
						 s->growth, (double) s->growth / Max(sc->done, 1));
		mc_json_string(out, "shape", s->shape);
		appendStringInfo(out, ", \"reported\": %s}", s->reported ? "true" : "false");
	}
	appendStringInfoChar(out, ']');
	if (b->full)
		mc_json_string(out, "note", "more contexts grew than are sampled; the first ones are shown");
	appendStringInfoChar(out, '}');
}

static const McScenarioKind growth_benchmark = {
	"growth_benchmark", "Runs the workload N times; leaks by their rate, ctx_bloat from growth at log-spaced checkpoints",
	100, false, false, false, false,
	mc_bloat_start, mc_bloat_iteration, mc_bloat_finish, NULL, mc_bloat_result
};

void
mc_bloat_init(void)
{
	mc_scenario_register(&growth_benchmark);
}
