/*-------------------------------------------------------------------------
 *
 * resetstorm.c
 *		context_reset_storm: use_after_reset.
 *
 * The workload runs in background workers (worker.c), each run in its own
 * transaction (or every reset_frequency runs), so that every short-lived
 * context the foreign code allocated into (per-call and per-query
 * contexts, the portal's, the transaction's) is reset or deleted between
 * invocations, as it would be between the statements of a session.
 *
 *	- two plain workers run it iterations times: what it returns when no
 *	  memory is touched, and whether that is deterministic;
 *	- the storm worker runs it the same number of times while every chunk
 *	  foreign code allocated in a context that is reset or deleted is first
 *	  overwritten with a pattern (0xDB; 0x7F, PostgreSQL's own, on builds
 *	  with CLOBBER_FREED_MEMORY), and a deleted context holding such memory
 *	  is kept from reuse (quarantined until the worker exits), so that a
 *	  pointer kept into it reads the pattern instead of whatever the next
 *	  query put there.
 *
 * A run of the storm worker that crashes (the worker catches it and exits
 * cleanly), fails or returns something else than both plain runs of the
 * same number agree on is a use_after_reset finding, naming the context
 * whose memory was poisoned before it and where the library allocated
 * that memory.  A crash no poisoning explains (the plain workers crashed
 * too, or nothing was poisoned yet) is a finding as well, an ERROR saying
 * so: a scenario whose every worker crashed never passes.  The poisoning runs inside the allocator's reset and
 * delete (track.c, mcxtwrap.c): it writes only what the library asked
 * for, never chunk headers, allocates nothing and takes no lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"
#include "utils/memutils.h"

#include "checks/checks.h"

#ifdef CLOBBER_FREED_MEMORY
#define MC_POISON_BYTE		0x7F
#else
#define MC_POISON_BYTE		0xDB
#endif
#define MC_QUARANTINE_MAX	4096
#define MC_QUARANTINE_BYTES ((Size) 256 * 1024 * 1024)
#define MC_STORM_TIMEOUT_MS 300000
#define MC_STORM_WORKERS	3	/* two plain, one storm */

/* ---------- in the storm's worker: poison, remember, quarantine ---------- */

/* as recorded inside the allocator: the library by index, the site by address */
typedef struct McNote
{
	McPoisonNote note;
	int16		lib;
	uintptr_t	site;
} McNote;

static McNote notes[MC_POISON_NOTES];
static int	nnotes = 0;
static int32 current_run = 0;
static int64 quarantined = 0;
static Size quarantined_bytes = 0;

static void
mc_storm_begin(void)
{
	nnotes = 0;
	quarantined = 0;
	quarantined_bytes = 0;
	mc_track_listeners.poisoning = true;
}

static void
mc_storm_next_run(int32 run)
{
	current_run = run;
}

static void
mc_storm_end(void)
{
	mc_track_listeners.poisoning = false;
}

static void
mc_storm_poison(void *p, Size len)
{
	memset(p, MC_POISON_BYTE, len);
}

/* track.c poisoned count chunks (bytes) of lib, allocated at site, in ctx */
static void
mc_storm_poisoned(MemoryContext ctx, const char *path, McLifetime life, int lib,
				  uintptr_t site, int64 bytes, int64 count, bool deleting)
{
	int			i;
	McPoisonNote *n;

	for (i = 0; i < nnotes; i++)
		if (notes[i].lib == lib && notes[i].site == site && strcmp(notes[i].note.path, path) == 0)
			break;
	if (i == nnotes)
	{
		if (nnotes >= MC_POISON_NOTES)
			return;
		memset(&notes[nnotes], 0, sizeof(McNote));
		notes[nnotes].lib = (int16) lib;
		notes[nnotes].site = site;
		n = &notes[nnotes++].note;
		mc_strlcpy(n->name, mc_context_display_name(ctx), MC_NAME_LEN);
		mc_strlcpy(n->path, path, MC_PATH_LEN);
		n->first_run = current_run;
		n->lifetime = (uint8) life;
	}
	n = &notes[i].note;
	n->bytes += bytes;
	n->count += count;
	n->deleted |= deleting;
}

