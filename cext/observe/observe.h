/*-------------------------------------------------------------------------
 *
 * observe.h
 *		Layer 2 of the hook library (base/base.h lists the layers): what
 *		foreign code does to memory, whoever entered it.
 *
 * This layer offers: the segment stack (segment.c: which library's code is
 * running, opened and ended by entry/); the memory-context method tables
 * with our wrappers while foreign code runs (mcxtwrap.c); the wrappers a
 * foreign library's GOT is pointed at for its direct calls to allocators
 * and libc (gotwrap.c, with the targets higher layers add); and the
 * tracker (track.c), which keeps every foreign allocation until it is
 * freed and judges what is left where memory should have been given back.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_OBSERVE_H
#define PG_EXT_MEMCHECK_OBSERVE_H

#include "platform/platform.h"

/* what follows is internal to the library: no PLT or GOT indirection for it */
#pragma GCC visibility push(hidden)

/* ---------- segment.c: when foreign code runs ---------- */

/* how foreign code was entered */
typedef enum McEntryKind
{
	MC_ENTRY_NONE,
	MC_ENTRY_HOOK,				/* id: McHookId */
	MC_ENTRY_FUNCTION,			/* id: function OID */
	MC_ENTRY_XACT_CALLBACK,
	MC_ENTRY_SUBXACT_CALLBACK,
	MC_ENTRY_ROUTINE,			/* id: call thunk (entry/routines.c) */
	MC_ENTRY_BGWORKER,			/* a background worker's own loop */
	MC_ENTRY_DIRECT				/* a direct call from code entered elsewhere */
} McEntryKind;

typedef struct McSegment
{
	int16		lib;			/* MC_NO_LIB: core work (a pause) */
	uint8		entry_kind;
	uint8		phase;
	uint32		entry_id;
	uint32		unit_id;		/* the unit of work it serves (below) */
	uint8		unit;			/* McUnit: call, statement, transaction ... */
} McSegment;

/*
 * Who allocates: the facts the tracker keeps with an allocation.  A rate is
 * given per unit of work, and the unit is the one a user means: one call of
 * the library's function (a SQL function, an access-method callback), one
 * statement run (a hook: its planner, ExecutorStart and ExecutorEnd entries
 * of one statement are one unit; a statement run by EXECUTE or SPI is one
 * of its own), one subtransaction (a subtransaction callback), one
 * transaction, one loop of a background worker between two waits.
 */
typedef struct McWho
{
	uint32		unit_id;
	uint8		unit;
	uint8		phase;
	uint8		entry_kind;
	uint32		entry_id;
} McWho;

/* the running segment's facts, or those of lib's direct calls outside every segment */
extern void mc_seg_who(int lib, McWho *who);

extern bool mc_active;			/* measuring in this backend */
extern const McSegment *mc_seg;	/* the running segment, or NULL */

extern void mc_seg_open(int lib, McEntryKind kind, uint32 entry_id, McPhase phase);
extern void mc_seg_open_hook(int lib, uint32 hook_id, McPhase phase);
/* PostgreSQL or pg_ext_memcheck runs on behalf of the running segment: see below */
static inline void mc_seg_pause(void);
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
extern int32 mc_lib_units_ran(int lib);
extern void mc_seg_unwind(int depth);
extern void mc_seg_leave_to(int depth);
extern uint32 mc_seg_new_call(void);
extern uint32 mc_seg_direct_call(int lib);
extern bool mc_phase_measured(McPhase phase);
/* entering code of ours (a hook layer, a wrapper); returns the segment depth to restore */
static inline int
mc_layer_enter(void)
{
	int			depth = mc_seg_depth();

	if (mc_seg != NULL)
		mc_seg_pause();
	return depth;
}

/* leaving it: back to that depth (a compare when nothing was pushed) */
static inline void
mc_layer_leave(int depth)
{
	if (depth < mc_seg_depth())
		mc_seg_leave_to(depth);
}

extern void mc_entry_describe(uint8 kind, uint32 id, char *buf, size_t len);
/* entry/ names its entry points: "planner", "function f()" */
typedef bool (*McEntryDescriber) (uint32 id, char *buf, size_t len);
extern void mc_seg_register_describer(McEntryKind kind, McEntryDescriber describe);
/* top-level statements, counted by the executor and utility layers */
extern void mc_statement_start(void);
extern void mc_statement_continue(void);
extern void mc_execution_end(void);
extern void mc_seg_transaction_end(void);
extern void mc_seg_set_bottom_unit(uint32 unit_id);
extern uint32 mc_seg_xact_unit(void);
extern uint32 mc_seg_subxact_unit(SubTransactionId subid);
extern void mc_seg_open_unit(int lib, McEntryKind kind, uint32 entry_id, McPhase phase,
							 McUnit unit, uint32 unit_id);
extern uint64 mc_statement_seq(void);
extern int	mc_exec_nesting;
extern void mc_refresh_active(void);
extern void mc_deactivate(void);

/* ---------- gotwrap.c ---------- */

