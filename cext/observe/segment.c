/*-------------------------------------------------------------------------
 *
 * segment.c
 *		Which code is running: a stack of "segments", each a stretch in
 *		which one foreign library's code runs, or a pause in which PostgreSQL
 *		(or pg_ext_memcheck) runs on its behalf.
 *
 * A hook layer, the function-manager hook or a callback trampoline opens a
 * segment before it calls foreign code and ends it when the call returns.
 * When foreign code calls back into one of our layers (its "prev" hook, or
 * standard_ExecutorRun through its patched GOT), or starts a nested
 * statement, the layer pauses the segment: PostgreSQL's own work there is
 * not charged to the library.  While a foreign segment runs, the memory-
 * context method tables carry our alloc wrapper (mcxtwrap.c); at all other
 * times they are PostgreSQL's own, so core code pays nothing.
 *
 * Errors unwind the stack: the layer PostgreSQL called to enter foreign code
 * restores the depth it found (PG_CATCH, entry/hooks.h), as do the
 * function-manager hook's abort event and subtransaction abort.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/proc.h"

#include "observe/observe.h"


bool		mc_active = false;
const McSegment *mc_seg = NULL;

McSegment	mc_seg_stack[MC_MAX_SEGMENTS];	/* read by the inline pause (observe.h) */
int			mc_seg_stack_depth = 0;
static int	overflow = 0;
int			mc_seg_depth_total = 0;	/* depth + overflow, read inline by the layers */
static uint32 call_counter = 0;
static uint32 libs_ran = 0;		/* bit per library whose code ran lately */
static int32 lib_units[32];		/* units of work each library ran in lately */
static uint32 lib_last_unit[32];	/* the newest of them */
static uint64 statement_seq = 0;
int			mc_exec_nesting = 0;	/* executor/utility depth, as pg_stat_statements counts it */

/*
 * The unit a hook's segment serves: one statement run per executor nesting
 * level (a statement's planner, ExecutorStart and ExecutorEnd entries share
 * it; the statements run inside it, by EXECUTE or SPI, have their own at
 * the next level).  A new one starts at every top-level statement, and at
 * a level whenever a run at that level ends.
 */
#define MC_MAX_EXEC_LEVELS 64
static uint32 exec_unit[MC_MAX_EXEC_LEVELS];
static bool statement_open = false;	/* a top-level statement started and has not ended */

/* the names entry/ gives its entry points, per kind */
static McEntryDescriber describers[MC_ENTRY_DIRECT + 1];

/*
 * A statement that enters foreign code many times (a function called per
 * row) keeps our allocation wrapper in place between the calls, until the
 * next statement: swapping it in and out at every call costs more than
 * the few allocations PostgreSQL makes in between.
 */
#define MC_STICKY_OPENS 64
static int	opens_this_statement = 0;
bool		mc_seg_sticky = false;

/*
 * After every push, pause and unwind: the running segment and whether the
 * allocation wrapper is needed.  On the path of every hook call: a few
 * loads and compares.
 */
static inline void
mc_seg_refresh(void)
{
	const McSegment *top = mc_seg_stack_depth > 0 ? &mc_seg_stack[mc_seg_stack_depth - 1] : NULL;

	mc_seg_depth_total = mc_seg_stack_depth + overflow;

	if (top != NULL && top->lib != MC_NO_LIB && mc_active &&
		(mc_mode == MC_MODE_ALL || mc_phase_measured((McPhase) top->phase)))
		mc_seg = top;
	else
		mc_seg = NULL;
	mc_mcxt_set_alloc_wrapped(mc_seg != NULL || mc_direct_depth > 0 || mc_seg_sticky);
}

bool
mc_phase_measured(McPhase phase)
{
	switch (mc_mode)
	{
		case MC_MODE_OFF:
			return false;
		case MC_MODE_PLANNER:
			return phase == MC_PHASE_PLANNER;
		case MC_MODE_EXECUTOR:
			return phase == MC_PHASE_EXECUTOR || phase == MC_PHASE_FUNCTION;
		default:
			return true;
	}
}

