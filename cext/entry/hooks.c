/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		One descriptor per PostgreSQL hook that foreign code can sit in, and
 *		the functions pg_ext_memcheck puts into each hook chain.
 *
 * For every hook there is one "layer" function that brackets the call down
 * the chain (hooks.h: MC_LAYER_CALL): if the next function in the chain is
 * another library's, its run is a foreign segment; if foreign code called
 * us (a late layer is its "prev"), what follows is PostgreSQL's work and
 * the segment pauses.  MC_LAYERS_* generates the position entry points
 * mc_<hook>_outer, _late1 and _late2 (hooks.h explains positions);
 * mc_<hook>_std, where the hook has a standard function, is the bracket a
 * foreign library's GOT is pointed at: the innermost library calls it.
 * Adding a hook is: its layer function, one MC_LAYERS line, and one row in
 * mc_hooks[].
 *
 * The executor and utility layers that PostgreSQL itself calls also count
 * top-level statements (nesting as pg_stat_statements tracks it) and run
 * the safe-point work: judging what the last transaction left behind,
 * publishing findings, noticing libraries loaded since.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "commands/explain.h"
#if PG_VERSION_NUM >= 180000
#include "commands/explain_state.h"
#endif
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/paths.h"
#include "optimizer/plancat.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "tcop/utility.h"
#include "utils/elog.h"

#include "base/compat.h"
#include "entry/hooks.h"

typedef enum McHookId
{
	MC_HOOK_PLANNER,
	MC_HOOK_POST_PARSE_ANALYZE,
	MC_HOOK_EXECUTOR_START,
	MC_HOOK_EXECUTOR_RUN,
	MC_HOOK_EXECUTOR_FINISH,
	MC_HOOK_EXECUTOR_END,
	MC_HOOK_EXECUTOR_CHECK_PERMS,
	MC_HOOK_PROCESS_UTILITY,
	MC_HOOK_OBJECT_ACCESS,
	MC_HOOK_GET_RELATION_INFO,
	MC_HOOK_SET_REL_PATHLIST,
	MC_HOOK_SET_JOIN_PATHLIST,
	MC_HOOK_JOIN_SEARCH,
	MC_HOOK_CREATE_UPPER_PATHS,
	MC_HOOK_EXPLAIN_ONE_QUERY,
	MC_HOOK_EMIT_LOG,
#ifdef MC_HAVE_OBJECT_ACCESS_STR
	MC_HOOK_OBJECT_ACCESS_STR,
#endif
	MC_NUM_HOOKS
} McHookId;


#define HOOK(id) (&mc_hooks[(id)])

/* called from PostgreSQL (we are first in the chain), not from a library */
#define MC_CALLED_BY_CORE(id, layer) \
	(*HOOK(id)->var == HOOK(id)->layer_fn[(layer)])

/* ---------- planner ---------- */

static PlannedStmt *
mc_planner_layer(int layer, MC_PLANNER_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_PLANNER);
	PlannedStmt *volatile result = NULL;

	if (mc_exec_nesting == 0 && MC_CALLED_BY_CORE(MC_HOOK_PLANNER, layer))
	{
		mc_hooks_safe_point();
		mc_statement_continue();
	}
	MC_LAYER_CALL(h, layer,
				  result = ((planner_hook_type) h->prev[layer]) (MC_PLANNER_ARGS),
				  result = standard_planner(MC_PLANNER_ARGS));
	return result;
}
MC_LAYERS_RET(PlannedStmt *, mc_planner, (MC_PLANNER_PARAMS), MC_PLANNER_ARGS)

MC_STD_FN_RET(PlannedStmt *, mc_planner_std, standard_planner, (MC_PLANNER_PARAMS), (MC_PLANNER_ARGS))

/* ---------- post_parse_analyze_hook ---------- */

