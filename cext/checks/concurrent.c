/*-------------------------------------------------------------------------
 *
 * concurrent.c
 *		concurrent_backends: the workload in several background workers at
 *		once (worker.c), and what that shows.
 *
 * The workers start together (they wait for each other at a start line),
 * each runs the workload `iterations` times, one transaction per run, and
 * reports its runs, its errors by kind, a crash it caught, and its own
 * findings.  In the caller:
 *
 *	- a worker that crashed (caught: the server kept running), that did not
 *	  finish within timeout_ms (a hang, a lock wait without end), that
 *	  deadlocked or ran into lock_timeout is a concurrency_error (a crash or
 *	  a hang ERROR, deadlocks and lock timeouts WARNING, other errors INFO);
 *	- every worker's findings become the caller's (one per bug, however
 *	  many workers found it), so end() and the ring show them;
 *	- the shared-memory guards are checked after the workers (scenario.c):
 *	  an overrun under concurrency is a shmem_overrun like any other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/json.h"
#include "utils/memutils.h"

#include "checks/checks.h"

#define MC_CONCURRENT_TIMEOUT_MS	300000
#define MC_DEFAULT_LOCK_TIMEOUT_MS	10000

typedef struct McConcurrent
{
	int			n;
	McWorkerSlot *slots;
	bool		timed_out;
	int			not_started;
	int64		imported;
} McConcurrent;

/* a worker's finding becomes the caller's; the same bug from several workers is one */
static void
mc_import_finding(const McViolation *w)
{
	McViolation *v;
	bool		created;
	int32		id;
	char		keypath[MC_PATH_LEN];

	/* apart from what this backend finds itself in the same context */
	snprintf(keypath, sizeof(keypath), "concurrent_backends worker:%s", w->context_path);
	v = mc_finding_for(w->check, w->lifetime,
					   w->source_lib[0] ? mc_lib_by_name(w->source_lib) : MC_NO_LIB,
					   keypath, &created);
	if (v == NULL)
		return;
	if (created)
	{
		id = v->finding_id;
		*v = *w;
		v->finding_id = id;
		v->seq = 0;
		snprintf(v->detail, MC_DETAIL_LEN, "in concurrent_backends worker pid %d: %s",
				 w->pid, w->detail);
	}
	else
	{
		v->occurrences += w->occurrences;
		if (w->severity > v->severity)
			v->severity = w->severity;
		if (w->used_delta > v->used_delta)
			v->used_delta = w->used_delta;
	}
	mc_finding_changed(v);
}