/* a deleted context holding poisoned memory: keep it (true) or let it go */
static bool
mc_storm_quarantine(MemoryContext ctx, void (*real_delete) (MemoryContext))
{
	(void) real_delete;
	if (!mc_track_listeners.poisoning || quarantined >= MC_QUARANTINE_MAX ||
		quarantined_bytes + ctx->mem_allocated > MC_QUARANTINE_BYTES)
		return false;
	quarantined++;
	quarantined_bytes += ctx->mem_allocated;
	return true;
}

static int
mc_storm_notes(McPoisonNote *out, int max, int64 *nquarantined)
{
	int			n = Min(nnotes, max);
	int			i;

	for (i = 0; i < n; i++)
	{
		out[i] = notes[i].note;
		mc_strlcpy(out[i].lib, mc_lib_name(notes[i].lib), MC_LIB_LEN);
		out[i].offset = (notes[i].site != 0 && notes[i].lib != MC_NO_LIB) ?
			(uint64) (notes[i].site - mc_lib_base(notes[i].lib)) : 0;
	}
	*nquarantined = quarantined;
	return n;
}

/* ---------- in the caller: run, compare, judge ---------- */

typedef struct McStorm
{
	McWorkerSlot plain[2];
	McWorkerSlot storm;
	McRun	   *runs[MC_STORM_WORKERS];	/* plain A, plain B, storm */
	bool		timed_out;
	int			comparable;
	int			nondeterministic;
	int			failed_run;		/* -1: none */
	const char *failure;		/* "changed", "error", "crash" */
	bool		plain_crashed;
} McStorm;

static McRun *
mc_copy_runs(McScenario *sc, McWorkers *w, int i)
{
	McRun	   *src = mc_worker_runs(w->job, &w->job->slots[i]);
	McRun	   *dst = MemoryContextAllocZero(sc->cxt, sizeof(McRun) * sc->iterations);

	if (src != NULL)
		memcpy(dst, src, sizeof(McRun) * sc->iterations);
	return dst;
}

/* the notes poisoned before run j, most bytes first */
static int
mc_storm_candidates(const McWorkerSlot *s, int j, const McPoisonNote **out, int max)
{
	int			n = 0;
	int			i;

	for (i = 0; i < s->npoisoned; i++)
	{
		int			k;

		if (s->poisoned[i].first_run >= j)
			continue;
		for (k = n; k > 0 && out[k - 1]->bytes < s->poisoned[i].bytes; k--)
			if (k < max)
				out[k] = out[k - 1];
		if (k < max)
		{
			out[k] = &s->poisoned[i];
			if (n < max)
				n++;
		}
	}
	return n;
}

/* the use_after_reset finding for st->failed_run; false when nothing explains it */
static bool
mc_storm_finding(McScenario *sc, McStorm *st)
{
	const McPoisonNote *cand[MC_MAX_SITES];
	int			ncand = mc_storm_candidates(&st->storm, st->failed_run, cand, MC_MAX_SITES);
	const McPoisonNote *top;
	McFindingKey key;
	McViolation *v;
	bool		created;
	McRun	   *good = &st->runs[0][st->failed_run];
	McRun	   *bad = &st->runs[2][st->failed_run];
	char		what[MC_DETAIL_LEN / 2];
	int			i;

	if (ncand == 0)
		return false;			/* nothing was poisoned before it: not a use after reset */
	top = cand[0];
	key.check = MC_CHECK_USE_AFTER_RESET;
	key.lifetime = top->lifetime;
	key.lib = (int16) mc_lib_by_name(top->lib);
	key.path = top->path;
	v = mc_finding_get(&key, &created);
	if (v == NULL)
		return true;			/* the findings table is full: counted there */
	v->severity = MC_SEV_ERROR;
	v->phase = MC_PHASE_SCENARIO;
	v->verdict = MC_VERDICT_NONE;
	v->occurrences++;
	v->iterations = sc->iterations;
	v->used_delta = top->bytes;
	mc_strlcpy(v->context_name, top->name, MC_NAME_LEN);
	mc_strlcpy(v->context_path, top->path, MC_PATH_LEN);
	mc_strlcpy(v->source_lib, top->lib, MC_LIB_LEN);
	mc_strlcpy(v->entry, "context_reset_storm", MC_ENTRY_LEN);
	mc_strlcpy(v->query, sc->workload, MC_QUERY_LEN);
	v->nsites = 0;
	for (i = 0; i < ncand; i++)
	{
		McSite	   *s = &v->sites[v->nsites];

		if (cand[i]->offset == 0 || cand[i]->lib[0] == '\0')
			continue;
		memset(s, 0, sizeof(*s));
		mc_strlcpy(s->lib, cand[i]->lib, MC_LIB_LEN);
		s->offset = cand[i]->offset;
		s->bytes = cand[i]->bytes;
		s->count = cand[i]->count;
		v->nsites++;
	}
	if (strcmp(st->failure, "crash") == 0)
		snprintf(what, sizeof(what), "crashed (%s at address 0x%llx%s%s%s)",
				 mc_signal_name(st->storm.crash_signal),
				 (unsigned long long) st->storm.crash_addr,
				 st->storm.crash_lib[0] ? ", in " : "", st->storm.crash_lib,
				 st->storm.crash_lib[0] ? psprintf("+0x%llx", (unsigned long long) st->storm.crash_offset) : "");
	else if (strcmp(st->failure, "error") == 0)
		snprintf(what, sizeof(what), "failed: \"%s\"", bad->sample);
	else
		snprintf(what, sizeof(what), "returned \"%s\" where plain runs returned \"%s\"",
				 bad->sample, good->sample);
	snprintf(v->detail, MC_DETAIL_LEN,
			 "run %d of %d %s after the %s memory %s allocated in '%s' (%s) was poisoned when that context was %s (after run %d): %s keeps a pointer into memory of a context that was reset and uses it later",
			 st->failed_run + 1, sc->iterations, what, mc_lifetime_name(top->lifetime) ? mc_lifetime_name(top->lifetime) : "short-lived",
			 v->source_lib, top->name, top->path, top->deleted ? "deleted" : "reset",
			 top->first_run + 1, v->source_lib);
	mc_finding_changed(v);
	return true;
}