static void
mc_parse_layer(int layer, MC_PARSE_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_POST_PARSE_ANALYZE);

	if (mc_exec_nesting == 0 && MC_CALLED_BY_CORE(MC_HOOK_POST_PARSE_ANALYZE, layer))
	{
		mc_hooks_safe_point();
		mc_statement_start();
	}
	MC_LAYER_CALL(h, layer,
				  ((post_parse_analyze_hook_type) h->prev[layer]) (MC_PARSE_ARGS),
				  (void) 0);
}
MC_LAYERS_VOID(mc_parse, (MC_PARSE_PARAMS), MC_PARSE_ARGS)

/* ---------- the executor ---------- */

static void
mc_start_layer(int layer, QueryDesc *queryDesc, int eflags)
{
	McHookDesc *h = HOOK(MC_HOOK_EXECUTOR_START);

	if (mc_exec_nesting == 0 && MC_CALLED_BY_CORE(MC_HOOK_EXECUTOR_START, layer))
	{
		mc_hooks_safe_point();
		mc_statement_continue();
	}
	MC_LAYER_CALL(h, layer,
				  ((ExecutorStart_hook_type) h->prev[layer]) (queryDesc, eflags),
				  standard_ExecutorStart(queryDesc, eflags));
}
#define MC_START_PARAMS QueryDesc *queryDesc, int eflags
#define MC_START_ARGS queryDesc, eflags
MC_LAYERS_VOID(mc_start, (MC_START_PARAMS), MC_START_ARGS)

MC_STD_FN_VOID(mc_start_std, standard_ExecutorStart, (MC_START_PARAMS), (MC_START_ARGS))

static void
mc_run_layer(int layer, MC_EXECRUN_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_EXECUTOR_RUN);
	bool		core = MC_CALLED_BY_CORE(MC_HOOK_EXECUTOR_RUN, layer);

	if (core)
		mc_exec_nesting++;
	MC_LAYER_CALL(h, layer,
				  ((ExecutorRun_hook_type) h->prev[layer]) (MC_EXECRUN_ARGS),
				  standard_ExecutorRun(MC_EXECRUN_ARGS));
	if (core && mc_exec_nesting > 0)
		mc_exec_nesting--;
}
MC_LAYERS_VOID(mc_run, (MC_EXECRUN_PARAMS), MC_EXECRUN_ARGS)

MC_STD_FN_VOID(mc_run_std, standard_ExecutorRun, (MC_EXECRUN_PARAMS), (MC_EXECRUN_ARGS))

static void
mc_finish_layer(int layer, QueryDesc *queryDesc)
{
	McHookDesc *h = HOOK(MC_HOOK_EXECUTOR_FINISH);
	bool		core = MC_CALLED_BY_CORE(MC_HOOK_EXECUTOR_FINISH, layer);

	if (core)
		mc_exec_nesting++;
	MC_LAYER_CALL(h, layer,
				  ((ExecutorFinish_hook_type) h->prev[layer]) (queryDesc),
				  standard_ExecutorFinish(queryDesc));
	if (core && mc_exec_nesting > 0)
		mc_exec_nesting--;
}
MC_LAYERS_VOID(mc_finish, (QueryDesc *queryDesc), queryDesc)

MC_STD_FN_VOID(mc_finish_std, standard_ExecutorFinish, (QueryDesc *queryDesc), (queryDesc))

static void
mc_end_layer(int layer, QueryDesc *queryDesc)
{
	McHookDesc *h = HOOK(MC_HOOK_EXECUTOR_END);
	bool		core = MC_CALLED_BY_CORE(MC_HOOK_EXECUTOR_END, layer);

	MC_LAYER_CALL(h, layer,
				  ((ExecutorEnd_hook_type) h->prev[layer]) (queryDesc),
				  standard_ExecutorEnd(queryDesc));
	/* the next statement run at this level is a unit of its own */
	if (core)
		mc_execution_end();
}
MC_LAYERS_VOID(mc_end, (QueryDesc *queryDesc), queryDesc)

