/*-------------------------------------------------------------------------
 *
 * mcxtwrap.c
 *		Wrappers around the memory-context method tables: see the
 *		allocations made while foreign code runs, and every free, realloc,
 *		reset and delete of what it allocated.
 *
 * Every context of one kind (AllocSet, Generation, Slab, Bump) points at the
 * same method table in the PostgreSQL executable (13-15: one static table
 * per allocator; 16+: entries of mcxt_methods[]; 16+ also dispatches pfree
 * and repalloc through it by the chunk header's method id).  We find each
 * table through a live context of that kind, make its page writable once,
 * and swap entries:
 *
 *	- alloc: only while a foreign segment runs, or a foreign library calls
 *	  an allocator directly (gotwrap.c); the rest of the time PostgreSQL's
 *	  own function is in the table and core allocations cost nothing extra;
 *	- free_p, realloc, reset, delete_context: while anything is tracked, so
 *	  that tracked memory is seen leaving, whoever frees it (and, while
 *	  context_reset_storm runs, poisoned: a deleted context holding foreign
 *	  memory is then kept from reuse, resetstorm.c).
 *
 * The wrappers never allocate, never report an error and never take a
 * lock: they run inside every palloc/pfree, in critical sections and
 * during error recovery.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "utils/memutils.h"

#include "base/compat.h"
#include "observe/observe.h"


typedef enum McKind
{
	MC_KIND_ASET,
	MC_KIND_GENERATION,
	MC_KIND_SLAB,
	MC_KIND_BUMP,
	MC_NUM_KINDS
} McKind;

typedef struct McKindTable
{
	MemoryContextMethods *table;	/* the live table, or NULL */
	MemoryContextMethods orig;	/* PostgreSQL's entries */
	MemoryContextMethods wrap;	/* ours */
} McKindTable;

static McKindTable kinds[MC_NUM_KINDS];
static bool ready = false;
bool		mc_alloc_wrapped = false;
static bool free_wrapped = false;

int			mc_direct_depth = 0;
uintptr_t	mc_direct_site = 0;
int16		mc_direct_lib = MC_NO_LIB;

/* set while our own bookkeeping runs, so it is never tracked */
static int	in_wrapper = 0;

/* record an allocation: the caller a GOT wrapper saw, or the segment's */
static pg_noinline void
mc_note_alloc_slow(MemoryContext context, void *p, Size size)
{
	McWho		who;

	in_wrapper++;
	if (mc_direct_site != 0)
	{
		if (mc_direct_lib == MC_LIB_UNKNOWN)
			mc_direct_lib = (int16) mc_lib_of_address((void *) mc_direct_site);
		mc_seg_who(mc_direct_lib, &who);
		mc_track_alloc(context, p, size, mc_direct_lib, mc_direct_site, &who);
	}
	else if (mc_seg != NULL)
	{
		mc_seg_who(mc_seg->lib, &who);
		mc_track_alloc(context, p, size, mc_seg->lib, 0, &who);
	}
	in_wrapper--;
}

/* what to record for an allocation; the common cases take a few instructions */
static inline void
mc_note_alloc(MemoryContext context, void *p, Size size)
{
	if (p == NULL || in_wrapper > 0)
		return;
	if (mc_seg == NULL)
	{
		/* PostgreSQL's own, between two segments of a statement that wraps for good */
		if (mc_direct_site != 0)
			mc_note_alloc_slow(context, p, size);
		return;
	}
	/* a context that churns, allocated into inside a segment: only counted */
	if (context == mc_churn_ctx)
	{
		mc_churn_note(mc_seg->unit_id);
		return;
	}
	mc_note_alloc_slow(context, p, size);
}

/*
 * One set of wrappers per allocator kind, each calling that kind's own
 * functions: mc_aset_alloc, mc_aset_free, mc_aset_realloc, mc_aset_reset,
 * mc_aset_delete, and the same for generation, slab and bump.
 */
