/*-------------------------------------------------------------------------
 *
 * error_paths.c
 *		Memory on the error path, for tests only (issue 19, item 2).
 *
 * error_paths_build(mb) is the shape of a build with a memory-limit check
 * (pgvector's IVFFlat build raises "memory required is ... MB,
 * maintenance_work_mem is ... MB"; tuplesort-style builds grow a work area
 * until it exceeds the limit): it creates its own context under
 * CurrentMemoryContext, grows a work area of `mb` MB in it, 2 MB at a time,
 * and raises an ERROR when that is more than maintenance_work_mem.  Abort
 * cleanup deletes the context with the statement's memory: PostgreSQL's
 * design, not a leak.  error_paths_accumulate(mb) is the same spread over the
 * rows of a statement, as an aggregate-like accumulator does it: each call
 * adds `mb` MB to a context the function keeps in fn_extra (created under
 * fn_mcxt on its first call) and raises the ERROR once the total is more than
 * maintenance_work_mem.
 *
 * The two real bugs keep memory that abort cleanup cannot give back before
 * raising the same kind of ERROR: error_paths_top_leak() in TopMemoryContext
 * (an "error detail cache" that is never freed), error_paths_malloc_leak()
 * with malloc.  error_paths_kept() is the truth the checker's rates are
 * compared with: the footprint of every chunk kept so far.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

#define LEAK_BYTES 16000
#define WORK_PIECE (2 * 1024 * 1024)	/* the work area grows by this much */

static int64 kept_bytes = 0;
static void *volatile last_malloc = NULL;	/* keeps the compiler from dropping it */

static void
limit_exceeded(int mb)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("error_paths: the work area needs %d MB, maintenance_work_mem is %d kB",
					mb, maintenance_work_mem)));
}

PG_FUNCTION_INFO_V1(error_paths_build);

Datum
error_paths_build(PG_FUNCTION_ARGS)
{
	int32		mb = PG_GETARG_INT32(0);
	MemoryContext work;
	MemoryContext old;
	Size		total;

	if (mb <= 0 || mb > 512)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("error_paths: mb must be between 1 and 512")));
	work = AllocSetContextCreate(CurrentMemoryContext, "error_paths work area",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	for (total = 0; total < (Size) mb * 1024 * 1024; total += WORK_PIECE)
		memset(palloc(WORK_PIECE), 0x5a, WORK_PIECE);
	MemoryContextSwitchTo(old);
	/* the limit check: the context is left to abort cleanup */
	if ((int64) mb * 1024 > (int64) maintenance_work_mem)
		limit_exceeded(mb);
	MemoryContextDelete(work);
	PG_RETURN_INT32(mb);
}

PG_FUNCTION_INFO_V1(error_paths_accumulate);

/* per row: `mb` MB more in the accumulator's context, until the limit */
Datum
error_paths_accumulate(PG_FUNCTION_ARGS)
{
	int32		mb = PG_GETARG_INT32(0);
	MemoryContext acc = (MemoryContext) fcinfo->flinfo->fn_extra;
	Size		total;

	if (mb <= 0 || mb > 64)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("error_paths: mb must be between 1 and 64")));
	if (acc == NULL)
	{
		acc = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "error_paths accumulator",
									ALLOCSET_DEFAULT_SIZES);
		fcinfo->flinfo->fn_extra = acc;
	}
	for (total = 0; total < (Size) mb * 1024 * 1024; total += WORK_PIECE)
		memset(MemoryContextAlloc(acc, WORK_PIECE), 0x5a, WORK_PIECE);
	total = MemoryContextMemAllocated(acc, false);
	if ((int64) (total / 1024) > (int64) maintenance_work_mem)
		limit_exceeded((int) (total / (1024 * 1024)));
	PG_RETURN_INT32((int32) (total / (1024 * 1024)));
}

PG_FUNCTION_INFO_V1(error_paths_top_leak);

/* BUG: the "error detail cache" lives in TopMemoryContext and is never freed */
Datum
error_paths_top_leak(PG_FUNCTION_ARGS)
{
	char	   *detail = MemoryContextAlloc(TopMemoryContext, LEAK_BYTES);

	(void) fcinfo;
	memset(detail, 0, LEAK_BYTES);
	kept_bytes += GetMemoryChunkSpace(detail);
	limit_exceeded(LEAK_BYTES / 1000);
	PG_RETURN_INT32(0);
}

PG_FUNCTION_INFO_V1(error_paths_malloc_leak);

/* BUG: malloc'd, and the ERROR leaves before free() */
Datum
error_paths_malloc_leak(PG_FUNCTION_ARGS)
{
	char	   *buf = malloc(LEAK_BYTES);

	(void) fcinfo;
	if (buf == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	memset(buf, 0, LEAK_BYTES);
	last_malloc = buf;
	kept_bytes += LEAK_BYTES;
	limit_exceeded(LEAK_BYTES / 1000);
	PG_RETURN_INT32(0);
}

PG_FUNCTION_INFO_V1(error_paths_kept);

Datum
error_paths_kept(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_INT64(kept_bytes);
}
