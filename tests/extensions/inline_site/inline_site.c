/*-------------------------------------------------------------------------
 *
 * inline_site.c
 *		A leak whose allocating instruction is inlined from a PostgreSQL
 *		header, for tests only (issue 19, item 10).
 *
 * lib/simplehash.h generates static inline functions; SH_CREATE allocates
 * the table (MemoryContextAllocZero) and its bucket array
 * (MemoryContextAllocExtended) inside the caller's own function once the
 * compiler inlines it.  inline_site_leak() builds such a table in
 * TopMemoryContext on every call and forgets it: a leak whose return
 * address lies in simplehash.h code, inlined into inline_site_leak().  The
 * report must name inline_site_leak() and its line here, never simplehash.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

typedef struct LeakEntry
{
	uint32		key;
	char		status;
} LeakEntry;

#define SH_PREFIX leaktab
#define SH_ELEMENT_TYPE LeakEntry
#define SH_KEY_TYPE uint32
#define SH_KEY key
#define SH_HASH_KEY(tb, key) murmurhash32(key)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

PG_FUNCTION_INFO_V1(inline_site_leak);

Datum
inline_site_leak(PG_FUNCTION_ARGS)
{
	leaktab_hash *tab = leaktab_create(TopMemoryContext, 64, NULL);	/* INLINE_SITE_LINE */

	PG_RETURN_INT32((int32) tab->size);
}
