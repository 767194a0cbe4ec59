/*-------------------------------------------------------------------------
 *
 * pg_ext_memcheck.h
 *		Declarations shared by the files of the pg_ext_memcheck hook library.
 *
 * The library measures the memory-context tree around the planner, executor
 * and utility phases and records what other libraries' hooks left behind.
 * See hooks.c for the measuring scheme.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_H
#define PG_EXT_MEMCHECK_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/memnodes.h"

/* GUC values */
typedef enum McMode
{
	MC_MODE_OFF,
	MC_MODE_PLANNER,
	MC_MODE_EXECUTOR,
	MC_MODE_ALL
} McMode;

extern int	mc_mode;
extern int	mc_min_leak_bytes;
extern int	mc_warning_bytes;
extern int	mc_error_bytes;
extern int	mc_ring_capacity;

/* What a violation is about */
typedef enum McCheck
{
	MC_CHECK_CONTEXT_LEAK,
	MC_CHECK_WRONG_CTX_ALLOC,
	MC_CHECK_RESOURCE_LEAK
} McCheck;

typedef enum McSeverity
{
	MC_SEV_INFO,
	MC_SEV_WARNING,
	MC_SEV_ERROR
} McSeverity;

typedef enum McPhase
{
	MC_PHASE_PLANNER,
	MC_PHASE_EXECUTOR,
	MC_PHASE_UTILITY,
	MC_PHASE_SCENARIO,
	MC_PHASE_COMMIT
} McPhase;

#define MC_NAME_LEN		64
#define MC_PATH_LEN		256
#define MC_LIB_LEN		64
#define MC_DETAIL_LEN	384
#define MC_QUERY_LEN	256

/* One violation, as recorded in the ring and shown by SQL */
typedef struct McViolation
{
	uint64		seq;
	TimestampTz ts;
	int32		pid;
	uint8		check;
	uint8		severity;
	uint8		phase;
	int16		depth;
	int16		nest_level;
	int64		used_before;
	int64		used_after;
	int64		used_delta;
	int64		alloc_delta;
	double		bytes_per_iter;	/* < 0: not measured over repetitions */
	int64		iterations;
	char		context_name[MC_NAME_LEN];
	char		context_path[MC_PATH_LEN];
	char		source_lib[MC_LIB_LEN];
	char		detail[MC_DETAIL_LEN];
	char		query[MC_QUERY_LEN];
} McViolation;

/* ring.c */
extern Size mc_ring_shmem_size(void);
extern void mc_ring_request_shmem(void);
extern void mc_ring_shmem_startup(void);
extern bool mc_ring_attached(void);
extern void mc_ring_record(McViolation *v);
extern void mc_ring_mark_flushed(uint64 upto);
typedef struct McRingStatus
{
	int			capacity;
	uint64		base_seq;
	uint64		next_seq;
	uint64		flushed_upto;
	uint64		written;
	uint64		dropped;
} McRingStatus;
extern void mc_ring_status(McRingStatus *st);
extern int	mc_ring_copy_pending(uint64 start, uint64 stop, McViolation *out,
								 int max, uint64 *next);

/* ctxutil.c */
extern void mc_ctxutil_init(void);
extern Size mc_own_used(MemoryContext ctx);
extern Size mc_subtree_used(MemoryContext ctx);
extern const char *mc_context_display_name(MemoryContext ctx);
extern int	mc_context_depth(MemoryContext ctx);
extern void mc_context_path(MemoryContext ctx, char *buf, size_t len);
extern bool mc_foreign_lib_of(const void *addr, char *buf, size_t len);
extern bool mc_is_global_context(MemoryContext ctx);
extern bool mc_child_of(MemoryContext parent, MemoryContext child);
extern void mc_strlcpy(char *dst, const char *src, size_t len);

/* checks.c */
extern McSeverity mc_severity_for(int64 bytes);
extern void mc_fill_context(McViolation *v, MemoryContext ctx);
extern void mc_emit(McViolation *v);
extern const char *mc_check_name(int check);
extern const char *mc_severity_name(int sev);
extern const char *mc_phase_name(int phase);

/* hooks.c */
extern void mc_install_inner_hooks(void);
extern void mc_install_outer_hooks(void);
extern int	mc_nest_level(void);
extern const char *mc_last_statement_libs(void);
extern const char *mc_statement_query(void);

/* accum.c */
extern void mc_accum_reset(void);
extern void mc_accum_add(MemoryContext ctx, int64 before, int64 after,
						 const char *lib, int phase, int nest_level,
						 uint64 frame_serial);
extern void mc_accum_new_child(MemoryContext parent, MemoryContext child,
							   const char *lib, int phase, int nest_level);
extern void mc_accum_evaluate(void);
extern const char *mc_accum_lib_for(MemoryContext ctx);

/* reslog.c */
extern void mc_install_emit_log_hook(void);

#endif							/* PG_EXT_MEMCHECK_H */
