/*-------------------------------------------------------------------------
 *
 * base.h
 *		Layer 0 of the hook library: what every other layer may use.
 *
 * The layers of cext/, each a folder, each calling only the layers below
 * it (docs/architecture.md):
 *
 *	base/		the vocabularies, the settings, context utilities, the table
 *				of foreign libraries, the findings store and the shared ring
 *	platform/	machine-specific mechanisms: reading and patching a
 *				library's GOT
 *	observe/	who is running (segments), every allocation foreign code
 *				makes (method-table and GOT wrappers, the tracker)
 *	entry/		the ways into a foreign library: hook layers, fmgr,
 *				transaction callbacks
 *	scenarios/	repeating a workload, in this backend or in background
 *				workers
 *	checks/		one file per check that is not the tracker's own judgment
 *	api/		the SQL-callable functions
 *	pg_ext_memcheck.c	_PG_init: puts the layers together
 *
 * A lower layer that must tell a higher one something calls through a
 * listener the higher layer registered at start-up, never by name.
 *
 * This layer offers: the names of every shared vocabulary (vocab.c, the one
 * source of truth that reporter/vocab.py is tested against); the settings
 * (settings.c: GUC variables, who may write findings, changes under a
 * measurement); context utilities (ctxutil.c); the registry of foreign
 * libraries (foreign.c); findings (findings.c: one per bug, updated in
 * place, backend-local) and the shared ring they are published to
 * (ring.c); the set-returning-function helper of the SQL API (srf.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_BASE_H
#define PG_EXT_MEMCHECK_BASE_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/memnodes.h"
#include "utils/tuplestore.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

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
	MC_UNIT_STATEMENT,
	MC_UNIT_TRANSACTION,
	MC_UNIT_SUBTRANSACTION,
	MC_UNIT_LOOP
} McUnit;

/* ---------- vocab.c ---------- */

extern const char *mc_check_name(int check);
extern const char *mc_severity_name(int sev);
extern const char *mc_phase_name(int phase);
extern const char *mc_lifetime_name(int lifetime);
extern const char *mc_verdict_name(int verdict);
extern const char *mc_unit_name(int unit);
extern const char *mc_mode_name(int mode);
#define MC_NUM_SCENARIOS 7
extern const char *mc_scenario_name(int scenario);

/* ---------- settings.c: the GUCs and what watches them ---------- */

extern int	mc_mode;
extern int	mc_min_leak_bytes;
extern int	mc_warning_bytes;
extern int	mc_error_bytes;
extern int	mc_ring_capacity;
extern int	mc_max_tracked;
extern int	mc_bloat_min_bytes;
extern bool mc_record_all_sessions;

extern void mc_settings_define(void);
/* a higher layer that must act when measuring is switched on or off */
typedef void (*McModeListener) (bool on);
extern void mc_settings_on_mode_change(McModeListener listener);
extern void mc_settings_window(bool active);
extern void mc_settings_note_window_reset(void);
extern bool mc_settings_dirty;

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

/* ---------- ctxutil.c ---------- */

/* the pseudo-context of memory outside every context (malloc) */
#define MC_MALLOC_HEAP ((MemoryContext) (uintptr_t) 1)

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
extern const char *mc_foreign_overflow(void);
extern bool mc_foreign_new;
extern bool mc_foreign_changed(void);
extern int	mc_lib_of_address(const void *addr);
extern uintptr_t mc_foreign_frame(int *lib);
extern int	mc_lib_by_name(const char *name);
extern const char *mc_lib_name(int lib);
extern uintptr_t mc_lib_base(int lib);
extern int	mc_lib_count(void);
extern bool mc_is_core_address(const void *addr);
extern uintptr_t mc_core_base(void);
extern bool mc_core_known(void);
extern bool mc_module_is_foreign(const char *file_name);

/* ---------- findings.c ---------- */

typedef struct McFindingKey
{
	uint8		check;
	uint8		lifetime;
	int16		lib;
	const char *path;			/* context path, or resource name */
} McFindingKey;

extern McViolation *mc_finding_get(const McFindingKey *key, bool *created);
extern McViolation *mc_finding_for(McCheck check, McLifetime lifetime, int lib,
								   const char *path, bool *created);
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
extern void mc_note_foreign_overflow(void);

/* ---------- ring.c: the shared ring ---------- */

extern Size mc_ring_shmem_size(void);
extern void mc_ring_request_shmem(void);
extern void mc_ring_shmem_startup(void);
extern bool mc_ring_attached(void);
extern bool mc_ring_record(McViolation *v);
extern void mc_ring_mark_flushed(uint64 upto);
/* only privileged sessions (superuser, pg_monitor) write the ring */
extern void mc_check_privileged(void);
extern void mc_ring_trust_process(void);
extern bool mc_session_privileged(void);

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

/* ---------- srf.c ---------- */

extern Tuplestorestate *mc_srf_begin(FunctionCallInfo fcinfo, TupleDesc *tupdesc);

#pragma GCC visibility pop

#endif							/* PG_EXT_MEMCHECK_BASE_H */
