/*-------------------------------------------------------------------------
 *
 * buggy_pg_ext.c
 *		A deliberately buggy extension: the test subject of pg_ext_memcheck.
 *
 * Each bug is switched on by name in the GUC buggy_pg_ext.bugs (a comma
 * separated list; default "planner_ctx_leak,top_ctx_alloc", the reference
 * tool's two bugs).  Each one is a shape found in real extensions:
 *
 *	planner_ctx_leak	the planner hook leaks an 8 kB child context under
 *						MessageContext per query
 *	top_ctx_alloc		ExecutorStart pallocs 8 kB in TopMemoryContext per
 *						query
 *	nested_leak			ExecutorEnd allocates 2 kB in CurrentMemoryContext on
 *						every nested execution (a SQL function called once per
 *						row grows its function context for the whole statement)
 *	private_ctx_growth	ExecutorEnd adds 4 kB per execution to the library's
 *						own context under TopMemoryContext, created once
 *	func_top_leak		buggy_pg_ext_work(int) pallocs 1 kB in TopMemoryContext
 *						per call
 *	func_row_leak		buggy_pg_ext_work(int) allocates 512 B per call in
 *						fn_mcxt, which lives as long as the statement
 *	func_malloc_leak	buggy_pg_ext_work(int) mallocs 4 kB per call and never
 *						frees it
 *	subxact_ctx_leak	a subtransaction callback creates an 8 kB context under
 *						TopTransactionContext per subtransaction and never
 *						deletes it
 *	parse_cache_leak	post_parse_analyze_hook allocates 1 kB in
 *						CacheMemoryContext per statement
 *	perms_leak			ExecutorCheckPerms_hook allocates 256 B per call in the
 *						statement's portal memory (PortalContext), believing it
 *						per query; for the queries a SQL function runs per row
 *						that memory lives until the outer statement ends.
 *						(CurrentMemoryContext there is the query's own executor
 *						memory, freed at its ExecutorEnd: no leak.)
 *	one_time_cache		a 16 kB context created once under TopMemoryContext on
 *						first use and reused, plus a 16 kB index kept in
 *						TopMemoryContext; every ExecutorStart also allocates
 *						1 kB of scratch there and frees it: a cache, not a bug
 *	dsm_leak			ExecutorEnd creates a DSM segment and never detaches
 *	relcache_leak		ExecutorEnd opens pg_class's relcache entry and never
 *						closes it
 *	write_past_end		ExecutorStart writes one byte past a 17-byte palloc'd
 *						chunk and frees it (a build with assertions and
 *						memory-context checking warns)
 *	crash				ExecutorStart dereferences NULL
 *	shmem_overrun		ExecutorEnd writes one byte past the end of the
 *						library's 100-byte shared structure (ShmemInitStruct;
 *						only when preloaded), into the alignment slack behind it
 *	dsm_pin_leak		ExecutorEnd creates a DSM segment, pins its mapping and
 *						never detaches it: mapped until the backend exits, and
 *						PostgreSQL never warns
 *	use_after_reset		buggy_pg_ext_cached() and buggy_pg_ext_cached_label()
 *						keep a pointer to their "computed once" answer,
 *						allocated in per-query memory on the first call, and
 *						read it in later queries, after that memory was freed
 *						(the label is reached through a pointer stored there)
 *
 * With the list empty it does nothing wrong.  It works preloaded (before or
 * after pg_ext_memcheck) and loaded by CREATE EXTENSION in a session.  Like
 * some real extensions, it can insist on being first in
 * shared_preload_libraries: buggy_pg_ext.require_first = on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/varlena.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

#define BUG_PLANNER_CTX_LEAK	(1 << 0)
#define BUG_TOP_CTX_ALLOC		(1 << 1)
#define BUG_NESTED_LEAK			(1 << 2)
#define BUG_DSM_LEAK			(1 << 3)
#define BUG_RELCACHE_LEAK		(1 << 4)
#define BUG_CRASH				(1 << 5)
#define BUG_PRIVATE_CTX_GROWTH	(1 << 6)
#define BUG_FUNC_TOP_LEAK		(1 << 7)
#define BUG_FUNC_ROW_LEAK		(1 << 8)
#define BUG_FUNC_MALLOC_LEAK	(1 << 9)
#define BUG_SUBXACT_CTX_LEAK	(1 << 10)
#define BUG_PARSE_CACHE_LEAK	(1 << 11)
#define BUG_PERMS_LEAK			(1 << 12)
#define BUG_ONE_TIME_CACHE		(1 << 13)
#define BUG_WRITE_PAST_END		(1 << 14)
#define BUG_SHMEM_OVERRUN		(1 << 15)
#define BUG_DSM_PIN_LEAK		(1 << 16)
#define BUG_USE_AFTER_RESET		(1 << 17)

/* not a multiple of the 128-byte cache line: there is slack behind it */
#define BUGGY_SHMEM_SIZE		100