MC_STD_FN_VOID(mc_end_std, standard_ExecutorEnd, (QueryDesc *queryDesc), (queryDesc))

static bool
mc_perms_layer(int layer, MC_PERMS_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_EXECUTOR_CHECK_PERMS);
	volatile bool result = true;

	MC_LAYER_CALL(h, layer,
				  result = ((ExecutorCheckPerms_hook_type) h->prev[layer]) (MC_PERMS_ARGS),
				  result = true);
	return result;
}
MC_LAYERS_RET(bool, mc_perms, (MC_PERMS_PARAMS), MC_PERMS_ARGS)

/* ---------- utility statements and object access ---------- */

static void
mc_utility_layer(int layer, MC_UTILITY_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_PROCESS_UTILITY);
	volatile bool core = MC_CALLED_BY_CORE(MC_HOOK_PROCESS_UTILITY, layer);
	volatile bool top = core && mc_exec_nesting == 0;

	if (top)
	{
		mc_hooks_safe_point();
		mc_statement_start();
	}
	if (core)
		mc_exec_nesting++;
	MC_LAYER_CALL(h, layer,
				  ((ProcessUtility_hook_type) h->prev[layer]) (MC_UTILITY_ARGS),
				  standard_ProcessUtility(MC_UTILITY_ARGS));
	if (core && mc_exec_nesting > 0)
		mc_exec_nesting--;
	if (core)
		mc_execution_end();
	/* LOAD, CREATE EXTENSION and SET load libraries and change settings */
	if (top)
	{
		mc_libs_dirty = true;
		mc_hooks_safe_point();
	}
}
MC_LAYERS_VOID(mc_utility, (MC_UTILITY_PARAMS), MC_UTILITY_ARGS)

MC_STD_FN_VOID(mc_utility_std, standard_ProcessUtility, (MC_UTILITY_PARAMS), (MC_UTILITY_ARGS))

#define MC_OBJECT_ACCESS_PARAMS ObjectAccessType access, Oid classId, Oid objectId, \
	int subId, void *arg
#define MC_OBJECT_ACCESS_ARGS access, classId, objectId, subId, arg

static void
mc_object_access_layer(int layer, MC_OBJECT_ACCESS_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_OBJECT_ACCESS);

	MC_LAYER_CALL(h, layer,
				  ((object_access_hook_type) h->prev[layer]) (MC_OBJECT_ACCESS_ARGS),
				  (void) 0);
}
MC_LAYERS_VOID(mc_object_access, (MC_OBJECT_ACCESS_PARAMS), MC_OBJECT_ACCESS_ARGS)

#ifdef MC_HAVE_OBJECT_ACCESS_STR
#define MC_OBJECT_ACCESS_STR_PARAMS ObjectAccessType access, Oid classId, \
	const char *objectStr, int subId, void *arg
#define MC_OBJECT_ACCESS_STR_ARGS access, classId, objectStr, subId, arg

static void
mc_object_access_str_layer(int layer, MC_OBJECT_ACCESS_STR_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_OBJECT_ACCESS_STR);

	MC_LAYER_CALL(h, layer,
				  ((object_access_hook_type_str) h->prev[layer]) (MC_OBJECT_ACCESS_STR_ARGS),
				  (void) 0);
}
MC_LAYERS_VOID(mc_object_access_str, (MC_OBJECT_ACCESS_STR_PARAMS), MC_OBJECT_ACCESS_STR_ARGS)
#endif

/* ---------- the planner's path hooks ---------- */

#define MC_RELINFO_PARAMS PlannerInfo *root, Oid relationObjectId, bool inhparent, \
	RelOptInfo *rel
#define MC_RELINFO_ARGS root, relationObjectId, inhparent, rel