uint32
mc_seg_new_call(void)
{
	return ++call_counter;
}

/*
 * The call a direct allocation of lib belongs to when none of its entry
 * points is bracketed (code PostgreSQL entered through a pointer we could
 * not wrap): one per statement, so that such code is never taken for many
 * calls that each kept memory.
 */
uint32
mc_seg_direct_call(int lib)
{
	static uint32 call_of[MC_MAX_LIBS];
	static uint64 statement_of[MC_MAX_LIBS];

	if (lib < 0 || lib >= MC_MAX_LIBS)
		return mc_seg_new_call();
	if (call_of[lib] == 0 || statement_of[lib] != statement_seq)
	{
		call_of[lib] = mc_seg_new_call();
		statement_of[lib] = statement_seq;
	}
	return call_of[lib];
}

static inline uint32
mc_exec_unit(void)
{
	int			level = mc_exec_nesting;

	if (unlikely((unsigned) level >= MC_MAX_EXEC_LEVELS))
		level = level < 0 ? 0 : MC_MAX_EXEC_LEVELS - 1;

	if (exec_unit[level] == 0)
		exec_unit[level] = mc_seg_new_call();
	return exec_unit[level];
}

static uint32 xact_unit = 0;
#define MC_SUBXACT_UNITS 64
static SubTransactionId subxact_id[MC_SUBXACT_UNITS];
static uint32 subxact_unit[MC_SUBXACT_UNITS];

/* a transaction ended: the next transaction and its subtransactions are new units */
void
mc_seg_transaction_end(void)
{
	xact_unit = 0;
	memset(subxact_id, 0, sizeof(subxact_id));
}

/* the unit of the transaction in progress */
uint32
mc_seg_xact_unit(void)
{
	if (xact_unit == 0)
		xact_unit = mc_seg_new_call();
	return xact_unit;
}

/* the unit of subtransaction subid of the transaction in progress */
uint32
mc_seg_subxact_unit(SubTransactionId subid)
{
	int			slot = subid % MC_SUBXACT_UNITS;

	if (subxact_id[slot] != subid || subxact_unit[slot] == 0)
	{
		subxact_id[slot] = subid;
		subxact_unit[slot] = mc_seg_new_call();
	}
	return subxact_unit[slot];
}

/* a background worker's segment (at the bottom of the stack) serves a new loop */
void
mc_seg_set_bottom_unit(uint32 unit_id)
{
	if (mc_seg_stack_depth > 0 && mc_seg_stack[0].entry_kind == MC_ENTRY_BGWORKER)
		mc_seg_stack[0].unit_id = unit_id;
}

/* a statement run at the current nesting level ended (ExecutorEnd, ProcessUtility) */
void
mc_execution_end(void)
{
	int			level = Min(Max(mc_exec_nesting, 0), MC_MAX_EXEC_LEVELS - 1);

	exec_unit[level] = 0;
	if (level == 0)
		statement_open = false;
}

/* the unit an entry of this kind serves, when its opener does not say */
static inline void
mc_default_unit(McEntryKind kind, McUnit *unit, uint32 *unit_id)
{
	switch (kind)
	{
		case MC_ENTRY_HOOK:
			*unit = MC_UNIT_STATEMENT;
			*unit_id = mc_exec_unit();
			break;
		case MC_ENTRY_XACT_CALLBACK:
			*unit = MC_UNIT_TRANSACTION;
			*unit_id = mc_seg_xact_unit();
			break;
		default:
			*unit = MC_UNIT_CALL;
			*unit_id = mc_seg_new_call();	/* one per opening */
			break;
	}
}

