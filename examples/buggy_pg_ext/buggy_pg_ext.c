/*-------------------------------------------------------------------------
 *
 * buggy_pg_ext.c
 *		A deliberately buggy extension: the test subject of pg_ext_memcheck.
 *
 * Each bug is switched on by name in the GUC buggy_pg_ext.bugs (a comma
 * separated list; default "planner_ctx_leak,top_ctx_alloc", the reference
 * tool's two bugs):
 *
 *	planner_ctx_leak	the planner hook leaks an 8 kB child context under
 *						MessageContext per query
 *	top_ctx_alloc		ExecutorStart pallocs 8 kB in TopMemoryContext per
 *						query
 *	nested_leak			ExecutorEnd allocates 2 kB in CurrentMemoryContext on
 *						every nested execution (a SQL function called once per
 *						row grows its function context for the whole statement)
 *	dsm_leak			ExecutorEnd creates a DSM segment and never detaches
 *	relcache_leak		ExecutorEnd opens pg_class's relcache entry and never
 *						closes it
 *	crash				ExecutorStart dereferences NULL
 *
 * With the list empty it does nothing wrong.  It works preloaded and loaded
 * by CREATE EXTENSION in a session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "storage/dsm.h"
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
};

static char *bugs_string = NULL;
static int	bugs = 0;
static int	run_depth = 0;

static planner_hook_type prev_planner_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

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
		GUC_check_errdetail("Unknown bug \"%s\"; known: planner_ctx_leak, top_ctx_alloc, nested_leak, dsm_leak, relcache_leak, crash.",
							bad);
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

/* bugs top_ctx_alloc and crash */
static void
buggy_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (bugs & BUG_CRASH)
		*((volatile int *) NULL) = 42;
	if (bugs & BUG_TOP_CTX_ALLOC)
		(void) MemoryContextAlloc(TopMemoryContext, 8192);
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

/* bugs nested_leak, dsm_leak, relcache_leak */
static void
buggy_ExecutorEnd(QueryDesc *queryDesc)
{
	if ((bugs & BUG_NESTED_LEAK) && run_depth > 0)
		(void) palloc(2048);
	if ((bugs & BUG_DSM_LEAK) && run_depth == 0)
		(void) dsm_create(8192, 0);
	if ((bugs & BUG_RELCACHE_LEAK) && run_depth == 0)
		(void) RelationIdGetRelation(RelationRelationId);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
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
	MarkGUCPrefixReserved("buggy_pg_ext");

	prev_planner_hook = planner_hook;
	planner_hook = buggy_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = buggy_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = buggy_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = buggy_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = buggy_ExecutorEnd;
}

PG_FUNCTION_INFO_V1(buggy_pg_ext_bugs);

/* SQL: the active bug list; also makes CREATE EXTENSION load the library */
Datum
buggy_pg_ext_bugs(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_TEXT_P(cstring_to_text(bugs_string ? bugs_string : ""));
}