static void
mc_relinfo_layer(int layer, MC_RELINFO_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_GET_RELATION_INFO);

	MC_LAYER_CALL(h, layer,
				  ((get_relation_info_hook_type) h->prev[layer]) (MC_RELINFO_ARGS),
				  (void) 0);
}
MC_LAYERS_VOID(mc_relinfo, (MC_RELINFO_PARAMS), MC_RELINFO_ARGS)

#define MC_RELPATH_PARAMS PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte
#define MC_RELPATH_ARGS root, rel, rti, rte

static void
mc_relpath_layer(int layer, MC_RELPATH_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_SET_REL_PATHLIST);

	MC_LAYER_CALL(h, layer,
				  ((set_rel_pathlist_hook_type) h->prev[layer]) (MC_RELPATH_ARGS),
				  (void) 0);
	if (mc_active && h->prev_lib[layer] != MC_NO_LIB)
		mc_routines_custom_paths(rel);
}
MC_LAYERS_VOID(mc_relpath, (MC_RELPATH_PARAMS), MC_RELPATH_ARGS)

#define MC_JOINPATH_PARAMS PlannerInfo *root, RelOptInfo *joinrel, RelOptInfo *outerrel, \
	RelOptInfo *innerrel, JoinType jointype, JoinPathExtraData *extra
#define MC_JOINPATH_ARGS root, joinrel, outerrel, innerrel, jointype, extra

static void
mc_joinpath_layer(int layer, MC_JOINPATH_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_SET_JOIN_PATHLIST);

	MC_LAYER_CALL(h, layer,
				  ((set_join_pathlist_hook_type) h->prev[layer]) (MC_JOINPATH_ARGS),
				  (void) 0);
	if (mc_active && h->prev_lib[layer] != MC_NO_LIB)
		mc_routines_custom_paths(joinrel);
}
MC_LAYERS_VOID(mc_joinpath, (MC_JOINPATH_PARAMS), MC_JOINPATH_ARGS)

#define MC_JOINSEARCH_PARAMS PlannerInfo *root, int levels_needed, List *initial_rels
#define MC_JOINSEARCH_ARGS root, levels_needed, initial_rels

static RelOptInfo *
mc_joinsearch_layer(int layer, MC_JOINSEARCH_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_JOIN_SEARCH);
	RelOptInfo *volatile result = NULL;

	MC_LAYER_CALL(h, layer,
				  result = ((join_search_hook_type) h->prev[layer]) (MC_JOINSEARCH_ARGS),
				  result = standard_join_search(MC_JOINSEARCH_ARGS));
	return result;
}
MC_LAYERS_RET(RelOptInfo *, mc_joinsearch, (MC_JOINSEARCH_PARAMS), MC_JOINSEARCH_ARGS)

MC_STD_FN_RET(RelOptInfo *, mc_joinsearch_std, standard_join_search, (MC_JOINSEARCH_PARAMS), (MC_JOINSEARCH_ARGS))

#define MC_UPPER_PARAMS PlannerInfo *root, UpperRelationKind stage, RelOptInfo *input_rel, \
	RelOptInfo *output_rel, void *extra
#define MC_UPPER_ARGS root, stage, input_rel, output_rel, extra

static void
mc_upper_layer(int layer, MC_UPPER_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_CREATE_UPPER_PATHS);

	MC_LAYER_CALL(h, layer,
				  ((create_upper_paths_hook_type) h->prev[layer]) (MC_UPPER_ARGS),
				  (void) 0);
	if (mc_active && h->prev_lib[layer] != MC_NO_LIB)
		mc_routines_custom_paths(output_rel);
}
MC_LAYERS_VOID(mc_upper, (MC_UPPER_PARAMS), MC_UPPER_ARGS)

/* ---------- EXPLAIN ---------- */

#define MC_EXPLAIN_PARAMS Query *query, int cursorOptions, IntoClause *into, \
	ExplainState *es, const char *queryString, ParamListInfo params, \
	QueryEnvironment *queryEnv
#define MC_EXPLAIN_ARGS query, cursorOptions, into, es, queryString, params, queryEnv

