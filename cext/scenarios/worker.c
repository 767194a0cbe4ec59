/*-------------------------------------------------------------------------
 *
 * worker.c
 *		Background workers that run a scenario's workload where a crash
 *		cannot take the caller down: context_reset_storm and
 *		concurrent_backends (worker.h describes the job).
 *
 * A crash of any backend makes the postmaster restart all of them, the
 * caller included.  So a worker catches its own crash: SIGSEGV, SIGBUS,
 * SIGILL and SIGFPE raised while the workload runs (outside a critical
 * section) jump back to the worker's loop, which records the signal, the
 * faulting address and the library and offset of the faulting
 * instruction in its slot, and leaves with proc_exit(1) after the usual
 * cleanup: a clean exit, so the server keeps running and the caller reads
 * the result.  What cannot be caught (a second fault during that cleanup,
 * a crash in a critical section, a PANIC) restarts the server; the caller
 * wrote a breadcrumb file into the data directory before it started the
 * workers, and the first pg_ext_memcheck call after the restart turns it
 * into a finding (mc_workers_collect_crashes).
 *
 * A worker connects as the caller's user to the caller's database, loads
 * the libraries the caller's session loaded (RestoreLibraryState, as
 * parallel workers do) and applies the settings the session changed (SET,
 * set_config(), connection options), so that it runs the workload the way
 * the caller would.  Temporary objects and uncommitted data of the caller
 * are not visible to it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#include "access/xact.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "scenarios/worker.h"

#define MC_CRUMB_DIR		"pg_ext_memcheck"
#define MC_START_WAIT_MS	10000
#define MC_STOP_GRACE_MS	30000

/* ---------- the caller: serialize the session ---------- */

/* settings the session changed: "name\0value\0...\0" */
static char *
mc_serialize_gucs(Size *len)
{
	struct config_generic **vars;
	int			n;
	int			i;
	StringInfoData buf;

#if PG_VERSION_NUM >= 160000
	vars = get_guc_variables(&n);
#else
	vars = get_guc_variables();
	n = GetNumConfigOptions();
#endif
	initStringInfo(&buf);
	for (i = 0; i < n; i++)
	{
		struct config_generic *c = vars[i];
		const char *val;

		if (c->source != PGC_S_SESSION && c->source != PGC_S_CLIENT)
			continue;
		if (c->context != PGC_USERSET && c->context != PGC_SUSET)
			continue;
		if (strcmp(c->name, "session_authorization") == 0 || strcmp(c->name, "role") == 0 ||
			strcmp(c->name, "client_encoding") == 0 ||
			strncmp(c->name, "transaction_", strlen("transaction_")) == 0)
			continue;
		val = GetConfigOption(c->name, true, false);
		if (val == NULL)
			continue;
		appendBinaryStringInfo(&buf, c->name, strlen(c->name) + 1);
		appendBinaryStringInfo(&buf, val, strlen(val) + 1);
		/* the context that set it: a superuser's SET stays a superuser's */
		appendStringInfoChar(&buf, c->scontext == PGC_SUSET ? 'S' : 'U');
	}
	appendStringInfoChar(&buf, '\0');
	*len = buf.len + 1;
	return buf.data;
}

McRun *
mc_worker_runs(McWorkerJob *job, McWorkerSlot *slot)
{
	return slot->runs_off == 0 ? NULL : (McRun *) ((char *) job + slot->runs_off);
}

/*
 * Put the job into a DSM segment and register one worker per role.  On
 * return the workers may not have started yet.
 */