static const struct
{
	const char *name;
	int			bit;
}			bug_names[] = {
	{"planner_ctx_leak", BUG_PLANNER_CTX_LEAK},
	{"top_ctx_alloc", BUG_TOP_CTX_ALLOC},
	{"nested_leak", BUG_NESTED_LEAK},
	{"dsm_leak", BUG_DSM_LEAK},
	{"relcache_leak", BUG_RELCACHE_LEAK},
	{"crash", BUG_CRASH},
	{"private_ctx_growth", BUG_PRIVATE_CTX_GROWTH},
	{"func_top_leak", BUG_FUNC_TOP_LEAK},
	{"func_row_leak", BUG_FUNC_ROW_LEAK},
	{"func_malloc_leak", BUG_FUNC_MALLOC_LEAK},
	{"subxact_ctx_leak", BUG_SUBXACT_CTX_LEAK},
	{"parse_cache_leak", BUG_PARSE_CACHE_LEAK},
	{"perms_leak", BUG_PERMS_LEAK},
	{"one_time_cache", BUG_ONE_TIME_CACHE},
	{"write_past_end", BUG_WRITE_PAST_END},
	{"shmem_overrun", BUG_SHMEM_OVERRUN},
	{"dsm_pin_leak", BUG_DSM_PIN_LEAK},
	{"use_after_reset", BUG_USE_AFTER_RESET},
};

static char *bugs_string = NULL;
static int	bugs = 0;
static bool require_first = false;
static int	run_depth = 0;
static MemoryContext private_ctx = NULL;
static MemoryContext cache_ctx = NULL;
static void *cache_index = NULL;	/* one_time_cache's index, kept in TopMemoryContext */
static void *volatile last_malloc = NULL;	/* keeps the compiler from dropping it */
static char *shared_state = NULL;	/* BUGGY_SHMEM_SIZE bytes of shared memory */
static dsm_handle last_dsm_handle = 0;

/* bug use_after_reset: "computed once", kept in memory freed with the first query */
typedef struct BuggyCache
{
	int32		answer;
	const char *label;
} BuggyCache;
static BuggyCache *cache_in_query_memory = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static planner_hook_type prev_planner_hook = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ExecutorCheckPerms_hook_type prev_ExecutorCheckPerms = NULL;

static bool
parse_bugs(const char *value, int *out, char **bad)
{
	char	   *copy = pstrdup(value);
	List	   *names;
	ListCell   *lc;
	int			result = 0;

	*bad = NULL;
	if (!SplitIdentifierString(copy, ',', &names))
	{
		*bad = pstrdup(value);
		return false;
	}
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		int			i;
		bool		found = false;

		for (i = 0; i < (int) lengthof(bug_names); i++)
			if (strcmp(name, bug_names[i].name) == 0)
			{
				result |= bug_names[i].bit;
				found = true;
			}
		if (!found)
		{
			*bad = pstrdup(name);
			return false;
		}
	}
	*out = result;
	return true;
}

static bool
check_bugs(char **newval, void **extra, GucSource source)
{
	int			parsed;
	char	   *bad;
	int		   *data;

	if (!parse_bugs(*newval, &parsed, &bad))
	{
		GUC_check_errdetail("Unknown bug \"%s\".", bad);
		return false;
	}
	/* GUC extra data: guc_malloc'd from 16 (freed with pfree), malloc'd before */
#if PG_VERSION_NUM >= 160000
	data = guc_malloc(LOG, sizeof(int));
#else
	data = malloc(sizeof(int));
#endif
	if (data == NULL)
		return false;
	*data = parsed;
	*extra = data;
	(void) source;
	return true;
}

static void
assign_bugs(const char *newval, void *extra)
{
	bugs = *((int *) extra);
	(void) newval;
}

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

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

/* bug planner_ctx_leak */
static PlannedStmt *
buggy_planner(PLANNER_PARAMS)
{
	if ((bugs & BUG_PLANNER_CTX_LEAK) && MessageContext != NULL)
	{
		MemoryContext leak = AllocSetContextCreate(MessageContext,
												   "BuggyPlannerLeakCtx",
												   ALLOCSET_DEFAULT_SIZES);

		(void) MemoryContextAlloc(leak, 8192);
	}
	if (prev_planner_hook)
		return prev_planner_hook(PLANNER_ARGS);
	return standard_planner(PLANNER_ARGS);
}

/* bug parse_cache_leak */
static void
buggy_post_parse_analyze(PARSE_PARAMS)
{
	if ((bugs & BUG_PARSE_CACHE_LEAK) && CacheMemoryContext != NULL)
		(void) MemoryContextAlloc(CacheMemoryContext, 1024);
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(PARSE_ARGS);
}