extern void mc_gotwrap_patch_all(void);
extern void mc_gotwrap_patch_core(void);
extern void mc_gotwrap_set_hot(bool on);
extern void mc_gotwrap_add_core_target(const McGotTarget *target);
/* what higher layers want a foreign library's calls to reach (at start-up) */
extern void mc_gotwrap_add_targets(const McGotTarget *targets, int ntargets);

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
extern int16 mc_direct_lib;	/* MC_LIB_UNKNOWN until it is needed */
#define MC_LIB_UNKNOWN (-2)

/*
 * The segment stack (segment.c), read here so that a pause, pushed at every
 * call from foreign code back into PostgreSQL, is a few stores.
 */
#define MC_MAX_SEGMENTS 128		/* nesting deeper is not measured (and said so) */
extern McSegment mc_seg_stack[MC_MAX_SEGMENTS];
extern int	mc_seg_stack_depth;
extern bool mc_seg_sticky;
extern void mc_seg_pause_deep(void);

static inline void
mc_seg_pause(void)
{
	McSegment  *s;

	if (unlikely(mc_seg_stack_depth >= MC_MAX_SEGMENTS))
	{
		mc_seg_pause_deep();
		return;
	}
	/* what is read of a pause: that it is no library's, and no entry's (mc_seg_top_is) */
	s = &mc_seg_stack[mc_seg_stack_depth++];
	s->lib = MC_NO_LIB;
	s->entry_kind = MC_ENTRY_NONE;
	mc_seg_depth_total = mc_seg_stack_depth;	/* no overflow below the limit */
	mc_seg = NULL;
	mc_mcxt_set_alloc_wrapped(mc_direct_depth > 0 || mc_seg_sticky);
}

/* ---------- track.c ---------- */

extern void mc_track_alloc(MemoryContext ctx, void *p, Size size, int lib,
						   uintptr_t site, const McWho *who);
extern void mc_track_free(void *p);
extern void mc_track_realloc(void *oldp, void *newp, Size newsize);
extern void mc_track_context_created(MemoryContext ctx, int lib, uintptr_t site);
extern bool mc_track_context_dying(MemoryContext ctx, bool deleting);
/*
 * One-byte presence counters of tracked chunks and of recorded contexts,
 * read inline on every pfree, reset and delete while anything is tracked.
 */
#define MC_HINT_BITS 16
extern uint8 mc_chunk_hint[1 << MC_HINT_BITS];
extern uint8 mc_ctx_hint[1 << MC_HINT_BITS];

static inline uint32
mc_hint_slot(const void *p)
{
	return (uint32) (((uint64) ((uintptr_t) p >> 3) * UINT64CONST(0x9E3779B97F4A7C15)) >> (64 - MC_HINT_BITS));
}

/* could p be a tracked chunk? */
static inline bool
mc_track_maybe_tracked(const void *p)
{
	return mc_chunk_hint[mc_hint_slot(p)] != 0;
}

/* could ctx hold tracked memory, or be a context foreign code created? */
static inline bool
mc_track_maybe_context(MemoryContext ctx)
{
	return mc_ctx_hint[mc_hint_slot(ctx)] != 0;
}
extern bool mc_track_has_contexts(void);
extern void mc_track_transaction_end(bool commit);
extern void mc_track_judge(bool at_iteration);
extern void mc_track_judge_unit(McUnit interval_unit);
extern void mc_track_judge_if_pending(void);
extern void mc_track_reset_all(void);
extern void mc_track_series_reset(void);
extern void mc_track_foreach_held(void (*cb) (const char *path, int64 bytes, void *arg),
								  void *arg);
extern int64 mc_track_chunks(void);
extern int64 mc_track_untracked(void);
extern bool mc_track_last_freed(const void *near, int *lib, uintptr_t *site);
extern int	mc_explicit_cleanup;	/* > 0 while a library's own reset or delete runs */
extern int16 mc_cleanup_lib;		/* ... and which library's */
extern void mc_track_context_moved(MemoryContext ctx);
extern void mc_track_abort(bool sub);
extern void mc_track_abort_over(void);

/*
 * What checks want to hear from the tracker (checks/ fills it at start-up):
 * every allocation while `watching` (wrong_context_probe), and every
 * tracked chunk of a context that is reset or deleted while `poisoning`
 * (context_reset_storm), which may keep a deleted context from reuse.
 */
typedef struct McTrackListeners
{
	bool		watching;
	void		(*alloc_note) (MemoryContext ctx, int lib, uintptr_t *site, Size size,
							   const char *child_name);
	bool		poisoning;
	void		(*poison) (void *p, Size len);
	void		(*poisoned) (MemoryContext ctx, const char *path, McLifetime life, int lib,
							 uintptr_t site, int64 bytes, int64 count, bool deleting);
	bool		(*quarantine) (MemoryContext ctx, void (*real_delete) (MemoryContext));
} McTrackListeners;

extern McTrackListeners mc_track_listeners;

/* churn mode (track.c): a context reset after every unit of work is only counted */
extern MemoryContext mc_churn_ctx;
extern uint32 mc_churn_units;
extern uint32 mc_churn_last_unit;

static inline void
mc_churn_note(uint32 unit_id)
{
	if (unit_id != mc_churn_last_unit)
	{
		mc_churn_units++;
		mc_churn_last_unit = unit_id;
	}
}

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

#pragma GCC visibility pop

#endif							/* PG_EXT_MEMCHECK_OBSERVE_H */
