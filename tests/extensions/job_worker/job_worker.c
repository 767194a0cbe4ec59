/*-------------------------------------------------------------------------
 *
 * job_worker.c
 *		Background workers that run one job per wake-up, for tests only
 *		(issue 19, item 6: background workers are a way into the library).
 *
 * Shaped like src/test/modules/worker_spi and pg_cron's job runner: the
 * library registers its workers itself (bgw_library_name = "job_worker"),
 * statically from _PG_init when preloaded, dynamically through
 * job_worker_launch() otherwise.  A worker connects to the database, then
 * loops: WaitLatch (its quiet point), take the job a client left in shared
 * memory, run it, wait again.  A job is a DSM segment holding a shm_mq on
 * which the worker sends its answer, as parallel workers and
 * pg_background do.  One worker per variant:
 *
 *	leaky		runs its jobs in TopMemoryContext (a worker's current context)
 *				and detaches the segment without shm_mq_detach(): the
 *				shm_mq_handle that shm_mq_attach() allocated there (144 bytes
 *				with its chunk header) stays, once per job, until the worker
 *				exits.  The bug of issue 19, item 6.
 *	clean		runs each job in a context of its own, reset after the job,
 *				and detaches the queue: nothing is kept.
 *	dsm_churn	clean, and maps four scratch segments per job besides the
 *				job's own (5 at once at most), detaching them all: many
 *				segments over its life, few at a time.
 *
 * job_worker_status() reports what each worker did, including the truth the
 * checker's rate is compared with: top_growth, how much TopMemoryContext's
 * used bytes grew from the first job to the last (and kept_bytes, the
 * GetMemoryChunkSpace of every handle left behind, for comparison).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

void		_PG_init(void);
PGDLLEXPORT void job_worker_main(Datum main_arg);

#define JW_QUEUE_SIZE 1024		/* the job's segment: one small shm_mq */
#define JW_SCRATCH 4			/* dsm_churn's extra segments per job */
#define JW_SCRATCH_SIZE 8192

typedef enum JobVariant
{
	JW_LEAKY,
	JW_CLEAN,
	JW_DSM_CHURN,
	JW_VARIANTS
} JobVariant;

static const char *const variant_names[JW_VARIANTS] = {"leaky", "clean", "dsm_churn"};

/* one worker's mailbox and report, in shared memory */
typedef struct JobSlot
{
	pid_t		pid;			/* the worker, 0 while there is none */
	Latch	   *latch;			/* its latch, set by a client with a job */
	dsm_handle	job;			/* the waiting job, 0 when none */
	uint64		jobs_done;
	uint64		kept_bytes;		/* what the leaky variant left behind */
	int64		top_used_first; /* TopMemoryContext's used bytes after the first job */
	int64		top_used_last;	/* ... and after the last one */
	uint64		segments;		/* DSM segments mapped over its life */
	int			max_mapped;		/* most segments mapped at once */
} JobSlot;

typedef struct JobShared
{
	slock_t		mutex;
	JobSlot		slots[JW_VARIANTS];
} JobShared;

static JobShared *jw_shared = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

/* ---------- shared state ---------- */