void
mc_workers_start(McScenario *sc, McWorkers *w, const int32 *roles, int n,
				 bool force_measuring, const char *crumb)
{
	Size		gucs_len;
	char	   *gucs = mc_serialize_gucs(&gucs_len);
	Size		libs_len = EstimateLibraryStateSpace();
	Size		workload_len = strlen(sc->workload) + 1;
	Size		size;
	Size		off;
	McWorkerJob *job;
	int			i;
	int			storm_slots = 0;

	for (i = 0; i < n; i++)
		if (roles[i] != MC_ROLE_CONCURRENT)
			storm_slots++;
	size = MAXALIGN(offsetof(McWorkerJob, slots) + sizeof(McWorkerSlot) * n);
	off = size;
	size = add_size(size, MAXALIGN(workload_len));
	size = add_size(size, MAXALIGN(libs_len));
	size = add_size(size, MAXALIGN(gucs_len));
	size = add_size(size, mul_size(mul_size(sizeof(McRun), sc->iterations), storm_slots));

	memset(w, 0, sizeof(*w));
	w->seg = dsm_create(size, 0);
	job = dsm_segment_address(w->seg);
	memset(job, 0, size);
	w->job = job;
	w->n = n;
	job->dbid = MyDatabaseId;
	job->userid = GetUserId();
	job->superuser = superuser();
	job->iterations = sc->iterations;
	job->reset_frequency = sc->reset_frequency;
	job->nworkers = n;
	job->lock_timeout_ms = sc->lock_timeout_ms;
	job->force_measuring = force_measuring;
	pg_atomic_init_u32(&job->ready, 0);
	mc_strlcpy(job->crumb, crumb ? crumb : "", MAXPGPATH);
	job->workload_off = off;
	memcpy((char *) job + off, sc->workload, workload_len);
	off += MAXALIGN(workload_len);
	job->libs_off = off;
	SerializeLibraryState(libs_len, (char *) job + off);
	off += MAXALIGN(libs_len);
	job->gucs_off = off;
	memcpy((char *) job + off, gucs, gucs_len);
	off += MAXALIGN(gucs_len);
	for (i = 0; i < n; i++)
	{
		job->slots[i].role = roles[i];
		job->slots[i].status = MC_WS_NOT_STARTED;
		job->slots[i].first_error_run = -1;
		job->slots[i].crash_run = -1;
		if (roles[i] != MC_ROLE_CONCURRENT)
		{
			job->slots[i].runs_off = off;
			off += sizeof(McRun) * sc->iterations;
		}
	}

	w->handles = MemoryContextAllocZero(sc->cxt, sizeof(BackgroundWorkerHandle *) * n);
	for (i = 0; i < n; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_ext_memcheck");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "mc_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pg_ext_memcheck %s worker %d", sc->name, i + 1);
		snprintf(worker.bgw_type, BGW_MAXLEN, "pg_ext_memcheck worker");
		worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(w->seg));
		memcpy(worker.bgw_extra, &i, sizeof(int));
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &w->handles[i]))
		{
			mc_workers_stop(w);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("%s could not start background worker %d of %d", sc->name, i + 1, n),
					 errhint("Raise max_worker_processes (now %d), or use fewer workers.",
							 max_worker_processes)));
		}
	}
}

/* ask every worker still running to stop */
void
mc_workers_stop(McWorkers *w)
{
	int			i;

	for (i = 0; i < w->n; i++)
		if (w->handles != NULL && w->handles[i] != NULL)
			TerminateBackgroundWorker(w->handles[i]);
}

/*
 * Wait until every worker has exited; past timeout_ms they are told to
 * stop.  The caller's cancel stops them too.
 */
