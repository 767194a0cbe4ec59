/*-------------------------------------------------------------------------
 *
 * hook_peer.c
 *		A second library in every hook pg_ext_memcheck joins, for tests only
 *		(issue 19, item 1: never break a co-loaded library).
 *
 * Modelled on two in-core extensions:
 *
 *	- contrib/sepgsql's fmgr_hook: needs_fmgr_hook asks for some functions;
 *	  at FHET_START, when *private is still 0, the hook allocates its state in
 *	  flinfo->fn_mcxt and stores the pointer in *private (the slot lives in
 *	  the function's fmgr cache, so one allocation serves every call through
 *	  that cache); at FHET_END and FHET_ABORT it reads the pointer back and
 *	  dereferences it.  Like sepgsql it can give the next hook a slot of its
 *	  own inside its state (hook_peer.fmgr_slot = own, the default), or pass
 *	  the shared slot on (= shared).  Either way it is crash-free only if
 *	  nobody else writes the slot it owns.
 *	- pg_stat_statements / auto_explain: planner, post_parse_analyze,
 *	  ExecutorStart/Run/Finish/End, ExecutorCheckPerms, ProcessUtility,
 *	  object_access, emit_log, get_relation_info and set_rel_pathlist hooks,
 *	  each saving the previous hook in a prev_ pointer and calling it (or the
 *	  standard_ function), and counting its invocations in this backend.
 *
 * hook_peer_counters() returns the counters as jsonb, hook_peer_reset()
 * zeroes them.  The fmgr counters count only the peer's "own" functions:
 * those whose name starts with "peer_" (what its needs_fmgr_hook asks for),
 * so that another library asking for more functions changes nothing here.
 * emit_log counts only messages starting with "hook_peer probe".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "optimizer/paths.h"
#include "optimizer/plancat.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/syscache.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* ---------- version guards (as cext/base/compat.h) ---------- */

#if PG_VERSION_NUM >= 190000
#define PLANNER_PARAMS Query *parse, const char *query_string, int cursorOptions, \
	ParamListInfo boundParams, ExplainState *es
#define PLANNER_ARGS parse, query_string, cursorOptions, boundParams, es
#else
#define PLANNER_PARAMS Query *parse, const char *query_string, int cursorOptions, \
	ParamListInfo boundParams
#define PLANNER_ARGS parse, query_string, cursorOptions, boundParams
#endif

#if PG_VERSION_NUM >= 180000
#define RUN_PARAMS QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define RUN_ARGS queryDesc, direction, count
#else
#define RUN_PARAMS QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define RUN_ARGS queryDesc, direction, count, execute_once
#endif

#if PG_VERSION_NUM >= 190000
#define PARSE_PARAMS ParseState *pstate, Query *query, const JumbleState *jstate
#define PARSE_ARGS pstate, query, jstate
#elif PG_VERSION_NUM >= 140000
#define PARSE_PARAMS ParseState *pstate, Query *query, JumbleState *jstate
#define PARSE_ARGS pstate, query, jstate
#else
#define PARSE_PARAMS ParseState *pstate, Query *query
#define PARSE_ARGS pstate, query
#endif

#if PG_VERSION_NUM >= 160000
#define PERMS_PARAMS List *rangeTable, List *rtePermInfos, bool ereport_on_violation
#define PERMS_ARGS rangeTable, rtePermInfos, ereport_on_violation
#else
#define PERMS_PARAMS List *rangeTable, bool ereport_on_violation
#define PERMS_ARGS rangeTable, ereport_on_violation
#endif

#if PG_VERSION_NUM >= 140000
#define UTILITY_PARAMS PlannedStmt *pstmt, const char *queryString, \
	bool readOnlyTree, ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define UTILITY_ARGS pstmt, queryString, readOnlyTree, context, params, \
	queryEnv, dest, qc
#else
#define UTILITY_PARAMS PlannedStmt *pstmt, const char *queryString, \
	ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define UTILITY_ARGS pstmt, queryString, context, params, queryEnv, dest, qc
#endif

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/* ---------- counters ---------- */

