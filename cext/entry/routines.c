/*-------------------------------------------------------------------------
 *
 * routines.c
 *		Index and table access methods, foreign-data wrappers, table-sample
 *		methods and custom scans: the callbacks a foreign library hands
 *		PostgreSQL in a struct, each call of which is one entry into it.
 *
 * PostgreSQL gets the struct from the library's handler function (an SQL-
 * callable C function returning index_am_handler, table_am_handler,
 * fdw_handler or tsm_handler: fmgrhook.c lets us see its result), or from a
 * custom path the library adds in its set_rel_pathlist or set_join_pathlist
 * hook, and then calls the members directly: ambuild, aminsert, amgettuple,
 * IterateForeignScan, ExecCustomScan ... no hook sees those calls.  Every
 * member that points into the library's code is replaced by a call thunk
 * (platform/thunk.c) whose handlers open a segment for the library, named
 * after the member ("aminsert"), and close it when the callback returns.
 * So one callback call is one call of the library, and what it allocates,
 * directly or through PostgreSQL (the per-tuple build callback that ambuild
 * passes to the table scan runs inside ambuild's segment), is measured like
 * the work of any other entry point.
 *
 * A struct PostgreSQL frees or copies (IndexAmRoutine, FdwRoutine,
 * TsmRoutine: palloc'd by the handler) is changed in place; one the library
 * keeps in its own static data (a TableAmRoutine, custom-scan methods) is
 * copied once into malloc'd memory that lives as long as the backend, and
 * the copy is what PostgreSQL gets from then on.  Members that point
 * elsewhere (PostgreSQL's own functions, names) are left alone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>

#include "access/amapi.h"
#include "access/tableam.h"
#include "access/tsmapi.h"
#include "catalog/pg_type.h"
#include "foreign/fdwapi.h"
#include "nodes/extensible.h"
#include "nodes/pathnodes.h"

#include "entry/hooks.h"

/* what a thunk's leave handler does with the callback's result */
typedef enum McRoutinePost
{
	MC_POST_NONE,
	MC_POST_CUSTOM_PLAN,		/* a CustomScan: wrap its methods */
	MC_POST_CUSTOM_STATE		/* a CustomScanState: wrap its methods */
} McRoutinePost;

/* a member's name and phase, by its offset in the struct */
typedef struct McMember
{
	Size		offset;
	const char *name;
	McPhase		phase;
} McMember;

#define MEMBER(type, field, phase) {offsetof(type, field), #field, phase}
#define EXEC MC_PHASE_EXECUTOR
#define PLAN MC_PHASE_PLANNER
#define UTIL MC_PHASE_UTILITY

static const McMember index_am_members[] = {
	MEMBER(IndexAmRoutine, ambuild, UTIL),
	MEMBER(IndexAmRoutine, ambuildempty, UTIL),
	MEMBER(IndexAmRoutine, aminsert, EXEC),
#if PG_VERSION_NUM >= 170000
	MEMBER(IndexAmRoutine, aminsertcleanup, EXEC),
#endif
	MEMBER(IndexAmRoutine, ambulkdelete, UTIL),
	MEMBER(IndexAmRoutine, amvacuumcleanup, UTIL),
	MEMBER(IndexAmRoutine, amcanreturn, PLAN),
	MEMBER(IndexAmRoutine, amcostestimate, PLAN),
	MEMBER(IndexAmRoutine, amoptions, UTIL),
	MEMBER(IndexAmRoutine, amproperty, EXEC),
	MEMBER(IndexAmRoutine, ambuildphasename, UTIL),
	MEMBER(IndexAmRoutine, amvalidate, UTIL),
#if PG_VERSION_NUM >= 140000
	MEMBER(IndexAmRoutine, amadjustmembers, UTIL),
#endif
	MEMBER(IndexAmRoutine, ambeginscan, EXEC),
	MEMBER(IndexAmRoutine, amrescan, EXEC),
	MEMBER(IndexAmRoutine, amgettuple, EXEC),
	MEMBER(IndexAmRoutine, amgetbitmap, EXEC),
	MEMBER(IndexAmRoutine, amendscan, EXEC),
	MEMBER(IndexAmRoutine, ammarkpos, EXEC),
	MEMBER(IndexAmRoutine, amrestrpos, EXEC),
	MEMBER(IndexAmRoutine, amestimateparallelscan, PLAN),
	MEMBER(IndexAmRoutine, aminitparallelscan, EXEC),
	MEMBER(IndexAmRoutine, amparallelrescan, EXEC),
};

