/*-------------------------------------------------------------------------
 *
 * thunks.c
 *		The entry points that are call thunks (platform/thunk.c): one per
 *		function of a foreign library that PostgreSQL calls through a
 *		pointer we handed it, with what the thunk stands for.
 *
 * functions.c hands PostgreSQL a thunk for every C function of a foreign
 * library it looks up (its SQL functions, type I/O, operators' and
 * aggregates' support, triggers, a background worker's main function);
 * routines.c puts thunks into the structs of callbacks a library hands it
 * (access methods, FDWs, custom scans).  Calling a thunk opens a segment of
 * the library (one call: one unit of work), runs the function with the
 * very same arguments, ends the segment and lets the thunk's owner look at
 * the result (a custom scan's plan and state hold callbacks too).  A
 * function gets one thunk however many pointers to it are handed out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "entry/hooks.h"

typedef struct McEntryThunk
{
	void	   *fn;				/* the library's function */
	int16		lib;
	uint8		entry_kind;		/* MC_ENTRY_FUNCTION or MC_ENTRY_ROUTINE */
	uint8		phase;
	uint8		post;			/* what the owner's leave step does, 0: nothing */
	const char *what;			/* "index access method" ..., or NULL */
	char		name[64];		/* "aminsert", "buggy_pg_ext_work" */
} McEntryThunk;

static McEntryThunk thunks[MC_NUM_THUNKS];

/* function -> thunk + 1: open addressing, twice the thunks */
#define MC_FN_SLOTS (MC_NUM_THUNKS * 2)
static int16 fn_slot[MC_FN_SLOTS];

static McThunkPost post_step = NULL;
static bool gap_noted = false;

/* the thunk standing for fn, made on first use; -1 when none is left (and a coverage gap says so) */
int
mc_entry_thunk(void *fn, int lib, McEntryKind kind, McPhase phase, const char *name,
			   const char *what, uint8 post)
{
	uint32		h = (uint32) (((uint64) (uintptr_t) fn * UINT64CONST(0x9E3779B97F4A7C15)) >> 40) % MC_FN_SLOTS;
	McEntryThunk *t;
	int			k;

	while (fn_slot[h] != 0)
	{
		if (thunks[fn_slot[h] - 1].fn == fn)
			return fn_slot[h] - 1;
		h = (h + 1) % MC_FN_SLOTS;
	}
	k = mc_thunk_make(fn);
	if (k < 0)
	{
		if (!gap_noted)
		{
			gap_noted = true;
			mc_record_gap(mc_lib_name(lib), "entry points",
						  mc_thunk_available() ?
						  "more functions and callbacks of foreign libraries were called than pg_ext_memcheck has call thunks for: the rest run unbracketed (their direct allocations count one call per statement)" :
						  "no call thunks on this platform: functions and callbacks of foreign libraries run unbracketed (their direct allocations count one call per statement)");
		}
		return -1;
	}
	fn_slot[h] = (int16) (k + 1);
	t = &thunks[k];
	t->fn = fn;
	t->lib = (int16) lib;
	t->entry_kind = (uint8) kind;
	t->phase = (uint8) phase;
	t->post = post;
	t->what = what;
	mc_strlcpy(t->name, name, sizeof(t->name));
	return k;
}

/* the thunk fn already is, or -1 */
int
mc_entry_thunk_of(const void *fn)
{
	return mc_thunk_of_address(fn);
}

/* a thunk's owner looks at what its callback returned (routines.c) */
void
mc_entry_thunk_post(McThunkPost post)
{
	post_step = post;
}

static int
mc_entry_thunk_enter(uint32 k)
{
	int			depth = mc_seg_depth();

	if (mc_active)
		mc_seg_open(thunks[k].lib, (McEntryKind) thunks[k].entry_kind, k, (McPhase) thunks[k].phase);
	return depth;
}

static uintptr_t
mc_entry_thunk_leave(uint32 k, uintptr_t ret, int depth)
{
	mc_layer_leave(depth);
	if (thunks[k].post != 0 && ret != 0 && post_step != NULL)
		return post_step(thunks[k].post, ret, thunks[k].lib);
	return ret;
}

/* "function buggy_pg_ext_work()", "aminsert (index access method)" */
static bool
mc_entry_thunk_describe(uint32 k, char *buf, size_t len)
{
	if (k >= MC_NUM_THUNKS || thunks[k].fn == NULL)
		return false;
	if (thunks[k].what != NULL)
		snprintf(buf, len, "%s (%s)", thunks[k].name, thunks[k].what);
	else
		snprintf(buf, len, "function %s()", thunks[k].name);
	return true;
}

void
mc_entry_thunks_init(void)
{
	mc_thunk_set_handlers(mc_entry_thunk_enter, mc_entry_thunk_leave);
	mc_seg_register_describer(MC_ENTRY_ROUTINE, mc_entry_thunk_describe);
	mc_seg_register_describer(MC_ENTRY_FUNCTION, mc_entry_thunk_describe);
}