typedef enum PeerCounter
{
	PC_PLANNER,
	PC_POST_PARSE_ANALYZE,
	PC_EXECUTOR_START,
	PC_EXECUTOR_RUN,
	PC_EXECUTOR_FINISH,
	PC_EXECUTOR_END,
	PC_EXECUTOR_CHECK_PERMS,
	PC_PROCESS_UTILITY,
	PC_OBJECT_ACCESS,
	PC_OBJECT_ACCESS_STR,		/* 15+ only */
	PC_EMIT_LOG,
	PC_GET_RELATION_INFO,
	PC_SET_REL_PATHLIST,
	PC_NEEDS_FMGR,				/* asked about one of its own functions */
	PC_FMGR_START,
	PC_FMGR_END,
	PC_FMGR_ABORT,
	PC_FMGR_STATE_ALLOCS,		/* *private was 0 at FHET_START */
	PC_FMGR_STATE_LOST,			/* *private was 0 at FHET_END/ABORT */
	PC_FMGR_STATE_CORRUPT,		/* *private pointed at something else */
	PC_NUM_COUNTERS
} PeerCounter;

static const char *const counter_names[PC_NUM_COUNTERS] = {
	[PC_PLANNER] = "planner",
	[PC_POST_PARSE_ANALYZE] = "post_parse_analyze",
	[PC_EXECUTOR_START] = "ExecutorStart",
	[PC_EXECUTOR_RUN] = "ExecutorRun",
	[PC_EXECUTOR_FINISH] = "ExecutorFinish",
	[PC_EXECUTOR_END] = "ExecutorEnd",
	[PC_EXECUTOR_CHECK_PERMS] = "ExecutorCheckPerms",
	[PC_PROCESS_UTILITY] = "ProcessUtility",
	[PC_OBJECT_ACCESS] = "object_access",
	[PC_OBJECT_ACCESS_STR] = "object_access_str",
	[PC_EMIT_LOG] = "emit_log",
	[PC_GET_RELATION_INFO] = "get_relation_info",
	[PC_SET_REL_PATHLIST] = "set_rel_pathlist",
	[PC_NEEDS_FMGR] = "needs_fmgr_hook",
	[PC_FMGR_START] = "fmgr_start",
	[PC_FMGR_END] = "fmgr_end",
	[PC_FMGR_ABORT] = "fmgr_abort",
	[PC_FMGR_STATE_ALLOCS] = "fmgr_state_allocs",
	[PC_FMGR_STATE_LOST] = "fmgr_state_lost",
	[PC_FMGR_STATE_CORRUPT] = "fmgr_state_corrupt",
};

static int64 counters[PC_NUM_COUNTERS];

/* object_access by access type (OAT_POST_CREATE ... OAT_TRUNCATE), for a precise comparison */
#define PEER_OAT_TYPES 8
static const char *const oat_names[PEER_OAT_TYPES] = {
	"post_create", "drop", "post_alter", "namespace_search", "function_execute", "truncate", "oat6", "oat7"
};
static int64 oat_counters[PEER_OAT_TYPES];

/* ---------- settings ---------- */

typedef enum PeerSlot
{
	PEER_SLOT_OWN,				/* the next hook gets a slot inside our state */
	PEER_SLOT_SHARED			/* the next hook gets the slot we keep our pointer in */
} PeerSlot;

static const struct config_enum_entry slot_options[] = {
	{"own", PEER_SLOT_OWN, false},
	{"shared", PEER_SLOT_SHARED, false},
	{NULL, 0, false}
};

static int	fmgr_slot = PEER_SLOT_OWN;

/* ---------- previous hooks ---------- */

static planner_hook_type prev_planner = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ExecutorCheckPerms_hook_type prev_ExecutorCheckPerms = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access = NULL;
#if PG_VERSION_NUM >= 150000
static object_access_hook_type_str prev_object_access_str = NULL;
#endif
static emit_log_hook_type prev_emit_log = NULL;
static get_relation_info_hook_type prev_get_relation_info = NULL;
static set_rel_pathlist_hook_type prev_set_rel_pathlist = NULL;
static needs_fmgr_hook_type prev_needs_fmgr = NULL;
static fmgr_hook_type prev_fmgr = NULL;

/* ---------- planner and executor ---------- */

static PlannedStmt *
peer_planner(PLANNER_PARAMS)
{
	counters[PC_PLANNER]++;
	if (prev_planner)
		return prev_planner(PLANNER_ARGS);
	return standard_planner(PLANNER_ARGS);
}

static void
peer_post_parse_analyze(PARSE_PARAMS)
{
	counters[PC_POST_PARSE_ANALYZE]++;
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(PARSE_ARGS);
}