#define MC_KIND_WRAPPERS(prefix, kind) \
static pg_noinline void * \
prefix##_alloc_noted(MC_ALLOC_PARAMS) \
{ \
	void	   *p = kinds[kind].orig.alloc(MC_ALLOC_ARGS); \
	mc_note_alloc(context, p, size); \
	return p; \
} \
static void * \
prefix##_alloc(MC_ALLOC_PARAMS) \
{ \
	/* PostgreSQL's own allocation in a sticky statement: a tail call, no frame */ \
	if (likely(mc_seg == NULL && mc_direct_site == 0)) \
		return kinds[kind].orig.alloc(MC_ALLOC_ARGS); \
	/* into the context that churns, inside a segment: only counted */ \
	if (context == mc_churn_ctx && mc_seg != NULL && in_wrapper == 0) \
	{ \
		mc_churn_note(mc_seg->unit_id); \
		return kinds[kind].orig.alloc(MC_ALLOC_ARGS); \
	} \
	return prefix##_alloc_noted(MC_ALLOC_ARGS); \
} \
static pg_noinline void \
prefix##_free_tracked(MC_FREE_PARAMS) \
{ \
	in_wrapper++; \
	mc_track_free(pointer); \
	in_wrapper--; \
	kinds[kind].orig.free_p(MC_FREE_ARGS); \
} \
static void \
prefix##_free(MC_FREE_PARAMS) \
{ \
	/* not ours, the common case: a tail call, no frame */ \
	if (likely(in_wrapper != 0 || !mc_track_maybe_tracked(pointer))) \
		kinds[kind].orig.free_p(MC_FREE_ARGS); \
	else \
		prefix##_free_tracked(MC_FREE_ARGS); \
} \
static void * \
prefix##_realloc(MC_REALLOC_PARAMS) \
{ \
	bool		tracked = in_wrapper == 0 && mc_track_maybe_tracked(pointer); \
	void	   *p = kinds[kind].orig.realloc(MC_REALLOC_ARGS); \
	if (tracked && p != NULL) \
	{ \
		in_wrapper++; \
		mc_track_realloc(pointer, p, size); \
		in_wrapper--; \
	} \
	return p; \
} \
static void \
prefix##_reset(MemoryContext context) \
{ \
	/* a churning context holding one unit's memory, the common case: only counted */ \
	if (context == mc_churn_ctx && mc_churn_units <= 1) \
		mc_churn_units = mc_churn_last_unit = 0; \
	else if (in_wrapper == 0 && mc_track_maybe_context(context)) \
	{ \
		in_wrapper++; \
		mc_track_context_dying(context, false); \
		in_wrapper--; \
	} \
	kinds[kind].orig.reset(context); \
} \
static void \
prefix##_delete(MemoryContext context) \
{ \
	bool		keep = false; \
	if (in_wrapper == 0 && mc_track_maybe_context(context)) \
	{ \
		in_wrapper++; \
		keep = mc_track_context_dying(context, true); \
		in_wrapper--; \
	} \
	if (keep && mc_track_listeners.quarantine != NULL && \
		mc_track_listeners.quarantine(context, kinds[kind].orig.delete_context)) \
		return; \
	kinds[kind].orig.delete_context(context); \
}

MC_KIND_WRAPPERS(mc_aset, MC_KIND_ASET)
MC_KIND_WRAPPERS(mc_generation, MC_KIND_GENERATION)
MC_KIND_WRAPPERS(mc_slab, MC_KIND_SLAB)
#ifdef MC_HAVE_BUMP
MC_KIND_WRAPPERS(mc_bump, MC_KIND_BUMP)
#endif

#define MC_SET_WRAPPERS(k, prefix) \
	do { \
		kinds[k].wrap.alloc = prefix##_alloc; \
		kinds[k].wrap.free_p = prefix##_free; \
		kinds[k].wrap.realloc = prefix##_realloc; \
		kinds[k].wrap.reset = prefix##_reset; \
		kinds[k].wrap.delete_context = prefix##_delete; \
	} while (0)

/* make the page(s) of a method table writable for good */
static bool
mc_unprotect(const void *addr, Size len)
{
	long		pagesize = sysconf(_SC_PAGESIZE);
	uintptr_t	lo = (uintptr_t) addr & ~((uintptr_t) pagesize - 1);
	uintptr_t	hi = ((uintptr_t) addr + len + pagesize - 1) & ~((uintptr_t) pagesize - 1);

	return mprotect((void *) lo, hi - lo, PROT_READ | PROT_WRITE) == 0;
}