static void
mc_concurrency_finding(const char *what, McSeverity sev, int workers, int64 count,
					   const char *lib, const char *detail)
{
	McViolation *v;
	char		path[MC_PATH_LEN];

	snprintf(path, sizeof(path), "concurrent_backends/%s", what);
	v = mc_finding_for(MC_CHECK_CONCURRENCY_ERROR, MC_LIFE_UNKNOWN,
					   lib && lib[0] ? mc_lib_by_name(lib) : MC_NO_LIB, path,
					   NULL);
	if (v == NULL)
		return;
	v->severity = sev;
	v->phase = MC_PHASE_SCENARIO;
	v->occurrences = count;
	v->calls = workers;
	mc_strlcpy(v->context_name, what, MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	mc_strlcpy(v->source_lib, lib ? lib : "", MC_LIB_LEN);
	mc_strlcpy(v->entry, "concurrent_backends", MC_ENTRY_LEN);
	mc_strlcpy(v->detail, detail, MC_DETAIL_LEN);
	mc_finding_changed(v);
}

static void
mc_concurrent_judge(McScenario *sc, McConcurrent *c)
{
	int			i;
	int			crashed = 0;
	int			hung = 0;
	int64		deadlocks = 0;
	int64		lock_timeouts = 0;
	int64		errors = 0;
	int			deadlock_workers = 0;
	int			lock_workers = 0;
	int			error_workers = 0;
	const McWorkerSlot *first_crash = NULL;
	const McWorkerSlot *first_error = NULL;
	char		detail[MC_DETAIL_LEN];

	for (i = 0; i < c->n; i++)
	{
		const McWorkerSlot *s = &c->slots[i];
		int			k;

		if (s->status == MC_WS_CRASHED)
		{
			crashed++;
			if (first_crash == NULL)
				first_crash = s;
		}
		else if (s->status == MC_WS_RUNNING && c->timed_out)
			hung++;
		deadlocks += s->deadlocks;
		lock_timeouts += s->lock_timeouts;
		deadlock_workers += s->deadlocks > 0;
		lock_workers += s->lock_timeouts > 0;
		if (s->errors > s->deadlocks + s->lock_timeouts)
		{
			errors += s->errors - s->deadlocks - s->lock_timeouts;
			error_workers++;
			if (first_error == NULL)
				first_error = s;
		}
		for (k = 0; k < s->nfindings; k++)
		{
			mc_import_finding(&s->findings[k]);
			c->imported++;
		}
	}
	if (first_crash != NULL)
	{
		snprintf(detail, sizeof(detail),
				 "%d of %d workers running the workload at once crashed; the first (pid %d) with %s at address 0x%llx%s%s%s in run %lld; it was caught and the worker exited cleanly, so the server did not restart",
				 crashed, c->n, first_crash->pid, mc_signal_name(first_crash->crash_signal),
				 (unsigned long long) first_crash->crash_addr,
				 first_crash->crash_lib[0] ? " (in " : "", first_crash->crash_lib,
				 first_crash->crash_lib[0] ? psprintf("+0x%llx)", (unsigned long long) first_crash->crash_offset) : "",
				 (long long) first_crash->crash_run + 1);
		mc_concurrency_finding("crash", MC_SEV_ERROR, crashed, crashed, first_crash->crash_lib, detail);
	}
	if (hung > 0)
	{
		snprintf(detail, sizeof(detail),
				 "%d of %d workers did not finish %d runs of the workload within %d ms and were stopped: a hang or a wait without end (a lock, a latch) under concurrency",
				 hung, c->n, sc->iterations, sc->timeout_ms > 0 ? sc->timeout_ms : MC_CONCURRENT_TIMEOUT_MS);
		mc_concurrency_finding("timeout", MC_SEV_ERROR, hung, hung, NULL, detail);
	}
	if (deadlocks > 0)
	{
		snprintf(detail, sizeof(detail),
				 "%lld deadlock%s detected in %d of %d workers running the workload at once: locks are taken in different orders",
				 (long long) deadlocks, deadlocks == 1 ? "" : "s", deadlock_workers, c->n);
		mc_concurrency_finding("deadlock", MC_SEV_WARNING, deadlock_workers, deadlocks, NULL, detail);
	}
	if (lock_timeouts > 0)
	{
		snprintf(detail, sizeof(detail),
				 "%lld lock timeout%s (lock_timeout) in %d of %d workers running the workload at once: a lock held too long, or a wait on a lock that is never released",
				 (long long) lock_timeouts, lock_timeouts == 1 ? "" : "s", lock_workers, c->n);
		mc_concurrency_finding("lock timeout", MC_SEV_WARNING, lock_workers, lock_timeouts, NULL, detail);
	}
	if (errors > 0)
	{
		snprintf(detail, sizeof(detail),
				 "%lld error%s in %d of %d workers running the workload at once; the first: %s (SQLSTATE %s)",
				 (long long) errors, errors == 1 ? "" : "s", error_workers, c->n,
				 first_error->first_error, first_error->first_sqlstate);
		mc_concurrency_finding("error", MC_SEV_INFO, error_workers, errors, NULL, detail);
	}
	if (c->not_started > 0)
	{
		snprintf(detail, sizeof(detail),
				 "only %d of %d workers started (max_worker_processes, or the server refused more): fewer backends ran at once than asked",
				 c->n - c->not_started, c->n);
		mc_record_gap(NULL, "concurrent_backends", detail);
	}
}

/* a workload that fails in every run of every worker, and not for lack of locks, is bad input */
static void
mc_concurrent_all_failed(McScenario *sc, McConcurrent *c)
{
	int			i;

	for (i = 0; i < c->n; i++)
	{
		const McWorkerSlot *s = &c->slots[i];

		if (s->runs == 0 || s->errors < s->runs || s->deadlocks > 0 || s->lock_timeouts > 0 ||
			s->serialization_failures > 0 || s->status == MC_WS_CRASHED)
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("every run of the workload failed in all %d workers: %s (SQLSTATE %s)",
					c->n, c->slots[0].first_error, c->slots[0].first_sqlstate),
			 errdetail("Workload: %s", sc->workload)));
}