static void
peer_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	counters[PC_EXECUTOR_START]++;
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
peer_ExecutorRun(RUN_PARAMS)
{
	counters[PC_EXECUTOR_RUN]++;
	if (prev_ExecutorRun)
		prev_ExecutorRun(RUN_ARGS);
	else
		standard_ExecutorRun(RUN_ARGS);
}

static void
peer_ExecutorFinish(QueryDesc *queryDesc)
{
	counters[PC_EXECUTOR_FINISH]++;
	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
}

static void
peer_ExecutorEnd(QueryDesc *queryDesc)
{
	counters[PC_EXECUTOR_END]++;
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static bool
peer_ExecutorCheckPerms(PERMS_PARAMS)
{
	counters[PC_EXECUTOR_CHECK_PERMS]++;
	if (prev_ExecutorCheckPerms)
		return prev_ExecutorCheckPerms(PERMS_ARGS);
	return true;
}

static void
peer_ProcessUtility(UTILITY_PARAMS)
{
	counters[PC_PROCESS_UTILITY]++;
	if (prev_ProcessUtility)
		prev_ProcessUtility(UTILITY_ARGS);
	else
		standard_ProcessUtility(UTILITY_ARGS);
}

static void
peer_object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	counters[PC_OBJECT_ACCESS]++;
	if ((int) access >= 0 && (int) access < PEER_OAT_TYPES)
		oat_counters[access]++;
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
}

#if PG_VERSION_NUM >= 150000
static void
peer_object_access_str(ObjectAccessType access, Oid classId, const char *objectStr, int subId,
					   void *arg)
{
	counters[PC_OBJECT_ACCESS_STR]++;
	if (prev_object_access_str)
		prev_object_access_str(access, classId, objectStr, subId, arg);
}
#endif

/* runs inside error reporting: no allocation, no error */
static void
peer_emit_log(ErrorData *edata)
{
	if (edata->message != NULL && strncmp(edata->message, "hook_peer probe", 15) == 0)
		counters[PC_EMIT_LOG]++;
	if (prev_emit_log)
		prev_emit_log(edata);
}

static void
peer_get_relation_info(PlannerInfo *root, Oid relationObjectId, bool inhparent, RelOptInfo *rel)
{
	counters[PC_GET_RELATION_INFO]++;
	if (prev_get_relation_info)
		prev_get_relation_info(root, relationObjectId, inhparent, rel);
}

static void
peer_set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	counters[PC_SET_REL_PATHLIST]++;
	if (prev_set_rel_pathlist)
		prev_set_rel_pathlist(root, rel, rti, rte);
}

/* ---------- fmgr hooks: private state, as sepgsql keeps it ---------- */

#define PEER_STATE_MAGIC 0x50454552	/* "PEER" */
#define PEER_OWN_CACHE 64

typedef struct PeerFmgrState
{
	uint32		magic;			/* PEER_STATE_MAGIC while it is ours */
	int32		active;			/* calls between FHET_START and END/ABORT */
	Oid			fn_oid;
	Datum		next_private;	/* the next hook's slot (fmgr_slot = own) */
} PeerFmgrState;

/* is fn_oid one of "our" functions (name starts with peer_)?  cached per OID */
static struct
{
	Oid			oid;
	bool		own;
}			own_cache[PEER_OWN_CACHE];

static bool
peer_is_own(Oid fn_oid)
{
	int			slot = fn_oid % PEER_OWN_CACHE;
	HeapTuple	tup;
	bool		own = false;

	if (own_cache[slot].oid == fn_oid)
		return own_cache[slot].own;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (HeapTupleIsValid(tup))
	{
		own = strncmp(NameStr(((Form_pg_proc) GETSTRUCT(tup))->proname), "peer_", 5) == 0;
		ReleaseSysCache(tup);
	}
	own_cache[slot].oid = fn_oid;
	own_cache[slot].own = own;
	return own;
}

/* never short-circuits: the previous hook is asked whatever our answer */
static bool
peer_needs_fmgr_hook(Oid fn_oid)
{
	bool		own = peer_is_own(fn_oid);

	if (own)
		counters[PC_NEEDS_FMGR]++;
	if (prev_needs_fmgr && prev_needs_fmgr(fn_oid))
		return true;
	return own;
}

