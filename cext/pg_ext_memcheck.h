/*-------------------------------------------------------------------------
 *
 * pg_ext_memcheck.h
 *		Declarations shared by the files of the pg_ext_memcheck hook library.
 *
 * The library measures what the code of OTHER shared libraries ("foreign"
 * code: the extensions under test) does to the backend's memory:
 *
 *	- foreign.c keeps the registry of loaded foreign libraries (PostgreSQL
 *	  modules other than this one and PostgreSQL's own);
 *	- gotpatch.c rewrites their import tables, so that their direct calls to
 *	  palloc, MemoryContextCreate, malloc, standard_planner ... reach our
 *	  wrappers in gotwrap.c wherever their code was entered from;
 *	- hooks*.c wrap every hook chain (hooktable.c holds one descriptor per
 *	  hook) and fmgrhook.c every call of a foreign C function, so that the
 *	  stretches of time in which foreign code runs ("segments", segment.c)
 *	  are known, and core work they call back into is excluded;
 *	- mcxtwrap.c wraps the memory-context method tables, so that every
 *	  allocation made inside a segment, and every free and reset, is seen;
 *	- track.c keeps the allocations made by foreign code, per context,
 *	  library and call site, and judges them: when a context is reset or
 *	  deleted (memory that piled up for a statement or a transaction), and
 *	  after every transaction (memory that outlives it: backend lifetime);
 *	- findings.c turns judgments into findings (backend-local, so nothing is
 *	  lost when the shared ring is full) and publishes them to ring.c;
 *	- shmemguard.c puts guard bytes behind shared-memory allocations
 *	  (shmem_overrun), dsmtrack.c follows the DSM segments foreign code maps
 *	  (dsm_leak);
 *	- scenario.c repeats a workload (scenario.h), with bloat.c (ctx_bloat at
 *	  log-spaced checkpoints), ctxprobe.c (wrong_context_probe) and the DSM
 *	  and guard probes; worker.c runs a workload in background workers that
 *	  survive their own crash, for resetstorm.c (use_after_reset) and
 *	  concurrent.c (concurrent_backends).
 *
 * Nothing on a per-query path walks a context or the context tree.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_H
#define PG_EXT_MEMCHECK_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/memnodes.h"
#include "utils/tuplestore.h"

/* ---------- vocabularies (vocab.c names them; reporter/vocab.py must agree) ---------- */

typedef enum McMode
{
	MC_MODE_OFF,
	MC_MODE_PLANNER,
	MC_MODE_EXECUTOR,
	MC_MODE_ALL
} McMode;

typedef enum McCheck
{
	MC_CHECK_CONTEXT_LEAK,
	MC_CHECK_WRONG_CTX_ALLOC,
	MC_CHECK_RESOURCE_LEAK,
	MC_CHECK_MALLOC_LEAK,
	MC_CHECK_SETTINGS_CHANGED,
	MC_CHECK_COVERAGE_GAP,
	MC_CHECK_MEMORY_CORRUPTION,
	MC_CHECK_SHMEM_OVERRUN,
	MC_CHECK_DSM_LEAK,
	MC_CHECK_CTX_BLOAT,
	MC_CHECK_USE_AFTER_RESET,
	MC_CHECK_CONCURRENCY_ERROR,
	MC_NUM_CHECKS
} McCheck;

typedef enum McSeverity
{
	MC_SEV_INFO,
	MC_SEV_WARNING,
	MC_SEV_ERROR
} McSeverity;

/* where foreign code was entered (the "phase" column) */
typedef enum McPhase
{
	MC_PHASE_PLANNER,
	MC_PHASE_EXECUTOR,
	MC_PHASE_UTILITY,
	MC_PHASE_SCENARIO,
	MC_PHASE_COMMIT,
	MC_PHASE_FUNCTION,
	MC_PHASE_CALLBACK,
	MC_PHASE_OTHER
} McPhase;

/* what the memory lives until */
typedef enum McLifetime
{
	MC_LIFE_UNKNOWN,
	MC_LIFE_STATEMENT,
	MC_LIFE_TRANSACTION,
	MC_LIFE_BACKEND
} McLifetime;

typedef enum McVerdict
{
	MC_VERDICT_NONE,
	MC_VERDICT_LEAK,			/* growth that repeats */
	MC_VERDICT_CACHE			/* one-time growth */
} McVerdict;

typedef enum McUnit
{
	MC_UNIT_NONE,
	MC_UNIT_CALL,
	MC_UNIT_ROW,
	MC_UNIT_ITERATION,
	MC_UNIT_STATEMENT
} McUnit;