static void
mc_concurrent_run(McScenario *sc)
{
	McConcurrent *c = MemoryContextAllocZero(sc->cxt, sizeof(McConcurrent));
	int32	   *roles = MemoryContextAllocZero(sc->cxt, sizeof(int32) * sc->workers);
	int			timeout = sc->timeout_ms > 0 ? sc->timeout_ms : MC_CONCURRENT_TIMEOUT_MS;
	char	   *crumb;
	int			i;

	sc->state = c;
	c->n = sc->workers;
	for (i = 0; i < c->n; i++)
		roles[i] = MC_ROLE_CONCURRENT;
	if (sc->lock_timeout_ms == 0)
		sc->lock_timeout_ms = MC_DEFAULT_LOCK_TIMEOUT_MS;
	crumb = mc_crumb_write(sc->name, sc->workload);
	PG_TRY();
	{
		McWorkers	w;

		mc_workers_start(sc, &w, roles, c->n, false, NULL);
		mc_workers_wait(sc, &w, timeout);
		c->slots = MemoryContextAlloc(sc->cxt, sizeof(McWorkerSlot) * c->n);
		memcpy(c->slots, w.job->slots, sizeof(McWorkerSlot) * c->n);
		c->timed_out = w.timed_out;
		c->not_started = w.not_started;
		dsm_detach(w.seg);
	}
	PG_FINALLY();
	{
		mc_crumb_remove(crumb);
	}
	PG_END_TRY();
	for (i = 0; i < c->n; i++)
	{
		sc->done += (int32) c->slots[i].runs;
		sc->errors += c->slots[i].errors;
	}
	mc_concurrent_all_failed(sc, c);
	mc_concurrent_judge(sc, c);
}

/* "workers": [{"pid", "status", "runs", "errors", "deadlocks", "lock_timeouts", ...}], "timed_out" */
static void
mc_concurrent_result(McScenario *sc, StringInfo out)
{
	McConcurrent *c = (McConcurrent *) sc->state;
	int			i;

	if (c == NULL || c->slots == NULL)
		return;
	appendStringInfo(out, ", \"workers\": %d, \"lock_timeout_ms\": %d, \"timed_out\": %s, \"worker_findings\": %lld",
					 c->n, sc->lock_timeout_ms, c->timed_out ? "true" : "false", (long long) c->imported);
	mc_json_key(out, "backends");
	appendStringInfoChar(out, '[');
	for (i = 0; i < c->n; i++)
	{
		const McWorkerSlot *s = &c->slots[i];

		appendStringInfo(out,
						 "%s{\"pid\": %d, \"status\": \"%s\", \"runs\": %lld, \"errors\": %lld, \"deadlocks\": %lld, \"lock_timeouts\": %lld, \"serialization_failures\": %lld, \"statement_timeouts\": %lld, \"findings\": %d, \"measured\": %s",
						 i > 0 ? ", " : "", s->pid, mc_worker_status_name(s->status),
						 (long long) s->runs, (long long) s->errors, (long long) s->deadlocks,
						 (long long) s->lock_timeouts, (long long) s->serialization_failures,
						 (long long) s->timeouts, s->nfindings, s->measured ? "true" : "false");
		if (s->first_error_run >= 0)
		{
			mc_json_string(out, "first_error", s->first_error);
			mc_json_string(out, "sqlstate", s->first_sqlstate);
		}
		if (s->status == MC_WS_CRASHED)
		{
			appendStringInfo(out, ", \"crash\": {\"signal\": \"%s\", \"address\": \"0x%llx\", \"run\": %lld",
							 mc_signal_name(s->crash_signal), (unsigned long long) s->crash_addr,
							 (long long) s->crash_run + 1);
			if (s->crash_lib[0])
			{
				mc_json_string(out, "lib", s->crash_lib);
				appendStringInfo(out, ", \"offset\": \"0x%llx\"", (unsigned long long) s->crash_offset);
			}
			appendStringInfoChar(out, '}');
		}
		appendStringInfoChar(out, '}');
	}
	appendStringInfoChar(out, ']');
}

static const McScenarioKind concurrent_backends = {
	"concurrent_backends", "Runs the workload in several background workers at once: crashes, deadlocks, lock timeouts, per-backend findings",
	50, false, false, true, false,
	NULL, NULL, NULL, mc_concurrent_run, mc_concurrent_result
};

void
mc_concurrent_init(void)
{
	mc_scenario_register(&concurrent_backends);
}