/* created by the first process that needs it: preloaded or not (the space is small) */
static void
jw_attach_shared(void)
{
	bool		found;

	if (jw_shared != NULL)
		return;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jw_shared = ShmemInitStruct("job_worker", sizeof(JobShared), &found);
	if (!found)
	{
		memset(jw_shared, 0, sizeof(JobShared));
		SpinLockInit(&jw_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

static int
jw_variant(text *name)
{
	char	   *s = text_to_cstring(name);
	int			i;

	for (i = 0; i < JW_VARIANTS; i++)
		if (strcmp(s, variant_names[i]) == 0)
			return i;
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("job_worker: unknown variant \"%s\" (leaky, clean, dsm_churn)", s)));
	return -1;					/* not reached */
}

/* ---------- the worker ---------- */

/* TopMemoryContext's used bytes (its own chunks, not its children's) */
static int64
jw_top_used(void)
{
	MemoryContextCounters counters;

	memset(&counters, 0, sizeof(counters));
#if PG_VERSION_NUM >= 140000
	TopMemoryContext->methods->stats(TopMemoryContext, NULL, NULL, &counters, false);
#else
	TopMemoryContext->methods->stats(TopMemoryContext, NULL, NULL, &counters);
#endif
	return (int64) (counters.totalspace - counters.freespace);
}

static void
jw_worker_exit(int code, Datum arg)
{
	JobSlot    *slot = &jw_shared->slots[DatumGetInt32(arg)];

	(void) code;
	SpinLockAcquire(&jw_shared->mutex);
	slot->pid = 0;
	slot->latch = NULL;
	SpinLockRelease(&jw_shared->mutex);
}

static void
jw_run_job(JobSlot *slot, int variant, dsm_handle handle, MemoryContext job_cxt)
{
	MemoryContext old = CurrentMemoryContext;
	dsm_segment *seg;
	dsm_segment *scratch[JW_SCRATCH];
	int			nscratch = 0;
	shm_mq_handle *mqh;
	uint64		answer;
	uint64		kept = 0;
	int			i;
	int64		top_used;

	if (job_cxt != NULL)
		MemoryContextSwitchTo(job_cxt);
	seg = dsm_attach(handle);
	if (seg == NULL)
	{
		MemoryContextSwitchTo(old);	/* the client gave up on it */
		return;
	}
	shm_mq_set_sender((shm_mq *) dsm_segment_address(seg), MyProc);
	mqh = shm_mq_attach((shm_mq *) dsm_segment_address(seg), seg, NULL);
	if (variant == JW_DSM_CHURN)
		for (nscratch = 0; nscratch < JW_SCRATCH; nscratch++)
		{
			scratch[nscratch] = dsm_create(JW_SCRATCH_SIZE, 0);
			memset(dsm_segment_address(scratch[nscratch]), 0, JW_SCRATCH_SIZE);
		}

	if (variant == JW_LEAKY)
		kept = GetMemoryChunkSpace(mqh);	/* BUG: never shm_mq_detach()ed below: the handle stays */
	for (i = 0; i < nscratch; i++)
		dsm_detach(scratch[i]);
	/* measured at the same point of every job: what a job holds only while it runs cancels out */
	top_used = jw_top_used();

	/* the report is complete before the answer: the client may read it at once */
	SpinLockAcquire(&jw_shared->mutex);
	answer = ++slot->jobs_done;
	slot->kept_bytes += kept;
	if (answer == 1)
		slot->top_used_first = top_used;
	slot->top_used_last = top_used;
	slot->segments += 1 + nscratch;
	slot->max_mapped = Max(slot->max_mapped, 1 + nscratch);
	SpinLockRelease(&jw_shared->mutex);
#if PG_VERSION_NUM >= 150000
	(void) shm_mq_send(mqh, sizeof(answer), &answer, false, true);
#else
	(void) shm_mq_send(mqh, sizeof(answer), &answer, false);
#endif
	if (variant != JW_LEAKY)
		shm_mq_detach(mqh);
	dsm_detach(seg);
	MemoryContextSwitchTo(old);
	if (job_cxt != NULL)
		MemoryContextReset(job_cxt);
}

void
job_worker_main(Datum main_arg)
{
	int			variant = DatumGetInt32(main_arg);
	JobSlot    *slot;
	MemoryContext job_cxt = NULL;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection("postgres", NULL, 0);
	jw_attach_shared();
	slot = &jw_shared->slots[variant];
	on_shmem_exit(jw_worker_exit, Int32GetDatum(variant));
	if (variant != JW_LEAKY)
		job_cxt = AllocSetContextCreate(TopMemoryContext, "job_worker job", ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&jw_shared->mutex);
	slot->pid = MyProcPid;
	slot->latch = MyLatch;
	slot->job = 0;
	slot->jobs_done = slot->kept_bytes = slot->segments = 0;
	slot->top_used_first = slot->top_used_last = 0;
	slot->max_mapped = 0;
	SpinLockRelease(&jw_shared->mutex);

	for (;;)
	{
		dsm_handle	job;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		SpinLockAcquire(&jw_shared->mutex);
		job = slot->job;
		slot->job = 0;
		SpinLockRelease(&jw_shared->mutex);
		if (job != 0)
			jw_run_job(slot, variant, job, job_cxt);
	}
}

static void
jw_describe(BackgroundWorker *worker, int variant, pid_t notify_pid)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "job_worker");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "job_worker_main");
	snprintf(worker->bgw_name, BGW_MAXLEN, "job_worker %s", variant_names[variant]);
	snprintf(worker->bgw_type, BGW_MAXLEN, "job_worker");
	worker->bgw_main_arg = Int32GetDatum(variant);
	worker->bgw_notify_pid = notify_pid;
}