/* ---------- GUCs (pg_ext_memcheck.c) ---------- */

extern int	mc_mode;
extern int	mc_min_leak_bytes;
extern int	mc_warning_bytes;
extern int	mc_error_bytes;
extern int	mc_ring_capacity;
extern int	mc_max_tracked;
extern int	mc_bloat_min_bytes;

/* ---------- one violation, as recorded in the ring and shown by SQL ---------- */

#define MC_NAME_LEN		64
#define MC_PATH_LEN		256
#define MC_LIB_LEN		64
#define MC_ENTRY_LEN	96
#define MC_DETAIL_LEN	512
#define MC_QUERY_LEN	256
#define MC_MAX_SITES	4

typedef struct McSite
{
	char		lib[MC_LIB_LEN];	/* file name of the library */
	uint64		offset;			/* return address minus the library's base */
	int64		bytes;
	int64		count;
} McSite;

typedef struct McViolation
{
	uint64		seq;
	TimestampTz ts;
	int32		pid;
	int32		finding_id;		/* this backend's finding; rows with one id are updates */
	uint8		check;
	uint8		severity;
	uint8		phase;
	uint8		lifetime;
	uint8		verdict;
	uint8		unit;
	int16		depth;
	int16		nest_level;
	int64		used_before;
	int64		used_after;
	int64		used_delta;
	int64		alloc_delta;
	double		bytes_per_iter;	/* < 0: not measured over repetitions */
	int64		iterations;
	double		rate_bytes;		/* bytes per unit; < 0: none */
	int64		calls;
	int64		rows;
	int64		occurrences;
	int			nsites;
	McSite		sites[MC_MAX_SITES];
	char		context_name[MC_NAME_LEN];
	char		context_path[MC_PATH_LEN];
	char		source_lib[MC_LIB_LEN];
	char		entry[MC_ENTRY_LEN];
	char		detail[MC_DETAIL_LEN];
	char		query[MC_QUERY_LEN];
} McViolation;

/* ---------- vocab.c ---------- */

extern const char *mc_check_name(int check);
extern const char *mc_severity_name(int sev);
extern const char *mc_phase_name(int phase);
extern const char *mc_lifetime_name(int lifetime);
extern const char *mc_verdict_name(int verdict);
extern const char *mc_unit_name(int unit);
extern const char *mc_mode_name(int mode);

/* ---------- ring.c ---------- */

extern Size mc_ring_shmem_size(void);
extern void mc_ring_request_shmem(void);
extern void mc_ring_shmem_startup(void);
extern bool mc_ring_attached(void);
extern bool mc_ring_record(McViolation *v);
extern void mc_ring_mark_flushed(uint64 upto);

typedef struct McRingStatus
{
	int			capacity;
	uint64		base_seq;
	uint64		next_seq;
	uint64		flushed_upto;
	uint64		written;
	uint64		dropped;
	uint64		refused;		/* writes refused: session not privileged */
} McRingStatus;
extern void mc_ring_status(McRingStatus *st);
extern int	mc_ring_copy_pending(uint64 start, uint64 stop, McViolation *out,
								 int max, uint64 *next);

/* ---------- ctxutil.c ---------- */

extern void mc_strlcpy(char *dst, const char *src, size_t len);
extern const char *mc_context_display_name(MemoryContext ctx);
extern int	mc_context_depth(MemoryContext ctx);
extern void mc_context_path(MemoryContext ctx, char *buf, size_t len);
extern bool mc_is_global_context(MemoryContext ctx);
extern bool mc_is_under(MemoryContext ctx, MemoryContext root);
extern McLifetime mc_context_lifetime(MemoryContext ctx);

/* ---------- foreign.c: the registry of foreign libraries ---------- */

#define MC_MAX_LIBS		32
#define MC_NO_LIB		(-1)

extern void mc_foreign_init(void);
extern int	mc_foreign_scan(void);
extern bool mc_foreign_changed(void);
extern int	mc_lib_of_address(const void *addr);
extern uintptr_t mc_foreign_frame(int *lib);
extern int	mc_lib_by_name(const char *name);
extern const char *mc_lib_name(int lib);
extern uintptr_t mc_lib_base(int lib);
extern int	mc_lib_count(void);
extern bool mc_is_core_address(const void *addr);
extern uintptr_t mc_core_base(void);
extern bool mc_module_is_foreign(const char *file_name);

/* ---------- gotpatch.c ---------- */