/*
 * A worker crashed, and no use after reset explains it: the plain workers
 * crashed as well (the workload crashes without any poisoning), or the
 * storm's worker crashed before anything was poisoned.  Like a crash under
 * concurrent_backends, an ERROR finding: the crash was caught and the server
 * kept running, so nothing else would say so.
 */
static void
mc_storm_crash_finding(McScenario *sc, McStorm *st)
{
	static const char *const roles[MC_STORM_WORKERS] = {"plain", "plain", "storm"};
	const McWorkerSlot *slots[MC_STORM_WORKERS] = {&st->plain[0], &st->plain[1], &st->storm};
	const McWorkerSlot *first = NULL;
	const char *first_role = NULL;
	int			crashed = 0;
	int			i;
	McFindingKey key;
	McViolation *v;
	bool		created;
	char		path[MC_PATH_LEN];
	char		where[MC_LIB_LEN + 32];

	for (i = 0; i < MC_STORM_WORKERS; i++)
		if (slots[i]->status == MC_WS_CRASHED)
		{
			crashed++;
			if (first == NULL)
			{
				first = slots[i];
				first_role = roles[i];
			}
		}
	if (first == NULL)
		return;
	snprintf(path, sizeof(path), "context_reset_storm/crash");
	key.check = MC_CHECK_USE_AFTER_RESET;
	key.lifetime = MC_LIFE_UNKNOWN;
	key.lib = (int16) (first->crash_lib[0] ? mc_lib_by_name(first->crash_lib) : MC_NO_LIB);
	key.path = path;
	v = mc_finding_get(&key, &created);
	if (v == NULL)
		return;
	v->severity = MC_SEV_ERROR;
	v->phase = MC_PHASE_SCENARIO;
	v->verdict = MC_VERDICT_NONE;
	v->occurrences = crashed;
	v->calls = MC_STORM_WORKERS;
	v->iterations = sc->iterations;
	mc_strlcpy(v->context_name, "crash", MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	mc_strlcpy(v->source_lib, first->crash_lib, MC_LIB_LEN);
	mc_strlcpy(v->entry, "context_reset_storm", MC_ENTRY_LEN);
	mc_strlcpy(v->query, sc->workload, MC_QUERY_LEN);
	if (first->crash_lib[0])
		snprintf(where, sizeof(where), " (in %s+0x%llx)", first->crash_lib,
				 (unsigned long long) first->crash_offset);
	else
		where[0] = '\0';
	snprintf(v->detail, MC_DETAIL_LEN,
			 "%d of %d workers running the workload crashed; the first (the %s worker, pid %d) with %s at address 0x%llx%s in run %lld; %s; it was caught and the worker exited cleanly, so the server did not restart",
			 crashed, MC_STORM_WORKERS, first_role, first->pid, mc_signal_name(first->crash_signal),
			 (unsigned long long) first->crash_addr, where, (long long) first->crash_run + 1,
			 st->plain_crashed ?
			 "the workload crashes without any poisoning: a bug of its own, which hides whether it also uses memory after a reset" :
			 "nothing the storm poisoned was allocated before that run, so it is not a use after reset, but a crash all the same");
	mc_finding_changed(v);
}

static void
mc_storm_judge(McScenario *sc, McStorm *st)
{
	int			j;

	st->failed_run = -1;
	st->plain_crashed = st->plain[0].status == MC_WS_CRASHED || st->plain[1].status == MC_WS_CRASHED;
	for (j = 0; j < sc->iterations; j++)
	{
		McRun	   *a = &st->runs[0][j];
		McRun	   *b = &st->runs[1][j];
		McRun	   *s = &st->runs[2][j];
		bool		plain_ok = a->status == MC_RUN_OK && b->status == MC_RUN_OK;

		if (s->status == MC_RUN_NOT_RUN)
			break;
		if (plain_ok && a->hash != b->hash)
		{
			st->nondeterministic++;
			continue;
		}
		if (plain_ok)
			st->comparable++;
		if (st->failed_run >= 0)
			continue;
		if (s->status == MC_RUN_CRASH && a->status != MC_RUN_CRASH && b->status != MC_RUN_CRASH)
			st->failure = "crash";
		else if (s->status == MC_RUN_ERROR && plain_ok)
			st->failure = "error";
		else if (s->status == MC_RUN_OK && plain_ok && s->hash != a->hash)
			st->failure = "changed";
		else
			continue;
		st->failed_run = j;
	}
	if (st->failed_run < 0 || !mc_storm_finding(sc, st))
		mc_storm_crash_finding(sc, st);
}

static void
mc_storm_run(McScenario *sc)
{
	McStorm    *st = MemoryContextAllocZero(sc->cxt, sizeof(McStorm));
	int			timeout = sc->timeout_ms > 0 ? sc->timeout_ms : MC_STORM_TIMEOUT_MS;
	char	   *crumb;
	int32		plain_roles[2] = {MC_ROLE_PLAIN, MC_ROLE_PLAIN};
	int32		storm_role[1] = {MC_ROLE_STORM};

	sc->state = st;
	if (sc->iterations > MC_MAX_RUNS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("context_reset_storm runs at most %d iterations (got %d)",
						MC_MAX_RUNS, sc->iterations)));
	crumb = mc_crumb_write(sc->name, sc->workload);
	PG_TRY();
	{
		McWorkers	plain;
		McWorkers	storm;

		mc_workers_start(sc, &plain, plain_roles, 2, true, NULL);
		mc_workers_wait(sc, &plain, timeout);
		st->plain[0] = plain.job->slots[0];
		st->plain[1] = plain.job->slots[1];
		st->runs[0] = mc_copy_runs(sc, &plain, 0);
		st->runs[1] = mc_copy_runs(sc, &plain, 1);
		st->timed_out |= plain.timed_out;
		dsm_detach(plain.seg);

		mc_workers_start(sc, &storm, storm_role, 1, true, crumb);
		mc_workers_wait(sc, &storm, timeout);
		st->storm = storm.job->slots[0];
		st->runs[2] = mc_copy_runs(sc, &storm, 0);
		st->timed_out |= storm.timed_out;
		dsm_detach(storm.seg);
	}
	PG_FINALLY();
	{
		mc_crumb_remove(psprintf("%s.progress", crumb));
		mc_crumb_remove(crumb);
	}
	PG_END_TRY();
	sc->done = (int32) st->storm.runs;
	sc->errors = st->storm.errors;
	if (st->plain[0].runs > 0 && st->plain[0].errors == st->plain[0].runs &&
		st->plain[1].errors == st->plain[1].runs)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every run of the workload failed in the plain workers (%lld of %d): %s",
						(long long) st->plain[0].errors, sc->iterations, st->plain[0].first_error),
				 errdetail("Workload: %s", sc->workload)));
	mc_storm_judge(sc, st);
}

