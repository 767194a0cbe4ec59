/*-------------------------------------------------------------------------
 *
 * checks.h
 *		Layer 5 of the hook library (base/base.h lists the layers): the
 *		checks that are not the tracker's own judgment, one per file.
 *
 * This layer offers: resource_leak from PostgreSQL's end-of-transaction
 * warnings (reslog.c); shmem_overrun from guard bytes behind shared-memory
 * allocations (shmemguard.c); dsm_leak from the DSM segments foreign code
 * maps (dsmtrack.c); wrong_context_probe (ctxprobe.c); ctx_bloat at
 * growth_benchmark's checkpoints (bloat.c); use_after_reset under
 * context_reset_storm (resetstorm.c); concurrent_backends (concurrent.c).
 * Each file's init function registers what it adds to the layers below at
 * start-up: GOT targets, the tracker's listeners, scenario kinds, worker
 * roles.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_CHECKS_H
#define PG_EXT_MEMCHECK_CHECKS_H

#include "scenarios/worker.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

/* each file's start-up (_PG_init): what it adds to the layers below */
extern void mc_reslog_init(void);
extern void mc_guards_init(void);
extern void mc_dsm_init(void);
extern void mc_ctxprobe_init(void);
extern void mc_bloat_init(void);
extern void mc_storm_init(void);
extern void mc_concurrent_init(void);

/* shmemguard.c: guard bytes behind shared-memory allocations */
extern void mc_guards_request_shmem(void);
extern void mc_guards_shmem_startup(void);
extern int	mc_guards_check(void);
extern void mc_guards_report(TimestampTz since);
extern void mc_guards_window_begin(void);
extern void mc_guards_window_end(void);
extern void mc_guards_coverage(Tuplestorestate *tupstore, TupleDesc tupdesc);

/* dsmtrack.c: DSM segments foreign code maps */
extern void mc_dsm_request_shmem(void);
extern void mc_dsm_shmem_startup(void);
extern void mc_dsm_window_begin(void);
extern void mc_dsm_window_end(void);

#pragma GCC visibility pop

#endif							/* PG_EXT_MEMCHECK_CHECKS_H */