/* bugs top_ctx_alloc, one_time_cache and crash */
static void
buggy_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (bugs & BUG_CRASH)
		*((volatile int *) NULL) = 42;
	if (bugs & BUG_TOP_CTX_ALLOC)
		(void) MemoryContextAlloc(TopMemoryContext, 8192);
	if (bugs & BUG_WRITE_PAST_END)
	{
		/*
		 * One byte past the 17 requested: inside the 32-byte chunk, so harmless
		 * without assertions, but the sentinel an assertion-enabled build keeps
		 * there is overwritten.
		 */
		char	   *p = palloc(17);
		volatile int n = 17;	/* hidden from the compiler's bounds checks */

		p[n] = 'x';
		pfree(p);
	}
	if (bugs & BUG_ONE_TIME_CACHE)
	{
		if (cache_ctx == NULL)
		{
			cache_ctx = AllocSetContextCreate(TopMemoryContext, "BuggyOneTimeCache",
											  ALLOCSET_DEFAULT_SIZES);
			(void) MemoryContextAlloc(cache_ctx, 16384);
			cache_index = MemoryContextAlloc(TopMemoryContext, 16384);
		}
		/* scratch space in TopMemoryContext, given back before returning */
		pfree(MemoryContextAlloc(TopMemoryContext, 1024));
	}
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* nesting is tracked as pg_stat_statements does: around Run and Finish */
static void
buggy_ExecutorRun(RUN_PARAMS)
{
	run_depth++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(RUN_ARGS);
		else
			standard_ExecutorRun(RUN_ARGS);
	}
	PG_FINALLY();
	{
		run_depth--;
	}
	PG_END_TRY();
}

static void
buggy_ExecutorFinish(QueryDesc *queryDesc)
{
	run_depth++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		run_depth--;
	}
	PG_END_TRY();
}

/* bugs nested_leak, private_ctx_growth, dsm_leak, relcache_leak */
static void
buggy_ExecutorEnd(QueryDesc *queryDesc)
{
	if ((bugs & BUG_NESTED_LEAK) && run_depth > 0)
		(void) palloc(2048);
	if (bugs & BUG_PRIVATE_CTX_GROWTH)
	{
		if (private_ctx == NULL)
			private_ctx = AllocSetContextCreate(TopMemoryContext, "BuggyPrivateCtx",
												ALLOCSET_DEFAULT_SIZES);
		(void) MemoryContextAlloc(private_ctx, 4096);
	}
	if ((bugs & BUG_DSM_LEAK) && run_depth == 0)
		last_dsm_handle = dsm_segment_handle(dsm_create(8192, 0));
	if ((bugs & BUG_DSM_PIN_LEAK) && run_depth == 0)
	{
		dsm_segment *seg = dsm_create(8192, 0);

		dsm_pin_mapping(seg);
		last_dsm_handle = dsm_segment_handle(seg);
	}
	if ((bugs & BUG_SHMEM_OVERRUN) && shared_state != NULL)
	{
		volatile int n = BUGGY_SHMEM_SIZE;	/* hidden from the compiler's bounds checks */

		shared_state[n] = 'x';
	}
	if ((bugs & BUG_RELCACHE_LEAK) && run_depth == 0)
		(void) RelationIdGetRelation(RelationRelationId);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/* bug perms_leak */
static bool
buggy_ExecutorCheckPerms(PERMS_PARAMS)
{
	if ((bugs & BUG_PERMS_LEAK) && PortalContext != NULL)
		(void) MemoryContextAlloc(PortalContext, 256);
	if (prev_ExecutorCheckPerms)
		return prev_ExecutorCheckPerms(PERMS_ARGS);
	return true;
}

/* bug subxact_ctx_leak */
static void
buggy_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	(void) mySubid;
	(void) parentSubid;
	(void) arg;
	if ((bugs & BUG_SUBXACT_CTX_LEAK) && event == SUBXACT_EVENT_START_SUB &&
		TopTransactionContext != NULL)
	{
		MemoryContext ctx = AllocSetContextCreate(TopTransactionContext,
												  "BuggySubxactCtx", 0, 8192, 8192);

		(void) MemoryContextAlloc(ctx, 1024);
	}
}

/* shared memory: the size is asked for in time for every version */
#if PG_VERSION_NUM >= 150000
static void
buggy_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(BUGGY_SHMEM_SIZE);
}
#endif

