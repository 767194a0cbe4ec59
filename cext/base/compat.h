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

/* ---------- hook signatures ---------- */

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

/* post_parse_analyze_hook gained the jumble state in 14; const in 19 */
#if PG_VERSION_NUM >= 190000
#define MC_PARSE_PARAMS ParseState *pstate, Query *query, const JumbleState *jstate
#define MC_PARSE_ARGS pstate, query, jstate
#elif PG_VERSION_NUM >= 140000
#define MC_PARSE_PARAMS ParseState *pstate, Query *query, JumbleState *jstate
#define MC_PARSE_ARGS pstate, query, jstate
#else
#define MC_PARSE_PARAMS ParseState *pstate, Query *query
#define MC_PARSE_ARGS pstate, query
#endif

/* ExecutorCheckPerms_hook takes the permission infos from 16 */
#if PG_VERSION_NUM >= 160000
#define MC_PERMS_PARAMS List *rangeTable, List *rtePermInfos, bool ereport_on_violation
#define MC_PERMS_ARGS rangeTable, rtePermInfos, ereport_on_violation
#else
#define MC_PERMS_PARAMS List *rangeTable, bool ereport_on_violation
#define MC_PERMS_ARGS rangeTable, ereport_on_violation
#endif

/* standard_ExplainOneQuery exists from 18; before, the hook replaced the code */
#if PG_VERSION_NUM >= 180000
#define MC_HAVE_STANDARD_EXPLAIN 1
#endif

/* object_access_hook_str from 15 */
#if PG_VERSION_NUM >= 150000
#define MC_HAVE_OBJECT_ACCESS_STR 1
#endif

/* ---------- memory-context methods ---------- */

/*
 * alloc gained flags in 17; free_p and realloc lost the context argument in
 * 16 (the chunk header names its method table).
 */
#if PG_VERSION_NUM >= 170000
#define MC_ALLOC_PARAMS MemoryContext context, Size size, int flags
#define MC_ALLOC_ARGS context, size, flags
#define MC_REALLOC_PARAMS void *pointer, Size size, int flags
#define MC_REALLOC_ARGS pointer, size, flags
#elif PG_VERSION_NUM >= 160000
#define MC_ALLOC_PARAMS MemoryContext context, Size size
#define MC_ALLOC_ARGS context, size
#define MC_REALLOC_PARAMS void *pointer, Size size
#define MC_REALLOC_ARGS pointer, size
#else
#define MC_ALLOC_PARAMS MemoryContext context, Size size
#define MC_ALLOC_ARGS context, size
#define MC_REALLOC_PARAMS MemoryContext context, void *pointer, Size size
#define MC_REALLOC_ARGS context, pointer, size
#endif

#if PG_VERSION_NUM >= 160000
#define MC_FREE_PARAMS void *pointer
#define MC_FREE_ARGS pointer
#else
#define MC_FREE_PARAMS MemoryContext context, void *pointer
#define MC_FREE_ARGS context, pointer
#endif

/* GenerationContextCreate took min/init/max block sizes from 15 */
#if PG_VERSION_NUM >= 150000
#define MC_GENERATION_CREATE(parent, name) \
	GenerationContextCreate((parent), (name), 0, 8192, 8192)
#else
#define MC_GENERATION_CREATE(parent, name) \
	GenerationContextCreate((parent), (name), 8192)
#endif

/* Bump contexts from 17 */
#if PG_VERSION_NUM >= 170000
#define MC_HAVE_BUMP 1
#endif

/* MemoryContextAllocZeroAligned was removed in 17 */
#if PG_VERSION_NUM < 170000
#define MC_HAVE_ALLOC_ZERO_ALIGNED 1
#endif

/* repalloc_extended from 15; palloc_aligned, repalloc0 from 16 */
#if PG_VERSION_NUM >= 150000
#define MC_HAVE_REPALLOC_EXTENDED 1
#endif
#if PG_VERSION_NUM >= 160000
#define MC_HAVE_ALIGNED_ALLOC 1
#endif

/* the pg_monitor role's OID constant was renamed in 14 */
#if PG_VERSION_NUM < 140000
#define ROLE_PG_MONITOR DEFAULT_ROLE_MONITOR
#endif

/* 13 and 14 warn about placeholders; 15 reserves the prefix */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#endif							/* PG_EXT_MEMCHECK_COMPAT_H */