/*
 * Before 18 the hook replaced PostgreSQL's own code, so a layer of ours is
 * only ever installed above another library's hook (needs_prev).
 */
static void
mc_explain_layer(int layer, MC_EXPLAIN_PARAMS)
{
	McHookDesc *h = HOOK(MC_HOOK_EXPLAIN_ONE_QUERY);

#ifdef MC_HAVE_STANDARD_EXPLAIN
	MC_LAYER_CALL(h, layer,
				  ((ExplainOneQuery_hook_type) h->prev[layer]) (MC_EXPLAIN_ARGS),
				  standard_ExplainOneQuery(MC_EXPLAIN_ARGS));
#else
	MC_LAYER_CALL(h, layer,
				  ((ExplainOneQuery_hook_type) h->prev[layer]) (MC_EXPLAIN_ARGS),
				  elog(ERROR, "pg_ext_memcheck: ExplainOneQuery layer without a previous hook"));
#endif
}
MC_LAYERS_VOID(mc_explain, (MC_EXPLAIN_PARAMS), MC_EXPLAIN_ARGS)

#ifdef MC_HAVE_STANDARD_EXPLAIN
MC_STD_FN_VOID(mc_explain_std, standard_ExplainOneQuery, (MC_EXPLAIN_PARAMS), (MC_EXPLAIN_ARGS))
#endif

/* ---------- emit_log_hook: inside error reporting, so no PG_TRY ---------- */

static void
mc_emit_log_layer(int layer, ErrorData *edata)
{
	McHookDesc *h = HOOK(MC_HOOK_EMIT_LOG);
	emit_log_hook_type prev = (emit_log_hook_type) h->prev[layer];
	int			depth;

	if (prev == NULL)
		return;
	depth = mc_layer_enter();
	if (h->prev_lib[layer] != MC_NO_LIB && mc_active)
		mc_seg_open(h->prev_lib[layer], MC_ENTRY_HOOK, MC_HOOK_EMIT_LOG, h->phase);
	prev(edata);
	mc_seg_unwind(depth);
}
MC_LAYERS_VOID(mc_emit_log, (ErrorData *edata), edata)

/* ---------- the table ---------- */