typedef struct McGotTarget
{
	const char *symbol;
	void	   *wrapper;
	void	   *real;			/* retarget saved copies of it, or NULL */
} McGotTarget;

extern int	mc_got_patch_object(uintptr_t base, bool main_program,
								const McGotTarget *targets, int ntargets,
								char *why, size_t whylen);

/* ---------- gotwrap.c ---------- */

extern void mc_gotwrap_patch_all(void);

/* ---------- segment.c: when foreign code runs ---------- */

/* how foreign code was entered */
typedef enum McEntryKind
{
	MC_ENTRY_NONE,
	MC_ENTRY_HOOK,				/* id: McHookId */
	MC_ENTRY_FUNCTION,			/* id: function OID */
	MC_ENTRY_XACT_CALLBACK,
	MC_ENTRY_SUBXACT_CALLBACK,
	MC_ENTRY_DIRECT				/* a direct call from code entered elsewhere */
} McEntryKind;

typedef struct McSegment
{
	int16		lib;			/* MC_NO_LIB: core work (a pause) */
	uint8		entry_kind;
	uint8		phase;
	uint32		entry_id;
	uint32		call_id;		/* distinct per segment opening */
} McSegment;

extern bool mc_active;			/* measuring in this backend */
extern const McSegment *mc_seg;	/* the running segment, or NULL */

extern void mc_seg_open(int lib, McEntryKind kind, uint32 entry_id, McPhase phase);
extern void mc_seg_pause(void);
extern void mc_seg_end(void);
extern int	mc_seg_depth_total;

/* the depth to give mc_seg_unwind to come back here: read on every hook call */
static inline int
mc_seg_depth(void)
{
	return mc_seg_depth_total;
}

extern bool mc_seg_in_foreign(void);
extern bool mc_seg_top_is(McEntryKind kind, uint32 id);
extern uint32 mc_libs_ran(void);
extern void mc_libs_ran_reset(void);
extern void mc_seg_unwind(int depth);
extern uint32 mc_seg_new_call(void);
extern bool mc_phase_measured(McPhase phase);
extern void mc_entry_describe(uint8 kind, uint32 id, char *buf, size_t len);
extern void mc_refresh_active(void);
extern void mc_deactivate(void);

/* ---------- hooktable.c ---------- */

extern void mc_hooks_attach(bool on);
extern void mc_hooks_install_outer(void);
extern void mc_hooks_check_late(void);
extern const char *mc_hook_name(int hook);
extern int	mc_hook_count(void);
extern uint64 mc_statement_seq(void);
extern bool mc_libs_dirty;
extern void mc_hook_describe(int hook, char *buf, size_t len);

/* ---------- fmgrhook.c ---------- */

extern void mc_fmgr_install(void);
extern bool mc_function_describe(Oid fn_oid, char *buf, size_t len);

/* ---------- mcxtwrap.c ---------- */

extern void mc_mcxt_init(void);
extern bool mc_alloc_wrapped;
extern void mc_mcxt_swap_alloc(bool on);

/* our alloc wrapper in the method tables, or PostgreSQL's own: a compare when nothing changes */
static inline void
mc_mcxt_set_alloc_wrapped(bool on)
{
	if (on != mc_alloc_wrapped)
		mc_mcxt_swap_alloc(on);
}
extern void mc_mcxt_set_free_wrapped(bool on);
extern bool mc_mcxt_ready(void);
extern Size mc_chunk_space(void *p);
extern int	mc_direct_depth;	/* > 0 while a GOT wrapper calls an allocator */
extern uintptr_t mc_direct_site;
extern int16 mc_direct_lib;

/* ---------- track.c ---------- */

#define MC_MALLOC_HEAP ((MemoryContext) (uintptr_t) 1)

extern void mc_track_alloc(MemoryContext ctx, void *p, Size size, int lib,
						   uintptr_t site, uint32 call_id, McPhase phase,
						   uint8 entry_kind, uint32 entry_id);
extern void mc_track_free(void *p);
extern void mc_track_realloc(void *oldp, void *newp, Size newsize);
extern void mc_track_context_created(MemoryContext ctx, int lib, uintptr_t site);
extern bool mc_track_context_dying(MemoryContext ctx, bool deleting);
extern bool mc_track_maybe_tracked(const void *p);
extern bool mc_track_has_contexts(void);
extern void mc_track_transaction_end(bool commit);
extern void mc_track_judge(bool at_iteration);
extern void mc_track_judge_if_pending(void);
extern void mc_track_reset_all(void);
extern void mc_track_series_reset(void);
extern void mc_track_foreach_held(void (*cb) (const char *path, int64 bytes, void *arg),
								  void *arg);