static void
mc_adopt_table(McKind k, MemoryContext sample)
{
	MemoryContextMethods *t = (MemoryContextMethods *) unconstify(MemoryContextMethods *, sample->methods);
	int			i;

	/* two kinds sharing a table would be wrapped twice */
	for (i = 0; i < MC_NUM_KINDS; i++)
		if (kinds[i].table == t)
			return;
	if (!mc_unprotect(t, sizeof(*t)))
	{
		mc_record_gap(NULL, "allocator",
					  "a memory-context method table could not be made writable; allocations in those contexts are not seen");
		return;
	}
	kinds[k].table = t;
	kinds[k].orig = *t;
	kinds[k].wrap = *t;
}

/*
 * The alloc entries to swap, with both values, filled once (a missing kind
 * swaps a dummy): a swap is four loads and four stores.  It runs at every
 * entry into foreign code and every pause of it.
 */
static void *swap_dummy;
static void **swap_slot[MC_NUM_KINDS] = {&swap_dummy, &swap_dummy, &swap_dummy, &swap_dummy};
static void *swap_value[2][MC_NUM_KINDS];

static void
mc_swap_prepare(void)
{
	int			k;

	for (k = 0; k < MC_NUM_KINDS; k++)
	{
		if (kinds[k].table == NULL)
			continue;
		swap_slot[k] = (void **) &kinds[k].table->alloc;
		swap_value[0][k] = (void *) kinds[k].orig.alloc;
		swap_value[1][k] = (void *) kinds[k].wrap.alloc;
	}
}

/* Find the method tables through sample contexts; once per backend. */
void
mc_mcxt_init(void)
{
	MemoryContext probe;

	if (ready || TopMemoryContext == NULL)
		return;
	memset(kinds, 0, sizeof(kinds));
	mc_adopt_table(MC_KIND_ASET, TopMemoryContext);
	probe = MC_GENERATION_CREATE(TopMemoryContext, "pg_ext_memcheck probe");
	mc_adopt_table(MC_KIND_GENERATION, probe);
	MemoryContextDelete(probe);
	probe = SlabContextCreate(TopMemoryContext, "pg_ext_memcheck probe", 8192, 64);
	mc_adopt_table(MC_KIND_SLAB, probe);
	MemoryContextDelete(probe);
#ifdef MC_HAVE_BUMP
	probe = BumpContextCreate(TopMemoryContext, "pg_ext_memcheck probe", 0, 8192, 8192);
	mc_adopt_table(MC_KIND_BUMP, probe);
	MemoryContextDelete(probe);
#endif
	MC_SET_WRAPPERS(MC_KIND_ASET, mc_aset);
	MC_SET_WRAPPERS(MC_KIND_GENERATION, mc_generation);
	MC_SET_WRAPPERS(MC_KIND_SLAB, mc_slab);
#ifdef MC_HAVE_BUMP
	MC_SET_WRAPPERS(MC_KIND_BUMP, mc_bump);
#endif
	ready = kinds[MC_KIND_ASET].table != NULL;
	if (ready)
		mc_swap_prepare();
}

bool
mc_mcxt_ready(void)
{
	return ready;
}

void
mc_mcxt_swap_alloc(bool on)
{
	void	  *const *v = swap_value[on ? 1 : 0];

	if (on == mc_alloc_wrapped || !ready)
		return;
	StaticAssertStmt(MC_NUM_KINDS == 4, "one store per kind below");
	*swap_slot[0] = v[0];
	*swap_slot[1] = v[1];
	*swap_slot[2] = v[2];
	*swap_slot[3] = v[3];
	mc_alloc_wrapped = on;
}

void
mc_mcxt_set_free_wrapped(bool on)
{
	int			k;

	if (on == free_wrapped || !ready)
		return;
	for (k = 0; k < MC_NUM_KINDS; k++)
	{
		McKindTable *kt = &kinds[k];

		if (kt->table == NULL)
			continue;
		kt->table->free_p = on ? kt->wrap.free_p : kt->orig.free_p;
		kt->table->realloc = on ? kt->wrap.realloc : kt->orig.realloc;
		kt->table->reset = on ? kt->wrap.reset : kt->orig.reset;
		kt->table->delete_context = on ? kt->wrap.delete_context : kt->orig.delete_context;
	}
	free_wrapped = on;
}

/* bytes a chunk occupies, header and rounding included */
Size
mc_chunk_space(void *p)
{
	return GetMemoryChunkSpace(p);
}