static void
mc_storm_worker_json(StringInfo out, const char *key, const McWorkerSlot *s)
{
	mc_json_key(out, key);
	appendStringInfo(out, "{\"pid\": %d, \"status\": \"%s\", \"runs\": %lld, \"errors\": %lld",
					 s->pid, mc_worker_status_name(s->status), (long long) s->runs,
					 (long long) s->errors);
	if (s->first_error_run >= 0)
	{
		mc_json_string(out, "first_error", s->first_error);
		mc_json_string(out, "sqlstate", s->first_sqlstate);
	}
	if (s->status == MC_WS_CRASHED)
		appendStringInfo(out, ", \"crash\": {\"signal\": \"%s\", \"address\": \"0x%llx\", \"run\": %lld}",
						 mc_signal_name(s->crash_signal), (unsigned long long) s->crash_addr,
						 (long long) s->crash_run + 1);
	appendStringInfoChar(out, '}');
}

/*
 * "storm": {"reset_frequency", "poison_byte", "plain": [...], "storm": {...},
 * "comparable_runs", "nondeterministic_runs", "failure": {...} | null,
 * "poisoned": [{"context", "path", "lib", "offset", "bytes", "count", "first_run"}], "quarantined"}
 */
static void
mc_storm_result(McScenario *sc, StringInfo out)
{
	McStorm    *st = (McStorm *) sc->state;
	int			i;

	if (st == NULL)
		return;
	mc_json_key(out, "storm");
	appendStringInfo(out, "{\"reset_frequency\": %d, \"poison_byte\": \"0x%02x\"",
					 sc->reset_frequency, MC_POISON_BYTE);
	mc_storm_worker_json(out, "plain_a", &st->plain[0]);
	mc_storm_worker_json(out, "plain_b", &st->plain[1]);
	mc_storm_worker_json(out, "storm", &st->storm);
	appendStringInfo(out, ", \"comparable_runs\": %d, \"nondeterministic_runs\": %d, \"timed_out\": %s",
					 st->comparable, st->nondeterministic, st->timed_out ? "true" : "false");
	if (st->plain_crashed)
		mc_json_string(out, "note", "the workload crashes without any poisoning: that is a bug of its own, not a use after reset");
	mc_json_key(out, "failure");
	if (st->failed_run < 0)
		appendStringInfoString(out, "null");
	else
	{
		appendStringInfo(out, "{\"kind\": \"%s\", \"run\": %d", st->failure, st->failed_run + 1);
		mc_json_string(out, "expected", st->runs[0][st->failed_run].sample);
		mc_json_string(out, "got", st->runs[2][st->failed_run].sample);
		appendStringInfoChar(out, '}');
	}
	mc_json_key(out, "poisoned");
	appendStringInfoChar(out, '[');
	for (i = 0; i < st->storm.npoisoned; i++)
	{
		const McPoisonNote *n = &st->storm.poisoned[i];

		appendStringInfoString(out, i > 0 ? ", {\"context\": " : "{\"context\": ");
		escape_json(out, n->name);
		mc_json_string(out, "path", n->path);
		mc_json_string(out, "lib", n->lib);
		if (n->offset != 0)
			appendStringInfo(out, ", \"offset\": \"0x%llx\"", (unsigned long long) n->offset);
		appendStringInfo(out, ", \"bytes\": %lld, \"count\": %lld, \"first_run\": %d, \"deleted\": %s}",
						 (long long) n->bytes, (long long) n->count, n->first_run + 1,
						 n->deleted ? "true" : "false");
	}
	appendStringInfo(out, "], \"quarantined_contexts\": %lld}", (long long) st->storm.quarantined);
}

static const McScenarioKind context_reset_storm = {
	"context_reset_storm", "Runs the workload in a worker, resetting and poisoning the short-lived memory the extension allocated between invocations: use_after_reset",
	50, false, true, false, false,
	NULL, NULL, NULL, mc_storm_run, mc_storm_result
};

static const McWorkerRoleOps storm_worker_ops = {
	mc_storm_begin, mc_storm_next_run, mc_storm_end, mc_storm_notes
};

void
mc_storm_init(void)
{
	mc_track_listeners.poison = mc_storm_poison;
	mc_track_listeners.poisoned = mc_storm_poisoned;
	mc_track_listeners.quarantine = mc_storm_quarantine;
	mc_worker_register_role(MC_ROLE_STORM, &storm_worker_ops);
	mc_scenario_register(&context_reset_storm);
}