static pg_attribute_always_inline void
mc_seg_push(int lib, McEntryKind kind, uint32 entry_id, McPhase phase, McUnit unit,
			uint32 unit_id)
{
	McSegment  *s;

	if (mc_seg_stack_depth >= MC_MAX_SEGMENTS)
	{
		if (overflow++ == 0)
			mc_record_gap(NULL, "nesting",
						  "foreign code nested deeper than pg_ext_memcheck follows; the deepest levels were not measured");
		mc_seg_depth_total = mc_seg_stack_depth + overflow;
		return;
	}
	s = &mc_seg_stack[mc_seg_stack_depth++];
	s->lib = (int16) lib;
	s->entry_kind = (uint8) kind;
	s->entry_id = entry_id;
	s->phase = (uint8) phase;
	if (lib != MC_NO_LIB && unit == MC_UNIT_NONE)
		mc_default_unit(kind, &unit, &unit_id);
	s->unit = (uint8) unit;
	s->unit_id = unit_id;
	if (lib >= 0 && lib < 32)
	{
		libs_ran |= (uint32) 1 << lib;
		/* unit ids only grow (mc_seg_new_call): a larger one is a unit not seen yet */
		if (unit_id > lib_last_unit[lib])
		{
			lib_units[lib]++;
			lib_last_unit[lib] = unit_id;
		}
	}
	if (lib == MC_NO_LIB)
	{
		mc_seg_refresh();
		return;
	}
	if (++opens_this_statement == MC_STICKY_OPENS)
		mc_seg_sticky = mc_active;
	/* mc_seg_refresh() for a library's segment just pushed (no overflow below the limit) */
	mc_seg_depth_total = mc_seg_stack_depth;
	if (mc_active && (mc_mode == MC_MODE_ALL || mc_phase_measured(phase)))
	{
		mc_seg = s;
		mc_mcxt_set_alloc_wrapped(true);
	}
	else
	{
		mc_seg = NULL;
		mc_mcxt_set_alloc_wrapped(mc_direct_depth > 0 || mc_seg_sticky);
	}
}

/* foreign library `lib` starts running (a hook, function or callback) */
void
mc_seg_open(int lib, McEntryKind kind, uint32 entry_id, McPhase phase)
{
	mc_seg_push(lib, kind, entry_id, phase, MC_UNIT_NONE, 0);
}

/* a hook's segment (entry/hooks.h): the statement run at this nesting level is its unit */
void
mc_seg_open_hook(int lib, uint32 hook_id, McPhase phase)
{
	mc_seg_push(lib, MC_ENTRY_HOOK, hook_id, phase, MC_UNIT_STATEMENT, mc_exec_unit());
}

/* the same, for an entry that knows the unit of work it serves */
void
mc_seg_open_unit(int lib, McEntryKind kind, uint32 entry_id, McPhase phase, McUnit unit,
				 uint32 unit_id)
{
	mc_seg_push(lib, kind, entry_id, phase, unit, unit_id);
}

/* a pause beyond the deepest level followed (mc_seg_pause, observe.h) */
void
mc_seg_pause_deep(void)
{
	mc_seg_push(MC_NO_LIB, MC_ENTRY_NONE, 0, MC_PHASE_OTHER, MC_UNIT_NONE, 0);
}

/* who allocates now: the running segment, or lib's direct calls (one unit per statement) */
void
mc_seg_who(int lib, McWho *who)
{
	const McSegment *s = mc_seg;

	if (s != NULL)
	{
		who->unit_id = s->unit_id;
		who->unit = s->unit;
		who->phase = s->phase;
		who->entry_kind = s->entry_kind;
		who->entry_id = s->entry_id;
	}
	else
	{
		who->unit_id = mc_seg_direct_call(lib);
		who->unit = MC_UNIT_STATEMENT;
		who->phase = MC_PHASE_OTHER;
		who->entry_kind = MC_ENTRY_DIRECT;
		who->entry_id = 0;
	}
}

/* the segment or pause opened last is over */
void
mc_seg_end(void)
{
	if (overflow > 0)
		overflow--;
	else if (mc_seg_stack_depth > 0)
		mc_seg_stack_depth--;
	mc_seg_refresh();
}

bool
mc_seg_top_is(McEntryKind kind, uint32 id)
{
	return overflow == 0 && mc_seg_stack_depth > 0 && mc_seg_stack[mc_seg_stack_depth - 1].entry_kind == kind &&
		mc_seg_stack[mc_seg_stack_depth - 1].entry_id == id;
}

