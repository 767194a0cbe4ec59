/*-------------------------------------------------------------------------
 *
 * worker.h
 *		Background workers that run a scenario's workload (worker.c), as
 *		context_reset_storm (resetstorm.c) and concurrent_backends
 *		(concurrent.c) use them.
 *
 * The calling backend puts a job into a DSM segment: who to connect as,
 * the libraries and settings of its session, the workload, and one result
 * slot per worker.  Each worker runs the workload `iterations` times, a
 * transaction every `reset_frequency` runs, records per run what it
 * returned, classifies errors, catches a crash (and exits cleanly, so that
 * the server does not restart), and copies its findings into its slot.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_WORKER_H
#define PG_EXT_MEMCHECK_WORKER_H

#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"

#include "scenarios/scenario.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

#define MC_WORKER_FINDINGS	16
#define MC_POISON_NOTES		32
#define MC_SAMPLE_LEN		48
#define MC_ERROR_LEN		256
#define MC_MAX_RUNS			100000	/* runs recorded one by one (storm) */

typedef enum McWorkerRole
{
	MC_ROLE_PLAIN,				/* a run without poisoning (storm's baselines) */
	MC_ROLE_STORM,				/* poison and quarantine between runs */
	MC_ROLE_CONCURRENT			/* one of several at once */
} McWorkerRole;

typedef enum McWorkerStatus
{
	MC_WS_NOT_STARTED,
	MC_WS_RUNNING,
	MC_WS_DONE,
	MC_WS_STOPPED,				/* an error that stops the run (cancel, shutdown) */
	MC_WS_CRASHED				/* a crash, caught: the worker exited cleanly */
} McWorkerStatus;

typedef enum McRunStatus
{
	MC_RUN_NOT_RUN,
	MC_RUN_OK,
	MC_RUN_ERROR,
	MC_RUN_CRASH
} McRunStatus;

/* one run of the workload (storm roles only) */
typedef struct McRun
{
	uint8		status;
	uint64		hash;
	char		sample[MC_SAMPLE_LEN];
} McRun;

/* memory foreign code allocated that the storm poisoned (names: valid in any process) */
typedef struct McPoisonNote
{
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];
	char		lib[MC_LIB_LEN];
	uint64		offset;			/* allocation site in lib, or 0 */
	int64		bytes;
	int64		count;
	int32		first_run;		/* run after which it was first poisoned */
	bool		deleted;		/* the context was deleted (else reset) */
	uint8		lifetime;		/* of the context, by where it sat */
} McPoisonNote;

typedef struct McWorkerSlot
{
	int32		pid;
	int32		role;
	volatile int32 status;
	int64		runs;
	int64		errors;
	int64		deadlocks;
	int64		lock_timeouts;
	int64		serialization_failures;
	int64		timeouts;
	char		first_error[MC_ERROR_LEN];
	char		first_sqlstate[6];
	int64		first_error_run;
	/* a caught crash */
	int32		crash_signal;
	uint64		crash_addr;
	char		crash_lib[MC_LIB_LEN];
	uint64		crash_offset;
	int64		crash_run;
	/* what it found, and what the storm poisoned */
	bool		measured;
	int			nfindings;
	McViolation findings[MC_WORKER_FINDINGS];
	int			npoisoned;
	McPoisonNote poisoned[MC_POISON_NOTES];
	int64		quarantined;	/* contexts kept from reuse */
	Size		runs_off;		/* McRun[iterations] (storm roles), or 0 */
} McWorkerSlot;

typedef struct McWorkerJob
{
	Oid			dbid;
	Oid			userid;
	bool		superuser;
	int32		iterations;
	int32		reset_frequency;
	int32		nworkers;
	int32		lock_timeout_ms;
	bool		force_measuring;	/* memcheck_mode 'all' if the session's is off */
	pg_atomic_uint32 ready;		/* workers at the start line */
	char		crumb[MAXPGPATH];	/* the storm worker's progress file, or "" */
	Size		workload_off;
	Size		libs_off;
	Size		gucs_off;
	McWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} McWorkerJob;

/* the caller's view of a launched job */
typedef struct McWorkers
{
	dsm_segment *seg;
	McWorkerJob *job;
	BackgroundWorkerHandle **handles;
	int			n;
	bool		timed_out;
	int			not_started;
} McWorkers;

extern void mc_workers_start(McScenario *sc, McWorkers *w, const int32 *roles, int n,
							 bool force_measuring, const char *crumb);
extern void mc_workers_wait(McScenario *sc, McWorkers *w, int timeout_ms);
extern void mc_workers_stop(McWorkers *w);
extern McRun *mc_worker_runs(McWorkerJob *job, McWorkerSlot *slot);
extern const char *mc_worker_status_name(int status);
extern const char *mc_signal_name(int signo);

/* breadcrumbs: a job the server's restart interrupted is reported on the next call */
extern char *mc_crumb_write(const char *kind, const char *workload);
extern void mc_crumb_remove(const char *path);

/*
 * What a check does in a worker of its role (checks/resetstorm.c for the
 * storm's), registered at start-up: before the first run, before each run,
 * after the last (and after a caught crash), and the notes it leaves in
 * the worker's slot.  Any may be NULL.
 */
typedef struct McWorkerRoleOps
{
	void		(*begin) (void);
	void		(*next_run) (int32 run);
	void		(*end) (void);
	int			(*notes) (McPoisonNote *out, int max, int64 *quarantined);
} McWorkerRoleOps;

extern void mc_worker_register_role(McWorkerRole role, const McWorkerRoleOps *ops);

/*
 * What checks do around every worker's job, whatever its role (checks/:
 * the DSM window, the shared-memory guards): after connecting, and before
 * the worker reports its findings.
 */
extern void mc_worker_on_job(void (*begin) (void), void (*end) (void));


#pragma GCC visibility pop

/* the workers' entry point, looked up by name: exported */
extern PGDLLEXPORT __attribute__((visibility("default"))) void mc_worker_main(Datum main_arg);

#endif							/* PG_EXT_MEMCHECK_WORKER_H */