void
mc_workers_wait(McScenario *sc, McWorkers *w, int timeout_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		stopping = false;

	(void) sc;
	PG_TRY();
	{
		for (;;)
		{
			int			i;
			int			running = 0;
			long		elapsed;

			for (i = 0; i < w->n; i++)
			{
				pid_t		pid;
				BgwHandleStatus st = GetBackgroundWorkerPid(w->handles[i], &pid);

				if (st == BGWH_POSTMASTER_DIED)
					ereport(FATAL,
							(errcode(ERRCODE_ADMIN_SHUTDOWN),
							 errmsg("postmaster exited while pg_ext_memcheck workers ran")));
				if (st != BGWH_STOPPED)
					running++;
			}
			if (running == 0)
				break;
			elapsed = (long) ((GetCurrentTimestamp() - start) / 1000);
			if (!stopping && elapsed > timeout_ms)
			{
				stopping = true;
				w->timed_out = true;
				mc_workers_stop(w);
			}
			if (stopping && elapsed > (long) timeout_ms + MC_STOP_GRACE_MS)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		mc_workers_stop(w);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pg_read_barrier();
	{
		int			i;

		for (i = 0; i < w->n; i++)
			if (w->job->slots[i].status == MC_WS_NOT_STARTED)
				w->not_started++;
	}
}

const char *
mc_worker_status_name(int status)
{
	switch (status)
	{
		case MC_WS_NOT_STARTED:
			return "not started";
		case MC_WS_RUNNING:
			return "stopped";	/* it never said it finished: terminated */
		case MC_WS_DONE:
			return "done";
		case MC_WS_STOPPED:
			return "cancelled";
		case MC_WS_CRASHED:
			return "crashed";
	}
	return "unknown";
}

const char *
mc_signal_name(int signo)
{
	switch (signo)
	{
		case SIGSEGV:
			return "SIGSEGV";
		case SIGBUS:
			return "SIGBUS";
		case SIGILL:
			return "SIGILL";
		case SIGFPE:
			return "SIGFPE";
	}
	return "signal";
}

/* ---------- breadcrumbs in the data directory ---------- */

static const char *
mc_crumb_dir(void)
{
	static char dir[MAXPGPATH];

	snprintf(dir, sizeof(dir), "%s/%s", DataDir, MC_CRUMB_DIR);
	return dir;
}

/* the shared memory's generation: it changes when the server restarts after a crash */
static uint64
mc_generation(void)
{
	McRingStatus st;

	mc_ring_status(&st);
	return st.base_seq;
}

/*
 * Before workers start: a file saying what runs, removed when the caller
 * has their result.  Lines: kind, generation, caller pid, start time,
 * then the workload.  Returns its path.
 */
char *
mc_crumb_write(const char *kind, const char *workload)
{
	char	   *path = psprintf("%s/%s-%d", mc_crumb_dir(), kind, MyProcPid);
	FILE	   *f;

	if (MakePGDirectory(mc_crumb_dir()) < 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", mc_crumb_dir())));
	f = AllocateFile(path, PG_BINARY_W);
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", path)));
	fprintf(f, "%s\n" UINT64_FORMAT "\n%d\n%s\n%s", kind, mc_generation(), MyProcPid,
			timestamptz_to_str(GetCurrentTimestamp()), workload);
	if (FreeFile(f) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", path)));
	return path;
}

void
mc_crumb_remove(const char *path)
{
	if (path != NULL && path[0] != '\0')
		(void) unlink(path);
}

/* a breadcrumb of a job the server's restart interrupted: a finding */
static void
mc_crumb_report(const char *kind, int pid, const char *started, const char *workload,
				const char *progress)
{
	McViolation *v;
	char		path[MC_PATH_LEN];
	bool		storm = strcmp(kind, "context_reset_storm") == 0;

	snprintf(path, sizeof(path), "%s/server restart/%s", kind, started);
	v = mc_finding_for(storm ? MC_CHECK_USE_AFTER_RESET : MC_CHECK_CONCURRENCY_ERROR,
					   MC_LIFE_UNKNOWN, MC_NO_LIB, path, NULL);
	if (v == NULL)
		return;
	v->severity = MC_SEV_ERROR;
	v->phase = MC_PHASE_SCENARIO;
	v->occurrences = 1;
	mc_strlcpy(v->context_name, "server restart", MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	mc_strlcpy(v->entry, kind, MC_ENTRY_LEN);
	mc_strlcpy(v->query, workload, MC_QUERY_LEN);
	snprintf(v->detail, MC_DETAIL_LEN,
			 "the server restarted while %s (called by pid %d at %s) ran the workload in background workers: a backend crashed in a way that could not be caught (see the server log for the signal)%s%s; workload: %.120s",
			 kind, pid, started, progress[0] ? "; " : "", progress, workload);
	mc_finding_changed(v);
}

/*
 * Turn the breadcrumbs of jobs that a server restart interrupted into
 * findings of this backend, and remove the stale ones.  Called by the SQL
 * API (begin, end, scenarios), never on a per-query path.
 */
void
mc_workers_collect_crashes(void)
{
	DIR		   *dir;
	struct dirent *de;
	const char *dirname;
	uint64		generation;

	if (!mc_ring_attached() || DataDir == NULL)
		return;
	dirname = mc_crumb_dir();
	{
		struct stat st;

		if (stat(dirname, &st) != 0)
			return;
	}
	generation = mc_generation();
	dir = AllocateDir(dirname);
	while ((de = ReadDir(dir, dirname)) != NULL)
	{
		char		path[MAXPGPATH];
		char		buf[4096];
		char		progress[256];
		FILE	   *f;
		size_t		n;
		char	   *lines[5];
		int			k;
		char	   *p;
		int			pid;

		if (de->d_name[0] == '.' || strstr(de->d_name, ".progress") != NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirname, de->d_name);
		f = AllocateFile(path, PG_BINARY_R);
		if (f == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		FreeFile(f);
		buf[n] = '\0';
		p = buf;
		for (k = 0; k < 5 && p != NULL; k++)
		{
			lines[k] = p;
			p = k < 4 ? strchr(p, '\n') : NULL;
			if (p != NULL)
				*p++ = '\0';
		}
		if (k < 5)
		{
			(void) unlink(path);
			continue;
		}
		pid = atoi(lines[2]);
		if ((uint64) strtoull(lines[1], NULL, 10) == generation)
		{
			/* same server lifetime: still running, or its caller died without cleaning up */
			if (pid != MyProcPid && kill(pid, 0) == 0)
				continue;
			(void) unlink(path);
			continue;
		}
		progress[0] = '\0';
		{
			char		ppath[MAXPGPATH];
			FILE	   *pf;

			snprintf(ppath, sizeof(ppath), "%s.progress", path);
			pf = AllocateFile(ppath, PG_BINARY_R);
			if (pf != NULL)
			{
				size_t		m = fread(progress, 1, sizeof(progress) - 1, pf);

				progress[m] = '\0';
				FreeFile(pf);
				(void) unlink(ppath);
			}
		}
		mc_crumb_report(lines[0], pid, lines[3], lines[4], progress);
		(void) unlink(path);
	}
	FreeDir(dir);
}

/* ---------- the worker ---------- */

static sigjmp_buf *volatile crash_jmp = NULL;
static volatile sig_atomic_t crash_signo = 0;
static volatile uintptr_t crash_addr = 0;
static volatile uintptr_t crash_pc = 0;

static void
mc_crash_handler(int signo, siginfo_t *info, void *context)
{
	ucontext_t *uc = (ucontext_t *) context;

	if (crash_jmp == NULL || crash_signo != 0 || CritSectionCount > 0)
	{
		/* not one to recover from: the default action, a crash */
		signal(signo, SIG_DFL);
		return;
	}
	crash_signo = signo;
	crash_addr = (uintptr_t) info->si_addr;
#if defined(__x86_64__)
	crash_pc = (uintptr_t) uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	crash_pc = (uintptr_t) uc->uc_mcontext.pc;
#else
	(void) uc;
#endif
	siglongjmp(*crash_jmp, 1);
}

static void
mc_crash_catch(void)
{
	static char *altstack = NULL;
	stack_t		ss;
	struct sigaction sa;
	int			sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
	int			i;

	/* a stack overflow must still find a stack to run the handler on */
	if (altstack == NULL)
		altstack = MemoryContextAlloc(TopMemoryContext, SIGSTKSZ * 4);
	ss.ss_sp = altstack;
	ss.ss_size = SIGSTKSZ * 4;
	ss.ss_flags = 0;
	(void) sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = mc_crash_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < (int) lengthof(sigs); i++)
		(void) sigaction(sigs[i], &sa, NULL);
}

/* apply the caller's settings ("name\0value\0ctx...") */
static void
mc_worker_apply_gucs(const char *p, bool superuser_caller)
{
	while (*p != '\0')
	{
		const char *name = p;
		const char *value = name + strlen(name) + 1;
		char		ctx = value[strlen(value) + 1];

		(void) set_config_option(name, value,
								 (ctx == 'S' && superuser_caller) ? PGC_SUSET : PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SET, true, WARNING, false);
		p = value + strlen(value) + 2;
	}
}

static void
mc_worker_classify(McWorkerSlot *slot, ErrorData *edata, int64 run)
{
	char		code[6];

	slot->errors++;
	if (edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED)
		slot->deadlocks++;
	else if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		slot->lock_timeouts++;
	else if (edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE)
		slot->serialization_failures++;
	else if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		slot->timeouts++;
	if (slot->first_error_run < 0)
	{
		mc_strlcpy(code, unpack_sql_state(edata->sqlerrcode), sizeof(code));
		memcpy(slot->first_sqlstate, code, sizeof(code));
		mc_strlcpy(slot->first_error, edata->message ? edata->message : "error", MC_ERROR_LEN);
		slot->first_error_run = run;
	}
}

/* what a run returned, as a hash and the start of its first row */
static void
mc_worker_result(McRun *r)
{
	StringInfoData buf;
	uint64		i;

	initStringInfo(&buf);
	if (SPI_tuptable == NULL)
		appendStringInfo(&buf, UINT64_FORMAT " rows", SPI_processed);
	else
	{
		for (i = 0; i < SPI_processed && i < 10000; i++)
		{
			int			c;

			for (c = 1; c <= SPI_tuptable->tupdesc->natts; c++)
			{
				char	   *val = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c);

				appendStringInfoString(&buf, val ? val : "NULL");
				appendStringInfoChar(&buf, c < SPI_tuptable->tupdesc->natts ? '|' : '\n');
			}
		}
	}
	r->hash = hash_bytes_extended((const unsigned char *) buf.data, buf.len, SPI_processed);
	/* the first row, for the finding's text */
	buf.data[strcspn(buf.data, "\n")] = '\0';
	mc_strlcpy(r->sample, buf.data, MC_SAMPLE_LEN);
	pfree(buf.data);
}

/* ---------- what checks do in the workers (registered at start-up) ---------- */

#define MC_NUM_ROLES (MC_ROLE_CONCURRENT + 1)
#define MC_MAX_JOB_LISTENERS 4

static const McWorkerRoleOps *role_ops[MC_NUM_ROLES];
static void (*job_begin[MC_MAX_JOB_LISTENERS]) (void);
static void (*job_end[MC_MAX_JOB_LISTENERS]) (void);
static int	njob_listeners = 0;

void
mc_worker_register_role(McWorkerRole role, const McWorkerRoleOps *ops)
{
	if ((int) role < 0 || (int) role >= MC_NUM_ROLES)
		elog(ERROR, "pg_ext_memcheck: unknown worker role %d", (int) role);
	role_ops[role] = ops;
}

void
mc_worker_on_job(void (*begin) (void), void (*end) (void))
{
	if (njob_listeners >= MC_MAX_JOB_LISTENERS)
		elog(ERROR, "pg_ext_memcheck: too many worker job listeners");
	job_begin[njob_listeners] = begin;
	job_end[njob_listeners] = end;
	njob_listeners++;
}

static void
mc_role_begin(McWorkerRole role)
{
	if (role_ops[role] != NULL && role_ops[role]->begin != NULL)
		role_ops[role]->begin();
}

static void
mc_role_next_run(McWorkerRole role, int32 run)
{
	if (role_ops[role] != NULL && role_ops[role]->next_run != NULL)
		role_ops[role]->next_run(run);
}

static void
mc_role_end(McWorkerRole role)
{
	if (role_ops[role] != NULL && role_ops[role]->end != NULL)
		role_ops[role]->end();
}

/* the role's notes into the worker's slot */
static void
mc_role_notes(McWorkerSlot *slot)
{
	const McWorkerRoleOps *ops = role_ops[slot->role];

	if (ops != NULL && ops->notes != NULL)
		slot->npoisoned = ops->notes(slot->poisoned, MC_POISON_NOTES, &slot->quarantined);
}

static void
mc_job_begin(void)
{
	int			i;

	for (i = 0; i < njob_listeners; i++)
		if (job_begin[i] != NULL)
			job_begin[i] ();
}

static void
mc_job_end(void)
{
	int			i;

	for (i = 0; i < njob_listeners; i++)
		if (job_end[i] != NULL)
			job_end[i] ();
}

/* the storm's progress, for the breadcrumb of a crash that could not be caught */
static void
mc_worker_progress(McWorkerJob *job, McWorkerSlot *slot, int64 run)
{
	char		path[MAXPGPATH];
	char		tmp[MAXPGPATH];
	FILE	   *f;
	int			i;

	if (job->crumb[0] == '\0' || slot->role != MC_ROLE_STORM)
		return;
	snprintf(path, sizeof(path), "%s.progress", job->crumb);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
		return;
	mc_role_notes(slot);
	fprintf(f, "run %lld of %d with poisoning", (long long) run + 1, job->iterations);
	for (i = 0; i < slot->npoisoned && i < 3; i++)
		fprintf(f, "%s '%s' (%s)", i == 0 ? "; memory poisoned in" : ",",
				slot->poisoned[i].name, slot->poisoned[i].lib);
	FreeFile(f);
	(void) rename(tmp, path);
}

/* the storm's notes (resetstorm.c) and this worker's findings into its slot */
static void
mc_worker_report(McWorkerSlot *slot)
{
	int			i;
	int			n = 0;
	int			pass;

	mc_role_notes(slot);
	slot->measured = mc_active;
	/* the most severe first, coverage gaps last */
	for (pass = MC_SEV_ERROR; pass >= -1 && n < MC_WORKER_FINDINGS; pass--)
		for (i = 0; i < mc_findings_count() && n < MC_WORKER_FINDINGS; i++)
		{
			bool		in_window;
			const McViolation *v = mc_finding_at(i, &in_window);

			if (v == NULL)
				continue;
			if (pass >= 0 ? (v->severity != pass || v->check == MC_CHECK_COVERAGE_GAP)
				: v->check != MC_CHECK_COVERAGE_GAP)
				continue;
			slot->findings[n++] = *v;
		}
	slot->nfindings = n;
}

static bool
mc_worker_stops(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_ADMIN_SHUTDOWN || sqlerrcode == ERRCODE_CRASH_SHUTDOWN;
}

/*
 * What one worker's loop keeps where a crash can read it: the crash jumps
 * back into mc_worker_main's frame, so the loop's state lives there, and
 * is volatile.
 */
typedef struct McWorkerState
{
	McWorkerJob *job;
	McWorkerSlot *slot;
	McRun	   *runs;			/* a result per run, or NULL */
	const char *workload;
	MemoryContext cxt;			/* reset after each run */
	volatile int64 run;
	volatile bool in_xact;		/* a transaction spans several runs */
	volatile bool stop;			/* an error that ends the job */
} McWorkerState;

/* attach to the job and claim this worker's slot */
static void
mc_worker_attach(McWorkerState *ws, Datum main_arg)
{
	dsm_segment *seg;
	int			index;

	memcpy(&index, MyBgworkerEntry->bgw_extra, sizeof(int));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_ext_memcheck worker: the job is gone")));
	ws->job = dsm_segment_address(seg);
	ws->slot = &ws->job->slots[index];
	ws->slot->pid = MyProcPid;
	ws->slot->status = MC_WS_RUNNING;
	ws->runs = mc_worker_runs(ws->job, ws->slot);
	ws->workload = (const char *) ws->job + ws->job->workload_off;
	ws->cxt = AllocSetContextCreate(TopMemoryContext, "pg_ext_memcheck worker",
									ALLOCSET_DEFAULT_SIZES);
}

/* connect as the caller, with the caller's libraries and settings */
static void
mc_worker_become_caller(McWorkerJob *job)
{
	BackgroundWorkerInitializeConnectionByOid(job->dbid, job->userid, 0);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	RestoreLibraryState((char *) job + job->libs_off);
	mc_worker_apply_gucs((const char *) job + job->gucs_off, job->superuser);
	if (job->force_measuring && mc_mode == MC_MODE_OFF)
		(void) set_config_option("pg_ext_memcheck.memcheck_mode", "all", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_SET, true, WARNING, false);
	if (job->lock_timeout_ms > 0)
	{
		char		ms[32];

		snprintf(ms, sizeof(ms), "%d", job->lock_timeout_ms);
		(void) set_config_option("lock_timeout", ms, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SET, true, WARNING, false);
	}
	mc_hooks_safe_point();
	mc_job_begin();
	CommitTransactionCommand();
}

/* concurrent workers start together (or after MC_START_WAIT_MS) */
static void
mc_worker_wait_for_peers(McWorkerJob *job, McWorkerSlot *slot)
{
	TimestampTz t0 = GetCurrentTimestamp();

	if (slot->role != MC_ROLE_CONCURRENT)
		return;
	pg_atomic_fetch_add_u32(&job->ready, 1);
	while ((int32) pg_atomic_read_u32(&job->ready) < job->nworkers &&
		   !TimestampDifferenceExceeds(t0, GetCurrentTimestamp(), MC_START_WAIT_MS))
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
	}
}

/* after a crash in the workload: record it in the slot and leave cleanly (never returns) */
static void
mc_worker_record_crash(McWorkerState *ws)
{
	McWorkerSlot *slot = ws->slot;
	int64		run = ws->run;

	slot->crash_signal = crash_signo;
	slot->crash_addr = (uint64) crash_addr;
	slot->crash_run = run;
	if (crash_pc != 0 && mc_lib_of_address((void *) crash_pc) != MC_NO_LIB)
	{
		int			lib = mc_lib_of_address((void *) crash_pc);

		mc_strlcpy(slot->crash_lib, mc_lib_name(lib), MC_LIB_LEN);
		slot->crash_offset = (uint64) (crash_pc - mc_lib_base(lib));
	}
	if (ws->runs != NULL && run < ws->job->iterations)
		ws->runs[run].status = MC_RUN_CRASH;
	mc_role_notes(slot);
	slot->runs = run;
	pg_write_barrier();
	slot->status = MC_WS_CRASHED;
	proc_exit(1);
}

/* the workload once, through SPI; commits at a reset boundary */
static void
mc_worker_execute(McWorkerState *ws, bool boundary)
{
	int			rc;

	if (!ws->in_xact)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		ws->in_xact = true;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, ws->workload);
	rc = SPI_execute(ws->workload, false, 0);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the workload cannot run in a background worker: %s",
						SPI_result_code_string(rc))));
	if (ws->runs != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(ws->cxt);

		mc_worker_result(&ws->runs[ws->run]);
		ws->runs[ws->run].status = MC_RUN_OK;
		MemoryContextSwitchTo(old);
		MemoryContextReset(ws->cxt);
	}
	SPI_finish();
	PopActiveSnapshot();
	if (boundary)
	{
		CommitTransactionCommand();
		ws->in_xact = false;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* an error in a run: abort, classify it, and say whether the job stops */
static void
mc_worker_run_failed(McWorkerState *ws)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(ws->cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	ws->in_xact = false;
	mc_worker_classify(ws->slot, edata, ws->run);
	if (ws->runs != NULL)
	{
		ws->runs[ws->run].status = MC_RUN_ERROR;
		mc_strlcpy(ws->runs[ws->run].sample, edata->message ? edata->message : "error",
				   MC_SAMPLE_LEN);
	}
	if (mc_worker_stops(edata->sqlerrcode))
		ws->stop = true;
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* one run of the workload; a crash in it jumps to crash_buf */
static void
mc_worker_run(McWorkerState *ws, sigjmp_buf *crash_buf)
{
	McWorkerJob *job = ws->job;
	int64		run = ws->run;
	bool		boundary = (run + 1) % job->reset_frequency == 0 || run + 1 == job->iterations;

	mc_worker_progress(job, ws->slot, run);
	mc_role_next_run(ws->slot->role, (int32) run);
	crash_jmp = crash_buf;
	PG_TRY();
	{
		mc_worker_execute(ws, boundary);
	}
	PG_CATCH();
	{
		crash_jmp = NULL;
		mc_worker_run_failed(ws);
	}
	PG_END_TRY();
	crash_jmp = NULL;
	ws->slot->runs = run + 1;
	if (!ws->in_xact)
		mc_track_judge(true);
	CHECK_FOR_INTERRUPTS();
}

/* this worker's findings, and the guards it may have damaged; then exit (never returns) */
static void
mc_worker_finish(McWorkerState *ws)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	mc_hooks_safe_point();
	mc_track_judge(false);
	mc_job_end();
	mc_worker_report(ws->slot);
	mc_findings_publish(true);
	CommitTransactionCommand();
	pg_write_barrier();
	ws->slot->status = ws->stop ? MC_WS_STOPPED : MC_WS_DONE;
	proc_exit(0);
}

/*
 * A worker: attach, become the caller, run the workload job->iterations
 * times (fewer when an error stops it), report and exit.  A crash in the
 * workload comes back here through crash_buf, which must live in this
 * frame for as long as the runs do.
 */
void
mc_worker_main(Datum main_arg)
{
	McWorkerState ws;
	sigjmp_buf	crash_buf;
	sigjmp_buf *volatile saved_exception_stack;
	ErrorContextCallback *volatile saved_context_stack;

	memset(&ws, 0, sizeof(ws));
	mc_worker_attach(&ws, main_arg);
	mc_worker_become_caller(ws.job);
	mc_worker_wait_for_peers(ws.job, ws.slot);
	mc_role_begin(ws.slot->role);

	mc_crash_catch();
	saved_exception_stack = PG_exception_stack;
	saved_context_stack = error_context_stack;
	if (sigsetjmp(crash_buf, 1) != 0)
	{
		crash_jmp = NULL;
		mc_role_end(ws.slot->role);
		PG_exception_stack = saved_exception_stack;
		error_context_stack = saved_context_stack;
		InterruptHoldoffCount = 0;
		QueryCancelHoldoffCount = 0;
		mc_worker_record_crash(&ws);
	}
	for (ws.run = 0; ws.run < ws.job->iterations && !ws.stop; ws.run++)
		mc_worker_run(&ws, &crash_buf);
	mc_role_end(ws.slot->role);
	mc_worker_finish(&ws);
}