/* ---------- SQL ---------- */

PG_FUNCTION_INFO_V1(job_worker_launch);

Datum
job_worker_launch(PG_FUNCTION_ARGS)
{
	int			variant = jw_variant(PG_GETARG_TEXT_PP(0));
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	jw_attach_shared();
	/* one worker per variant: an existing one is the answer */
	SpinLockAcquire(&jw_shared->mutex);
	pid = jw_shared->slots[variant].pid;
	SpinLockRelease(&jw_shared->mutex);
	if (pid != 0 && kill(pid, 0) == 0)
		PG_RETURN_INT32((int32) pid);
	jw_describe(&worker, variant, MyProcPid);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						errmsg("job_worker: could not register a background worker")));
	if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						errmsg("job_worker: the background worker did not start")));
	PG_RETURN_INT32((int32) pid);
}

/* the variant's worker's latch, once it is ready (waits for it) */
static Latch *
jw_ready_latch(JobSlot *slot)
{
	for (;;)
	{
		Latch	   *latch;

		SpinLockAcquire(&jw_shared->mutex);
		latch = slot->latch;
		SpinLockRelease(&jw_shared->mutex);
		if (latch != NULL)
			return latch;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

PG_FUNCTION_INFO_V1(job_worker_run);

Datum
job_worker_run(PG_FUNCTION_ARGS)
{
	int			variant = jw_variant(PG_GETARG_TEXT_PP(0));
	int32		jobs = PG_GETARG_INT32(1);
	JobSlot    *slot;
	uint64		answer = 0;
	int32		i;

	jw_attach_shared();
	slot = &jw_shared->slots[variant];
	(void) jw_ready_latch(slot);
	for (i = 0; i < jobs; i++)
	{
		Latch	   *latch = jw_ready_latch(slot);
		dsm_segment *seg;
		shm_mq	   *mq;
		shm_mq_handle *mqh;
		Size		len;
		void	   *data;

		seg = dsm_create(JW_QUEUE_SIZE, 0);
		mq = shm_mq_create(dsm_segment_address(seg), JW_QUEUE_SIZE);
		shm_mq_set_receiver(mq, MyProc);
		mqh = shm_mq_attach(mq, seg, NULL);
		SpinLockAcquire(&jw_shared->mutex);
		slot->job = dsm_segment_handle(seg);
		SpinLockRelease(&jw_shared->mutex);
		SetLatch(latch);
		if (shm_mq_receive(mqh, &len, &data, false) != SHM_MQ_SUCCESS || len != sizeof(uint64))
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
							errmsg("job_worker: the %s worker did not answer", variant_names[variant])));
		memcpy(&answer, data, sizeof(uint64));
		shm_mq_detach(mqh);
		dsm_detach(seg);
	}
	PG_RETURN_INT64((int64) answer);
}

PG_FUNCTION_INFO_V1(job_worker_status);

Datum
job_worker_status(PG_FUNCTION_ARGS)
{
	int			variant = jw_variant(PG_GETARG_TEXT_PP(0));
	JobSlot		copy;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "job_worker: return type must be a row type");
	jw_attach_shared();
	SpinLockAcquire(&jw_shared->mutex);
	copy = jw_shared->slots[variant];
	SpinLockRelease(&jw_shared->mutex);
	values[0] = Int32GetDatum((int32) copy.pid);
	values[1] = Int64GetDatum((int64) copy.jobs_done);
	values[2] = Int64GetDatum((int64) copy.kept_bytes);
	values[3] = Int64GetDatum((int64) copy.segments);
	values[4] = Int32GetDatum(copy.max_mapped);
	values[5] = Int64GetDatum(copy.top_used_last - copy.top_used_first);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* ---------- loading ---------- */

#if PG_VERSION_NUM >= 150000
static void
jw_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(JobShared)));
}
#endif

void
_PG_init(void)
{
	BackgroundWorker worker;
	int			i;

	if (!process_shared_preload_libraries_in_progress)
		return;					/* workers come from job_worker_launch() then */
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = jw_shmem_request;
#else
	RequestAddinShmemSpace(MAXALIGN(sizeof(JobShared)));
#endif
	for (i = 0; i < JW_VARIANTS; i++)
	{
		jw_describe(&worker, i, 0);
		RegisterBackgroundWorker(&worker);
	}
}