McHookDesc	mc_hooks[] = {
	[MC_HOOK_PLANNER] = {
		"planner", MC_PHASE_PLANNER, (void **) &planner_hook, MC_LAYER_FNS(mc_planner),
		"standard_planner", (void *) mc_planner_std, (void *) standard_planner, false, true
	},
	[MC_HOOK_POST_PARSE_ANALYZE] = {
		"post_parse_analyze", MC_PHASE_PLANNER, (void **) &post_parse_analyze_hook,
		MC_LAYER_FNS(mc_parse), NULL, NULL, NULL, false, true
	},
	[MC_HOOK_EXECUTOR_START] = {
		"ExecutorStart", MC_PHASE_EXECUTOR, (void **) &ExecutorStart_hook, MC_LAYER_FNS(mc_start),
		"standard_ExecutorStart", (void *) mc_start_std, (void *) standard_ExecutorStart, false, true
	},
	[MC_HOOK_EXECUTOR_RUN] = {
		"ExecutorRun", MC_PHASE_EXECUTOR, (void **) &ExecutorRun_hook, MC_LAYER_FNS(mc_run),
		"standard_ExecutorRun", (void *) mc_run_std, (void *) standard_ExecutorRun, false, true
	},
	[MC_HOOK_EXECUTOR_FINISH] = {
		"ExecutorFinish", MC_PHASE_EXECUTOR, (void **) &ExecutorFinish_hook, MC_LAYER_FNS(mc_finish),
		"standard_ExecutorFinish", (void *) mc_finish_std, (void *) standard_ExecutorFinish, false, true
	},
	[MC_HOOK_EXECUTOR_END] = {
		"ExecutorEnd", MC_PHASE_EXECUTOR, (void **) &ExecutorEnd_hook, MC_LAYER_FNS(mc_end),
		"standard_ExecutorEnd", (void *) mc_end_std, (void *) standard_ExecutorEnd, false, true
	},
	[MC_HOOK_EXECUTOR_CHECK_PERMS] = {
		"ExecutorCheckPerms", MC_PHASE_EXECUTOR, (void **) &ExecutorCheckPerms_hook,
		MC_LAYER_FNS(mc_perms), NULL, NULL, NULL, false, false
	},
	[MC_HOOK_PROCESS_UTILITY] = {
		"ProcessUtility", MC_PHASE_UTILITY, (void **) &ProcessUtility_hook, MC_LAYER_FNS(mc_utility),
		"standard_ProcessUtility", (void *) mc_utility_std, (void *) standard_ProcessUtility, false, true
	},
	[MC_HOOK_OBJECT_ACCESS] = {
		"object_access", MC_PHASE_UTILITY, (void **) &object_access_hook,
		MC_LAYER_FNS(mc_object_access), NULL, NULL, NULL, false, false
	},
	[MC_HOOK_GET_RELATION_INFO] = {
		"get_relation_info", MC_PHASE_PLANNER, (void **) &get_relation_info_hook,
		MC_LAYER_FNS(mc_relinfo), NULL, NULL, NULL, false, false
	},
	[MC_HOOK_SET_REL_PATHLIST] = {
		"set_rel_pathlist", MC_PHASE_PLANNER, (void **) &set_rel_pathlist_hook,
		MC_LAYER_FNS(mc_relpath), NULL, NULL, NULL, false, false
	},
	[MC_HOOK_SET_JOIN_PATHLIST] = {
		"set_join_pathlist", MC_PHASE_PLANNER, (void **) &set_join_pathlist_hook,
		MC_LAYER_FNS(mc_joinpath), NULL, NULL, NULL, false, false
	},
	[MC_HOOK_JOIN_SEARCH] = {
		"join_search", MC_PHASE_PLANNER, (void **) &join_search_hook, MC_LAYER_FNS(mc_joinsearch),
		"standard_join_search", (void *) mc_joinsearch_std, (void *) standard_join_search, false, false
	},
	[MC_HOOK_CREATE_UPPER_PATHS] = {
		"create_upper_paths", MC_PHASE_PLANNER, (void **) &create_upper_paths_hook,
		MC_LAYER_FNS(mc_upper), NULL, NULL, NULL, false, false
	},
#ifdef MC_HAVE_STANDARD_EXPLAIN
	[MC_HOOK_EXPLAIN_ONE_QUERY] = {
		"ExplainOneQuery", MC_PHASE_PLANNER, (void **) &ExplainOneQuery_hook, MC_LAYER_FNS(mc_explain),
		"standard_ExplainOneQuery", (void *) mc_explain_std, (void *) standard_ExplainOneQuery, false, false
	},
#else
	[MC_HOOK_EXPLAIN_ONE_QUERY] = {
		"ExplainOneQuery", MC_PHASE_PLANNER, (void **) &ExplainOneQuery_hook, MC_LAYER_FNS(mc_explain),
		NULL, NULL, NULL, true, false
	},
#endif
	[MC_HOOK_EMIT_LOG] = {
		"emit_log", MC_PHASE_OTHER, (void **) &emit_log_hook, MC_LAYER_FNS(mc_emit_log),
		NULL, NULL, NULL, false, false
	},
#ifdef MC_HAVE_OBJECT_ACCESS_STR
	[MC_HOOK_OBJECT_ACCESS_STR] = {
		"object_access_str", MC_PHASE_UTILITY, (void **) &object_access_hook_str,
		MC_LAYER_FNS(mc_object_access_str), NULL, NULL, NULL, false, false
	},
#endif
};

const int	mc_nhooks = MC_NUM_HOOKS;
