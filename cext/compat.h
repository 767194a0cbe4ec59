/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Version guards for PostgreSQL 13 .. 19 used by pg_ext_memcheck.
 *
 * Every difference between major versions that the hook library touches is
 * absorbed here, so the other files read the same on every version.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EXT_MEMCHECK_COMPAT_H
#define PG_EXT_MEMCHECK_COMPAT_H

#include "postgres.h"

#include "nodes/memnodes.h"

/* MemoryContextMethods->stats gained print_to_stderr in 14 */
#if PG_VERSION_NUM >= 140000
#define MC_CONTEXT_STATS(ctx, counters) \
	(ctx)->methods->stats((ctx), NULL, NULL, (counters), false)
#else
#define MC_CONTEXT_STATS(ctx, counters) \
	(ctx)->methods->stats((ctx), NULL, NULL, (counters))
#endif

/* planner_hook gained an ExplainState argument in 19 */
#if PG_VERSION_NUM >= 190000
#define MC_PLANNER_PARAMS Query *parse, const char *query_string, \
	int cursorOptions, ParamListInfo boundParams, ExplainState *es
#define MC_PLANNER_ARGS parse, query_string, cursorOptions, boundParams, es
#else
#define MC_PLANNER_PARAMS Query *parse, const char *query_string, \
	int cursorOptions, ParamListInfo boundParams
#define MC_PLANNER_ARGS parse, query_string, cursorOptions, boundParams
#endif

/* ExecutorRun lost execute_once in 18 */
#if PG_VERSION_NUM >= 180000
#define MC_EXECRUN_PARAMS QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define MC_EXECRUN_ARGS queryDesc, direction, count
#else
#define MC_EXECRUN_PARAMS QueryDesc *queryDesc, ScanDirection direction, \
	uint64 count, bool execute_once
#define MC_EXECRUN_ARGS queryDesc, direction, count, execute_once
#endif

/* ProcessUtility gained readOnlyTree in 14 */
#if PG_VERSION_NUM >= 140000
#define MC_UTILITY_PARAMS PlannedStmt *pstmt, const char *queryString, \
	bool readOnlyTree, ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define MC_UTILITY_ARGS pstmt, queryString, readOnlyTree, context, params, \
	queryEnv, dest, qc
#else
#define MC_UTILITY_PARAMS PlannedStmt *pstmt, const char *queryString, \
	ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define MC_UTILITY_ARGS pstmt, queryString, context, params, queryEnv, dest, qc
#endif

/* 13 and 14 warn about placeholders; 15 reserves the prefix */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#endif							/* PG_EXT_MEMCHECK_COMPAT_H */