bool
mc_seg_in_foreign(void)
{
	return mc_seg_stack_depth > 0 && mc_seg_stack[mc_seg_stack_depth - 1].lib != MC_NO_LIB;
}

/* the libraries whose code ran since the last reset (resource-leak attribution) */
uint32
mc_libs_ran(void)
{
	return libs_ran;
}

/* the units of work (statement runs, calls ...) lib ran in since the last reset */
int32
mc_lib_units_ran(int lib)
{
	return lib >= 0 && lib < 32 ? lib_units[lib] : 0;
}

void
mc_libs_ran_reset(void)
{
	libs_ran = 0;
	memset(lib_units, 0, sizeof(lib_units));
}

/* return to the depth a layer found when it started (also after an error) */
void
mc_seg_unwind(int to)
{
	if (to < 0)
		to = 0;
	if (to >= mc_seg_stack_depth + overflow)
		return;
	mc_seg_leave_to(to);
}

/* the same, from a layer leaving: 0 <= to < the depth (mc_layer_leave checked) */
void
mc_seg_leave_to(int to)
{
	if (likely(to < mc_seg_stack_depth))
	{
		mc_seg_stack_depth = to;
		overflow = 0;
	}
	else
		overflow = to - mc_seg_stack_depth;
	mc_seg_refresh();
}

/*
 * Measuring stops now (the mode was set off): safe from an assign hook, it
 * only drops what is tracked and puts PostgreSQL's allocator back.
 * Measuring starts at the next safe point, which can allocate.
 */
void
mc_deactivate(void)
{
	bool		was = mc_active;

	mc_active = false;
	mc_seg_sticky = false;
	if (was)
		mc_track_reset_all();
	mc_seg_refresh();
}

/* mode or process state changed: measuring on or off */
void
mc_refresh_active(void)
{
	bool		was = mc_active;

	if (mc_mode != MC_MODE_OFF && MyProc != NULL)
		mc_mcxt_init();
	mc_active = mc_mode != MC_MODE_OFF && MyProc != NULL && mc_ring_attached() &&
		mc_mcxt_ready();
	if (was && !mc_active)
		mc_track_reset_all();
	mc_seg_refresh();
}

/* a higher layer names the entry points of one kind (at start-up) */
void
mc_seg_register_describer(McEntryKind kind, McEntryDescriber describe)
{
	if (kind >= 0 && kind <= MC_ENTRY_DIRECT)
		describers[kind] = describe;
}

void
mc_entry_describe(uint8 kind, uint32 id, char *buf, size_t len)
{
	if (kind <= MC_ENTRY_DIRECT && describers[kind] != NULL && describers[kind] (id, buf, len))
		return;
	switch (kind)
	{
		case MC_ENTRY_HOOK:
			snprintf(buf, len, "hook");
			break;
		case MC_ENTRY_FUNCTION:
			snprintf(buf, len, "function %u", id);
			break;
		case MC_ENTRY_XACT_CALLBACK:
			snprintf(buf, len, "transaction callback");
			break;
		case MC_ENTRY_SUBXACT_CALLBACK:
			snprintf(buf, len, "subtransaction callback");
			break;
		case MC_ENTRY_DIRECT:
			snprintf(buf, len, "direct call");
			break;
		default:
			buf[0] = '\0';
	}
}

/*
 * A top-level statement starts: at its parse analysis, or at a utility
 * statement.  Its planning and execution (however late: the extended
 * protocol plans at Bind and executes at Execute) belong to it, until its
 * top-level ExecutorEnd or the end of the utility statement.
 */
void
mc_statement_start(void)
{
	statement_open = true;
	statement_seq++;
	exec_unit[0] = 0;
	opens_this_statement = 0;
	if (mc_seg_sticky)
	{
		mc_seg_sticky = false;
		mc_seg_refresh();
	}
}

/* the planner or ExecutorStart at top level: the statement parsed before, or a new one (a prepared statement) */
void
mc_statement_continue(void)
{
	if (!statement_open)
		mc_statement_start();
}

uint64
mc_statement_seq(void)
{
	return statement_seq;
}