extern int64 mc_track_chunks(void);
extern int64 mc_track_untracked(void);
extern bool mc_track_last_freed(const void *near, int *lib, uintptr_t *site);
extern int	mc_explicit_cleanup;

/* ---------- findings.c ---------- */

typedef struct McFindingKey
{
	uint8		check;
	uint8		lifetime;
	int16		lib;
	const char *path;			/* context path, or resource name */
} McFindingKey;

extern McViolation *mc_finding_get(const McFindingKey *key, bool *created);
extern void mc_finding_add_site(McViolation *v, uintptr_t site, int lib, int64 bytes, int64 count);
extern void mc_finding_changed(McViolation *v);
extern McSeverity mc_severity_for(int64 bytes);
extern void mc_findings_publish(bool all);
extern void mc_findings_window_start(void);
extern int	mc_findings_count(void);
extern int	mc_findings_gaps(void);
extern const McViolation *mc_finding_at(int i, bool *in_window);
extern void mc_record_gap(const char *lib, const char *what, const char *detail);
extern int64 mc_findings_overflow(void);

/* ---------- reslog.c ---------- */

extern void mc_install_emit_log_hook(void);

/* ---------- xactcb.c ---------- */

extern void mc_xact_install(void);
extern void mc_xact_register(bool sub, void *callback, void *arg, int lib);
extern bool mc_xact_unregister(bool sub, void *callback, void *arg);

/* ---------- settings watch (pg_ext_memcheck.c) ---------- */

extern void mc_settings_window(bool active);
extern bool mc_settings_dirty;
extern void mc_check_privileged(void);
extern bool mc_session_privileged(void);

/* ---------- xactcb.c: our own transaction callbacks ---------- */

extern void mc_xact_callbacks_register(void);
extern void mc_backend_exit_register(void);

/* ---------- the original tool's checks and scenarios (issue 14) ---------- */

/* sqlapi.c */
extern Tuplestorestate *mc_srf_begin(FunctionCallInfo fcinfo, TupleDesc *tupdesc);

/* track.c: scenario checkpoints and probes walk the tracked groups */
typedef struct McGroupInfo
{
	uint32		group;
	MemoryContext ctx;			/* or MC_MALLOC_HEAP */
	int16		lib;
	bool		child_contexts; /* contexts the library created, not chunks */
	int64		live_bytes;
	int64		live_count;
	McLifetime	lifetime;
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];
} McGroupInfo;
typedef void (*McGroupVisitor) (const McGroupInfo *info, void *arg);
extern void mc_track_visit_groups(McGroupVisitor visit, void *arg);
extern void mc_track_group_fill(uint32 group, McViolation *v);
extern int64 mc_track_live_at(MemoryContext ctx, int lib, uintptr_t site);

/* shmemguard.c: guard bytes behind shared-memory allocations */
extern void mc_guards_request_shmem(void);
extern void mc_guards_shmem_startup(void);
extern int	mc_guards_check(void);
extern void mc_guards_report(TimestampTz since);
extern void mc_guards_window_begin(void);
extern void mc_guards_window_end(void);
extern void mc_guards_coverage(Tuplestorestate *tupstore, TupleDesc tupdesc);
extern const McGotTarget mc_guard_targets[];
extern const int mc_guard_ntargets;

/* dsmtrack.c: DSM segments foreign code maps */
extern void mc_dsm_request_shmem(void);
extern void mc_dsm_shmem_startup(void);
extern void mc_dsm_window_begin(void);
extern void mc_dsm_window_end(void);
extern const McGotTarget mc_dsm_targets[];
extern const int mc_dsm_ntargets;

/* ctxprobe.c: wrong_context_probe's watch on allocations (called by track.c) */
extern bool mc_probe_watching;
extern void mc_probe_note(MemoryContext ctx, int lib, uintptr_t *site, Size size,
						  const char *child_name);

/* resetstorm.c: poisoning and quarantine while context_reset_storm runs */
extern bool mc_storm_poisoning;
extern void mc_storm_poison(void *p, Size len);
extern void mc_storm_poisoned(MemoryContext ctx, const char *path, McLifetime life, int lib,
							  uintptr_t site, int64 bytes, int64 count, bool deleting);
extern bool mc_storm_quarantine(MemoryContext ctx, void (*real_delete) (MemoryContext));

/* worker.c: jobs a server restart interrupted become findings on the next call */
extern void mc_workers_collect_crashes(void);

#endif							/* PG_EXT_MEMCHECK_H */
