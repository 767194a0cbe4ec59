/*-------------------------------------------------------------------------
 *
 * scenario.h
 *		Layer 4 of the hook library (base/base.h lists the layers):
 *		repeating a workload.
 *
 * This layer offers: the scenario loop, its arguments and its result
 * (scenario.c), and background workers that run a workload and survive
 * its crash (worker.c, worker.h).  The checks of checks/ give each
 * scenario its own work through the kinds they register here: bloat.c
 * (growth_benchmark), shmemguard.c (shmem_sentinel_probe), ctxprobe.c
 * (wrong_context_probe), dsmtrack.c (dsm_lifecycle_check), resetstorm.c
 * (context_reset_storm) and concurrent.c (concurrent_backends).
 *
 * A scenario that runs in this backend repeats the workload and calls its
 * kind's callbacks around the iterations; one that runs in background
 * workers (run != NULL) does all of its work itself.  Each adds its own
 * keys to the result object.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_SCENARIO_H
#define PG_EXT_MEMCHECK_SCENARIO_H

#include "entry/entry.h"

#include "lib/stringinfo.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

typedef struct McScenario McScenario;

typedef struct McScenarioKind
{
	const char *name;
	const char *description;
	int32		default_iterations;
	bool		rollback;		/* each iteration in a subtransaction rolled back */
	bool		takes_reset_frequency;
	bool		takes_workers;
	bool		takes_contexts;
	/* in this backend: around the iterations (any may be NULL) */
	void		(*start) (McScenario *sc);
	void		(*iteration) (McScenario *sc, int32 done);
	void		(*finish) (McScenario *sc);
	/* in background workers: everything (the loop is not used) */
	void		(*run) (McScenario *sc);
	/* its keys of the result object: ", \"key\": value ..." */
	void		(*result) (McScenario *sc, StringInfo out);
} McScenarioKind;

#define MC_MAX_WATCHED 16

struct McScenario
{
	const McScenarioKind *kind;
	const char *name;
	int32		iterations;
	const char *workload;
	bool		each;			/* commit after every iteration */
	bool		nonatomic;
	const char *transaction_note;
	int64		errors;
	char	   *first_error;
	int			first_sqlerrcode;
	TimestampTz started;
	MemoryContext cxt;			/* lives as long as the run */
	int32		done;			/* iterations completed */

	/* options (0: not given) */
	int32		reset_frequency;
	int32		workers;
	int32		timeout_ms;
	int32		lock_timeout_ms;
	int			nwatched;
	char		watched[MC_MAX_WATCHED][MC_NAME_LEN];

	void	   *state;			/* the kind's own */
	void	   *samples;		/* the report's samples (scenario.c) */
};

/* scenario.c */
extern void mc_scenario_judge_shared(McScenario *sc);
extern void mc_json_key(StringInfo out, const char *key);
extern void mc_json_string(StringInfo out, const char *key, const char *value);

/* the kinds: each check registers its own at start-up */
extern void mc_scenarios_init(void);
extern void mc_scenario_register(const McScenarioKind *kind);
extern void mc_scenario_on_end(void (*listener) (McScenario *sc));

/* worker.c: jobs a server restart interrupted become findings on the next call */
extern void mc_workers_collect_crashes(void);

#pragma GCC visibility pop

#endif							/* PG_EXT_MEMCHECK_SCENARIO_H */