static const McMember fdw_members[] = {
	MEMBER(FdwRoutine, GetForeignRelSize, PLAN),
	MEMBER(FdwRoutine, GetForeignPaths, PLAN),
	MEMBER(FdwRoutine, GetForeignPlan, PLAN),
	MEMBER(FdwRoutine, BeginForeignScan, EXEC),
	MEMBER(FdwRoutine, IterateForeignScan, EXEC),
	MEMBER(FdwRoutine, ReScanForeignScan, EXEC),
	MEMBER(FdwRoutine, EndForeignScan, EXEC),
	MEMBER(FdwRoutine, GetForeignJoinPaths, PLAN),
	MEMBER(FdwRoutine, GetForeignUpperPaths, PLAN),
	MEMBER(FdwRoutine, AddForeignUpdateTargets, PLAN),
	MEMBER(FdwRoutine, PlanForeignModify, PLAN),
	MEMBER(FdwRoutine, BeginForeignModify, EXEC),
	MEMBER(FdwRoutine, ExecForeignInsert, EXEC),
	MEMBER(FdwRoutine, ExecForeignUpdate, EXEC),
	MEMBER(FdwRoutine, ExecForeignDelete, EXEC),
	MEMBER(FdwRoutine, EndForeignModify, EXEC),
	MEMBER(FdwRoutine, BeginForeignInsert, EXEC),
	MEMBER(FdwRoutine, EndForeignInsert, EXEC),
	MEMBER(FdwRoutine, IsForeignRelUpdatable, PLAN),
	MEMBER(FdwRoutine, ExplainForeignScan, EXEC),
	MEMBER(FdwRoutine, AnalyzeForeignTable, UTIL),
	MEMBER(FdwRoutine, ImportForeignSchema, UTIL),
};

static const McMember tsm_members[] = {
	MEMBER(TsmRoutine, SampleScanGetSampleSize, PLAN),
	MEMBER(TsmRoutine, InitSampleScan, EXEC),
	MEMBER(TsmRoutine, BeginSampleScan, EXEC),
	MEMBER(TsmRoutine, NextSampleBlock, EXEC),
	MEMBER(TsmRoutine, NextSampleTuple, EXEC),
	MEMBER(TsmRoutine, EndSampleScan, EXEC),
};

static const McMember table_am_members[] = {
	MEMBER(TableAmRoutine, scan_begin, EXEC),
	MEMBER(TableAmRoutine, scan_end, EXEC),
	MEMBER(TableAmRoutine, scan_rescan, EXEC),
	MEMBER(TableAmRoutine, scan_getnextslot, EXEC),
	MEMBER(TableAmRoutine, tuple_insert, EXEC),
	MEMBER(TableAmRoutine, multi_insert, EXEC),
	MEMBER(TableAmRoutine, tuple_delete, EXEC),
	MEMBER(TableAmRoutine, tuple_update, EXEC),
	MEMBER(TableAmRoutine, index_fetch_begin, EXEC),
	MEMBER(TableAmRoutine, index_fetch_tuple, EXEC),
	MEMBER(TableAmRoutine, index_fetch_end, EXEC),
	MEMBER(TableAmRoutine, index_build_range_scan, UTIL),
	MEMBER(TableAmRoutine, relation_estimate_size, PLAN),
};

static const McMember custom_path_members[] = {
	MEMBER(CustomPathMethods, PlanCustomPath, PLAN),
};

static const McMember custom_scan_members[] = {
	MEMBER(CustomScanMethods, CreateCustomScanState, EXEC),
};

static const McMember custom_exec_members[] = {
	MEMBER(CustomExecMethods, BeginCustomScan, EXEC),
	MEMBER(CustomExecMethods, ExecCustomScan, EXEC),
	MEMBER(CustomExecMethods, EndCustomScan, EXEC),
	MEMBER(CustomExecMethods, ReScanCustomScan, EXEC),
	MEMBER(CustomExecMethods, MarkPosCustomScan, EXEC),
	MEMBER(CustomExecMethods, RestrPosCustomScan, EXEC),
	MEMBER(CustomExecMethods, ExplainCustomScan, EXEC),
};

/* one kind of struct: its size, where names sit, which members are not code */
typedef struct McRoutineKind
{
	const char *what;
	Size		size;
	const McMember *members;
	int			nmembers;
	Size		skip_offset;	/* a name (CustomName), or (Size) -1 */
	bool		in_place;		/* palloc'd for the caller: change it */
} McRoutineKind;