static void
peer_call_next(FmgrHookEventType event, FmgrInfo *flinfo, Datum *slot)
{
	if (prev_fmgr)
		prev_fmgr(event, flinfo, slot);
}

static void
peer_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	PeerFmgrState *state = (PeerFmgrState *) DatumGetPointer(*private);
	bool		own = peer_is_own(flinfo->fn_oid);

	switch (event)
	{
		case FHET_START:
			if (state == NULL)
			{
				/* first call through this fmgr cache: one allocation per cache */
				state = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(PeerFmgrState));
				state->magic = PEER_STATE_MAGIC;
				state->fn_oid = flinfo->fn_oid;
				*private = PointerGetDatum(state);
				if (own)
					counters[PC_FMGR_STATE_ALLOCS]++;
			}
			else if (state->magic != PEER_STATE_MAGIC)	/* dereferences what is there */
				elog(ERROR, "hook_peer: the fmgr_hook state of function %u was overwritten",
					 flinfo->fn_oid);
			state->active++;
			if (own)
				counters[PC_FMGR_START]++;
			peer_call_next(event, flinfo,
						   fmgr_slot == PEER_SLOT_OWN ? &state->next_private : private);
			break;

		case FHET_END:
		case FHET_ABORT:
			if (state == NULL)
			{
				if (own)
					counters[PC_FMGR_STATE_LOST]++;
				peer_call_next(event, flinfo, private);
				break;
			}
			if (state->magic != PEER_STATE_MAGIC)	/* dereferences what is there */
			{
				if (own)
					counters[PC_FMGR_STATE_CORRUPT]++;
				peer_call_next(event, flinfo, private);
				break;
			}
			peer_call_next(event, flinfo,
						   fmgr_slot == PEER_SLOT_OWN ? &state->next_private : private);
			state->active--;
			if (own)
				counters[event == FHET_END ? PC_FMGR_END : PC_FMGR_ABORT]++;
			break;
	}
}

/* ---------- SQL ---------- */

PG_FUNCTION_INFO_V1(hook_peer_counters);

Datum
hook_peer_counters(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	int			i;

	(void) fcinfo;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < PC_NUM_COUNTERS; i++)
	{
#if PG_VERSION_NUM < 150000
		if (i == PC_OBJECT_ACCESS_STR)
			continue;
#endif
		appendStringInfo(&buf, "%s\"%s\": " INT64_FORMAT, buf.len > 1 ? ", " : "",
						 counter_names[i], counters[i]);
	}
	for (i = 0; i < PEER_OAT_TYPES; i++)
		appendStringInfo(&buf, ", \"object_access:%s\": " INT64_FORMAT, oat_names[i], oat_counters[i]);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

PG_FUNCTION_INFO_V1(hook_peer_reset);

Datum
hook_peer_reset(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	memset(counters, 0, sizeof(counters));
	memset(oat_counters, 0, sizeof(oat_counters));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(peer_c_add);

Datum
peer_c_add(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PG_GETARG_INT32(0) + 1);
}

void
_PG_init(void)
{
	DefineCustomEnumVariable("hook_peer.fmgr_slot",
							 "Which slot the next fmgr_hook gets: one inside our state (own) or ours (shared).",
							 NULL, &fmgr_slot, PEER_SLOT_OWN, slot_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("hook_peer");

	prev_planner = planner_hook;
	planner_hook = peer_planner;
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = peer_post_parse_analyze;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = peer_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = peer_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = peer_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = peer_ExecutorEnd;
	prev_ExecutorCheckPerms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = peer_ExecutorCheckPerms;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = peer_ProcessUtility;
	prev_object_access = object_access_hook;
	object_access_hook = peer_object_access;
#if PG_VERSION_NUM >= 150000
	prev_object_access_str = object_access_hook_str;
	object_access_hook_str = peer_object_access_str;
#endif
	prev_emit_log = emit_log_hook;
	emit_log_hook = peer_emit_log;
	prev_get_relation_info = get_relation_info_hook;
	get_relation_info_hook = peer_get_relation_info;
	prev_set_rel_pathlist = set_rel_pathlist_hook;
	set_rel_pathlist_hook = peer_set_rel_pathlist;
	prev_needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = peer_needs_fmgr_hook;
	prev_fmgr = fmgr_hook;
	fmgr_hook = peer_fmgr_hook;
}
