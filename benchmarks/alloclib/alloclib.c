/*-------------------------------------------------------------------------
 *
 * alloclib.c
 *		A foreign library that allocates, for the benchmarks (never loaded by
 *		the product): what pg_ext_memcheck costs when foreign code
 *		allocates on every call, and what it needs per live allocation.
 *
 * alloclib_row(int) is called once per row: 8 small pallocs in the
 * caller's (per-row) memory, half of them freed at once, the rest freed
 * with the row when PostgreSQL resets that memory.
 *
 * alloclib_hold(n, size) keeps n chunks of size bytes in a context of its
 * own under TopMemoryContext (a large cache, a big in-memory graph) and
 * returns their footprint (chunk headers included, as pg_ext_memcheck
 * counts them); alloclib_release() deletes it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

#define ALLOCLIB_PER_ROW 8

static MemoryContext hold_cxt = NULL;

PG_FUNCTION_INFO_V1(alloclib_row);

Datum
alloclib_row(PG_FUNCTION_ARGS)
{
	int32		arg = PG_GETARG_INT32(0);
	int32	   *p[ALLOCLIB_PER_ROW];
	int32		sum = 0;
	int			i;

	for (i = 0; i < ALLOCLIB_PER_ROW; i++)
	{
		p[i] = palloc(16 + 8 * i);
		*p[i] = arg + i;
	}
	for (i = 0; i < ALLOCLIB_PER_ROW; i++)
		sum += *p[i];
	for (i = 0; i < ALLOCLIB_PER_ROW; i += 2)
		pfree(p[i]);
	PG_RETURN_INT32(sum);
}

PG_FUNCTION_INFO_V1(alloclib_hold);

Datum
alloclib_hold(PG_FUNCTION_ARGS)
{
	int64		n = PG_GETARG_INT64(0);
	int32		size = PG_GETARG_INT32(1);
	int64		i;
	int64		held = 0;

	if (hold_cxt == NULL)
		hold_cxt = AllocSetContextCreate(TopMemoryContext, "alloclib hold", ALLOCSET_DEFAULT_SIZES);
	for (i = 0; i < n; i++)
	{
		char	   *p = MemoryContextAlloc(hold_cxt, size);

		*p = 1;
		held += GetMemoryChunkSpace(p);
	}
	PG_RETURN_INT64(held);
}

PG_FUNCTION_INFO_V1(alloclib_release);

Datum
alloclib_release(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	if (hold_cxt != NULL)
		MemoryContextDelete(hold_cxt);
	hold_cxt = NULL;
	PG_RETURN_VOID();
}