#define KIND(what, type, members, skip, in_place) \
	{what, sizeof(type), members, lengthof(members), skip, in_place}

static const McRoutineKind kinds[] = {
	[MC_ROUTINE_INDEX_AM] = KIND("index access method", IndexAmRoutine, index_am_members, (Size) -1, true),
	[MC_ROUTINE_TABLE_AM] = KIND("table access method", TableAmRoutine, table_am_members, (Size) -1, false),
	[MC_ROUTINE_FDW] = KIND("foreign-data wrapper", FdwRoutine, fdw_members, (Size) -1, true),
	[MC_ROUTINE_TSM] = KIND("table-sample method", TsmRoutine, tsm_members, (Size) -1, true),
	[MC_ROUTINE_CUSTOM_PATH] = KIND("custom path", CustomPathMethods, custom_path_members,
									offsetof(CustomPathMethods, CustomName), false),
	[MC_ROUTINE_CUSTOM_SCAN] = KIND("custom scan", CustomScanMethods, custom_scan_members,
									offsetof(CustomScanMethods, CustomName), false),
	[MC_ROUTINE_CUSTOM_EXEC] = KIND("custom scan", CustomExecMethods, custom_exec_members,
									offsetof(CustomExecMethods, CustomName), false),
};

/* static structs copied once: original -> copy */
#define MC_MAX_COPIES 256
static const void *copy_orig[MC_MAX_COPIES];
static void *copy_new[MC_MAX_COPIES];
static int	ncopies = 0;

static bool gap_noted = false;

static void
mc_routines_gap(int lib, const char *what)
{
	char		detail[256];

	if (gap_noted)
		return;
	gap_noted = true;
	snprintf(detail, sizeof(detail),
			 "some callbacks of %s's %s run unbracketed (no call thunk for them): what they allocate through PostgreSQL is not seen, and their direct allocations count one call per statement",
			 lib != MC_NO_LIB ? mc_lib_name(lib) : "a library", what);
	mc_record_gap(lib != MC_NO_LIB ? mc_lib_name(lib) : NULL, "routine callbacks", detail);
}

static const McMember *
mc_member_at(const McRoutineKind *kind, Size offset)
{
	int			i;

	for (i = 0; i < kind->nmembers; i++)
		if (kind->members[i].offset == offset)
			return &kind->members[i];
	return NULL;
}

/* the thunk standing for the member at offset of a struct of this kind, or -1 */
static int
mc_member_thunk(void *fn, int lib, const McRoutineKind *kind, Size offset, McRoutinePost post)
{
	const McMember *m = mc_member_at(kind, offset);
	char		name[48];

	if (m != NULL)
		mc_strlcpy(name, m->name, sizeof(name));
	else
		snprintf(name, sizeof(name), "callback +%zu", offset);
	return mc_entry_thunk(fn, lib, MC_ENTRY_ROUTINE, m ? m->phase : MC_PHASE_EXECUTOR, name,
						  kind->what, (uint8) post);
}

/* what PlanCustomPath and CreateCustomScanState return holds methods to wrap too */
static McRoutinePost
mc_post_of(McRoutineKind const *kind, Size offset)
{
	if (kind == &kinds[MC_ROUTINE_CUSTOM_PATH] && offset == offsetof(CustomPathMethods, PlanCustomPath))
		return MC_POST_CUSTOM_PLAN;
	if (kind == &kinds[MC_ROUTINE_CUSTOM_SCAN] &&
		offset == offsetof(CustomScanMethods, CreateCustomScanState))
		return MC_POST_CUSTOM_STATE;
	return MC_POST_NONE;
}

/* replace every member of r that is the library's code by its thunk; false if one could not be */
static bool
mc_wrap_members(void *r, const McRoutineKind *kind, int lib)
{
	Size		off;
	bool		complete = true;

	for (off = 0; off + sizeof(void *) <= kind->size; off += sizeof(void *))
	{
		void	  **slot = (void **) ((char *) r + off);
		int			k;

		if (off == kind->skip_offset || *slot == NULL || mc_entry_thunk_of(*slot) >= 0 ||
			mc_lib_of_address(*slot) != lib)
			continue;
		k = mc_member_thunk(*slot, lib, kind, off, mc_post_of(kind, off));
		if (k < 0)
		{
			complete = false;
			continue;
		}
		*slot = mc_thunk_address(k);
	}
	return complete;
}