static void
buggy_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared_state = ShmemInitStruct("buggy_pg_ext state", BUGGY_SHMEM_SIZE, &found);
	if (!found)
		memset(shared_state, 0, BUGGY_SHMEM_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/* refuse to load unless listed first, as some real extensions (Citus) do */
static void
buggy_require_first(void)
{
	const char *libs;
	char	   *copy;
	List	   *names;

	if (!require_first || !process_shared_preload_libraries_in_progress)
		return;
	libs = GetConfigOption("shared_preload_libraries", false, false);
	copy = pstrdup(libs ? libs : "");
	if (!SplitIdentifierString(copy, ',', &names) || names == NIL ||
		strcmp((char *) linitial(names), "buggy_pg_ext") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("buggy_pg_ext must be loaded first in shared_preload_libraries")));
}

void
_PG_init(void)
{
	DefineCustomStringVariable("buggy_pg_ext.bugs",
							   "Which bugs buggy_pg_ext has (comma-separated names).",
							   NULL,
							   &bugs_string,
							   "planner_ctx_leak,top_ctx_alloc",
							   PGC_USERSET, GUC_LIST_INPUT,
							   check_bugs, assign_bugs, NULL);
	/* a server setting, so only when preloaded */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomBoolVariable("buggy_pg_ext.require_first",
								 "Refuse to start unless listed first in shared_preload_libraries.",
								 NULL,
								 &require_first,
								 false,
								 PGC_POSTMASTER, 0,
								 NULL, NULL, NULL);
	MarkGUCPrefixReserved("buggy_pg_ext");
	buggy_require_first();

	prev_planner_hook = planner_hook;
	planner_hook = buggy_planner;
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = buggy_post_parse_analyze;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = buggy_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = buggy_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = buggy_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = buggy_ExecutorEnd;
	prev_ExecutorCheckPerms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = buggy_ExecutorCheckPerms;
	RegisterSubXactCallback(buggy_subxact_callback, NULL);

	if (process_shared_preload_libraries_in_progress)
	{
#if PG_VERSION_NUM >= 150000
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = buggy_shmem_request;
#else
		RequestAddinShmemSpace(BUGGY_SHMEM_SIZE);
#endif
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = buggy_shmem_startup;
	}
}

PG_FUNCTION_INFO_V1(buggy_pg_ext_bugs);

/* SQL: the active bug list; also makes CREATE EXTENSION load the library */
Datum
buggy_pg_ext_bugs(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_TEXT_P(cstring_to_text(bugs_string ? bugs_string : ""));
}

PG_FUNCTION_INFO_V1(buggy_pg_ext_work);

/* SQL: buggy_pg_ext_work(int) -> int; bugs func_top_leak, func_row_leak, func_malloc_leak */
Datum
buggy_pg_ext_work(PG_FUNCTION_ARGS)
{
	int32		arg = PG_GETARG_INT32(0);

	if (bugs & BUG_FUNC_TOP_LEAK)
		(void) MemoryContextAlloc(TopMemoryContext, 1024);
	if (bugs & BUG_FUNC_ROW_LEAK)
		(void) MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, 512);
	if (bugs & BUG_FUNC_MALLOC_LEAK)
	{
		char	   *p = malloc(4096);

		if (p != NULL)
			p[0] = (char) arg;
		last_malloc = p;
	}
	PG_RETURN_INT32(arg + 1);
}

PG_FUNCTION_INFO_V1(buggy_pg_ext_cached);

/* bug use_after_reset: the cache lives in this query's memory, the pointer forever */
static BuggyCache *
buggy_cache(FunctionCallInfo fcinfo)
{
	if (cache_in_query_memory == NULL)
	{
		cache_in_query_memory = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(BuggyCache));
		cache_in_query_memory->answer = 42;
		cache_in_query_memory->label = "buggy label";
	}
	return cache_in_query_memory;
}

/* SQL: buggy_pg_ext_cached() -> int, always 42 */
Datum
buggy_pg_ext_cached(PG_FUNCTION_ARGS)
{
	if (!(bugs & BUG_USE_AFTER_RESET))
		PG_RETURN_INT32(42);
	PG_RETURN_INT32(buggy_cache(fcinfo)->answer);
}

PG_FUNCTION_INFO_V1(buggy_pg_ext_cached_label);

/* SQL: buggy_pg_ext_cached_label() -> text, always 'buggy label' */
Datum
buggy_pg_ext_cached_label(PG_FUNCTION_ARGS)
{
	if (!(bugs & BUG_USE_AFTER_RESET))
		PG_RETURN_TEXT_P(cstring_to_text("buggy label"));
	PG_RETURN_TEXT_P(cstring_to_text(buggy_cache(fcinfo)->label));
}

PG_FUNCTION_INFO_V1(buggy_pg_ext_last_dsm_handle);

/* SQL: the handle of the last DSM segment a bug created in this backend (0: none) */
Datum
buggy_pg_ext_last_dsm_handle(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_INT64((int64) last_dsm_handle);
}