/* a struct in the library's own data: its wrapped copy, made once */
static void *
mc_wrapped_copy(const void *orig, const McRoutineKind *kind, int lib)
{
	void	   *copy;
	int			i;

	for (i = 0; i < ncopies; i++)
		if (copy_orig[i] == orig)
			return copy_new[i];
	if (ncopies >= MC_MAX_COPIES || (copy = malloc(kind->size)) == NULL)
		return NULL;
	memcpy(copy, orig, kind->size);
	if (!mc_wrap_members(copy, kind, lib))
		mc_routines_gap(lib, kind->what);
	copy_orig[ncopies] = orig;
	copy_new[ncopies] = copy;
	ncopies++;
	return copy;
}

/* does p lie in a loaded object's image (static data), rather than the heap? */
static bool
mc_in_image(const void *p)
{
	Dl_info		info;

	return dladdr(p, &info) != 0;
}

/*
 * The struct a handler function of `lib` returned, or one PostgreSQL got
 * from a custom path: what PostgreSQL should use instead (the same pointer
 * when it was changed in place).
 */
void *
mc_routines_wrap(McRoutineKindId which, void *routine, int lib)
{
	const McRoutineKind *kind = &kinds[which];
	void	   *copy;

	if (routine == NULL || lib == MC_NO_LIB)
		return routine;
	if (!mc_thunk_available())
	{
		mc_routines_gap(lib, kind->what);
		return routine;
	}
	if (kind->in_place && !mc_in_image(routine))
	{
		if (!mc_wrap_members(routine, kind, lib))
			mc_routines_gap(lib, kind->what);
		return routine;
	}
	copy = mc_wrapped_copy(routine, kind, lib);
	if (copy == NULL)
	{
		mc_routines_gap(lib, kind->what);
		return routine;
	}
	return copy;
}

/* the custom paths a library's hook just added to rel: their methods wrapped */
void
mc_routines_custom_paths(RelOptInfo *rel)
{
	List	   *lists[2];
	int			i;

	if (rel == NULL)
		return;
	lists[0] = rel->pathlist;
	lists[1] = rel->partial_pathlist;
	for (i = 0; i < 2; i++)
	{
		ListCell   *lc;

		foreach(lc, lists[i])
		{
			Path	   *path = (Path *) lfirst(lc);
			CustomPath *cpath;
			int			lib;

			if (!IsA(path, CustomPath))
				continue;
			cpath = (CustomPath *) path;
			if (cpath->methods == NULL || mc_entry_thunk_of(cpath->methods->PlanCustomPath) >= 0)
				continue;
			lib = mc_lib_of_address(cpath->methods->PlanCustomPath);
			if (lib != MC_NO_LIB)
				cpath->methods = mc_routines_wrap(MC_ROUTINE_CUSTOM_PATH, (void *) cpath->methods, lib);
		}
	}
}

/* ---------- what a thunk's callback returned ---------- */

/* PlanCustomPath's plan and CreateCustomScanState's state hold methods to wrap too */
static uintptr_t
mc_routine_post(uint8 post, uintptr_t ret, int lib)
{
	if (post == MC_POST_CUSTOM_PLAN)
	{
		CustomScan *cscan = (CustomScan *) ret;

		if (IsA(cscan, CustomScan) && cscan->methods != NULL)
			cscan->methods = mc_routines_wrap(MC_ROUTINE_CUSTOM_SCAN, (void *) cscan->methods, lib);
	}
	else if (post == MC_POST_CUSTOM_STATE)
	{
		CustomScanState *css = (CustomScanState *) ret;

		if (IsA(css, CustomScanState) && css->methods != NULL)
			css->methods = mc_routines_wrap(MC_ROUTINE_CUSTOM_EXEC, (void *) css->methods, lib);
	}
	return ret;
}

/* which routine a handler function's result type names, or -1 */
int
mc_routines_handler_kind(Oid rettype)
{
	switch (rettype)
	{
		case INDEX_AM_HANDLEROID:
			return MC_ROUTINE_INDEX_AM;
		case TABLE_AM_HANDLEROID:
			return MC_ROUTINE_TABLE_AM;
		case FDW_HANDLEROID:
			return MC_ROUTINE_FDW;
		case TSM_HANDLEROID:
			return MC_ROUTINE_TSM;
		default:
			return -1;
	}
}

void
mc_routines_init(void)
{
	mc_entry_thunk_post(mc_routine_post);
}
