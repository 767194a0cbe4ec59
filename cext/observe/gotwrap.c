/*-------------------------------------------------------------------------
 *
 * gotwrap.c
 *		The functions a foreign library's GOT is pointed at (gotpatch.c):
 *		its direct calls to allocators, context creation and cleanup,
 *		malloc, transaction-callback registration, and PostgreSQL's standard
 *		hook functions; shmemguard.c and dsmtrack.c add their wrappers for
 *		ShmemInitStruct and the DSM calls.
 *
 * Each wrapper behaves exactly like the function it stands for.  Around
 * the call it notes who called: the return address is the exact call site
 * in the library (turned into "buggy_pg_ext.c:123" by the reporter), and
 * the library is known from it, however that library's code was entered
 * (a hook, an SQL function, a callback, an access method).  The allocators
 * themselves record nothing here: while a wrapper runs, the memory-context
 * alloc wrapper (mcxtwrap.c) is installed and records the allocation with
 * this site.  The site is only trusted while the wrapper runs; an error
 * inside it is cleaned up at (sub)transaction abort (xactcb.c).
 *
 * Only code under test pays: PostgreSQL's own calls never go through here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdarg.h>

#include "access/xact.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "base/compat.h"

#include "observe/observe.h"

/* record direct calls only where the mode says foreign code is measured */
static inline bool
mc_direct_wanted(void)
{
	return mc_active && (mc_seg != NULL || mc_mode == MC_MODE_ALL);
}

/*
 * A library's direct call to an allocator: its return address is the site.
 * Inside a segment the allocator already carries our wrapper (mcxtwrap.c),
 * which only needs the site; outside one (code entered without a bracket)
 * the wrapper is put in for the call.  The library is looked up when the
 * allocation is recorded, not here.
 */
#define MC_DIRECT_BEGIN() MC_DIRECT_BEGIN_AT((uintptr_t) __builtin_return_address(0))
#define MC_DIRECT_BEGIN_AT(site) \
	uintptr_t	mc_saved_site_ = mc_direct_site; \
	int16		mc_saved_lib_ = mc_direct_lib; \
	bool		mc_slow_ = false; \
	if (mc_seg != NULL) \
	{ \
		mc_direct_site = (site); \
		mc_direct_lib = MC_LIB_UNKNOWN; \
	} \
	else if ((mc_slow_ = mc_direct_wanted())) \
	{ \
		mc_direct_site = (site); \
		mc_direct_lib = MC_LIB_UNKNOWN; \
		mc_direct_depth++; \
		if (!mc_alloc_wrapped) \
			mc_mcxt_swap_alloc(true); \
	}

#define MC_DIRECT_END() \
	mc_direct_site = mc_saved_site_; \
	mc_direct_lib = mc_saved_lib_; \
	if (mc_slow_) \
	{ \
		mc_direct_depth--; \
		if (mc_seg == NULL && mc_direct_depth == 0) \
			mc_mcxt_set_alloc_wrapped(false); \
	}

/* ---------- palloc and friends ---------- */

/*
 * The common allocators in two parts.  An allocation into the context that
 * churns (reset after every unit of work, mc_churn_note) from inside a
 * segment is only counted, by the allocator's wrapper: it needs no site and
 * goes straight on, without a frame.  The rest records the library's site.
 * `ctx` is the context the call allocates in.
 */
#define MC_GOT_ALLOC(fn, ctx, params, args) \
static pg_noinline void * \
mc_got_##fn##_at(uintptr_t site, params) \
{ \
	void	   *p; \
	MC_DIRECT_BEGIN_AT(site); \
	p = fn(args); \
	MC_DIRECT_END(); \
	return p; \
} \
static void * \
mc_got_##fn(params) \
{ \
	if (mc_seg != NULL && (ctx) == mc_churn_ctx) \
		return fn(args);		/* only counted */ \
	return mc_got_##fn##_at((uintptr_t) __builtin_return_address(0), args); \
}
#define MC_SIZE_P Size size
#define MC_SIZE_A size
#define MC_SIZE_FLAGS_P Size size, int flags
#define MC_SIZE_FLAGS_A size, flags
#define MC_CTX_SIZE_P MemoryContext context, Size size
#define MC_CTX_SIZE_A context, size
#define MC_CTX_SIZE_FLAGS_P MemoryContext context, Size size, int flags
#define MC_CTX_SIZE_FLAGS_A context, size, flags

MC_GOT_ALLOC(palloc, CurrentMemoryContext, MC_SIZE_P, MC_SIZE_A)

MC_GOT_ALLOC(palloc0, CurrentMemoryContext, MC_SIZE_P, MC_SIZE_A)

MC_GOT_ALLOC(palloc_extended, CurrentMemoryContext, MC_SIZE_FLAGS_P, MC_SIZE_FLAGS_A)

MC_GOT_ALLOC(MemoryContextAlloc, context, MC_CTX_SIZE_P, MC_CTX_SIZE_A)

MC_GOT_ALLOC(MemoryContextAllocZero, context, MC_CTX_SIZE_P, MC_CTX_SIZE_A)

#ifdef MC_HAVE_ALLOC_ZERO_ALIGNED
static void *
mc_got_MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	void	   *p;

	MC_DIRECT_BEGIN();
	p = MemoryContextAllocZeroAligned(context, size);
	MC_DIRECT_END();
	return p;
}
#endif

MC_GOT_ALLOC(MemoryContextAllocExtended, context, MC_CTX_SIZE_FLAGS_P, MC_CTX_SIZE_FLAGS_A)

static void *
mc_got_MemoryContextAllocHuge(MemoryContext context, Size size)
{
	void	   *p;

	MC_DIRECT_BEGIN();
	p = MemoryContextAllocHuge(context, size);
	MC_DIRECT_END();
	return p;
}

#ifdef MC_HAVE_ALIGNED_ALLOC
static void *
mc_got_palloc_aligned(Size size, Size alignto, int flags)
{
	void	   *p;

	MC_DIRECT_BEGIN();
	p = palloc_aligned(size, alignto, flags);
	MC_DIRECT_END();
	return p;
}

static void *
mc_got_MemoryContextAllocAligned(MemoryContext context, Size size, Size alignto, int flags)
{
	void	   *p;

	MC_DIRECT_BEGIN();
	p = MemoryContextAllocAligned(context, size, alignto, flags);
	MC_DIRECT_END();
	return p;
}
#endif

static char *
mc_got_pstrdup(const char *in)
{
	char	   *p;

	MC_DIRECT_BEGIN();
	p = pstrdup(in);
	MC_DIRECT_END();
	return p;
}

static char *
mc_got_pnstrdup(const char *in, Size len)
{
	char	   *p;

	MC_DIRECT_BEGIN();
	p = pnstrdup(in, len);
	MC_DIRECT_END();
	return p;
}

static char *
mc_got_MemoryContextStrdup(MemoryContext context, const char *string)
{
	char	   *p;

	MC_DIRECT_BEGIN();
	p = MemoryContextStrdup(context, string);
	MC_DIRECT_END();
	return p;
}

static char *
mc_got_pchomp(const char *in)
{
	char	   *p;

	MC_DIRECT_BEGIN();
	p = pchomp(in);
	MC_DIRECT_END();
	return p;
}

/* psprintf's own algorithm, since a variadic call cannot be forwarded */
static char *mc_got_psprintf(const char *fmt,...) pg_attribute_printf(1, 2);

static char *
mc_got_psprintf(const char *fmt,...)
{
	int			save_errno = errno;
	size_t		len = 128;
	char	   *result = NULL;

	MC_DIRECT_BEGIN();
	for (;;)
	{
		va_list		args;
		size_t		newlen;

		result = (char *) palloc(len);
		errno = save_errno;
		va_start(args, fmt);
		newlen = pvsnprintf(result, len, fmt, args);
		va_end(args);
		if (newlen < len)
			break;
		pfree(result);
		len = newlen;
	}
	MC_DIRECT_END();
	return result;
}

/* ---------- contexts the library creates and cleans up ---------- */

static void
mc_note_created(MemoryContext ctx, void *ret)
{
	int			lib;

	if (ctx == NULL || !mc_direct_wanted())
		return;
	lib = mc_lib_of_address(ret);
	if (lib != MC_NO_LIB)
		mc_track_context_created(ctx, lib, (uintptr_t) ret);
}

static MemoryContext
mc_got_AllocSetContextCreateInternal(MemoryContext parent, const char *name,
									 Size minContextSize, Size initBlockSize,
									 Size maxBlockSize)
{
	MemoryContext ctx;

	MC_DIRECT_BEGIN();
	ctx = AllocSetContextCreateInternal(parent, name, minContextSize,
										initBlockSize, maxBlockSize);
	MC_DIRECT_END();
	mc_note_created(ctx, __builtin_return_address(0));
	return ctx;
}

#if PG_VERSION_NUM >= 150000
static MemoryContext
mc_got_GenerationContextCreate(MemoryContext parent, const char *name,
							   Size minContextSize, Size initBlockSize,
							   Size maxBlockSize)
{
	MemoryContext ctx = GenerationContextCreate(parent, name, minContextSize,
												initBlockSize, maxBlockSize);

	mc_note_created(ctx, __builtin_return_address(0));
	return ctx;
}
#else
static MemoryContext
mc_got_GenerationContextCreate(MemoryContext parent, const char *name, Size blockSize)
{
	MemoryContext ctx = GenerationContextCreate(parent, name, blockSize);

	mc_note_created(ctx, __builtin_return_address(0));
	return ctx;
}
#endif

static MemoryContext
mc_got_SlabContextCreate(MemoryContext parent, const char *name, Size blockSize,
						 Size chunkSize)
{
	MemoryContext ctx = SlabContextCreate(parent, name, blockSize, chunkSize);

	mc_note_created(ctx, __builtin_return_address(0));
	return ctx;
}

#ifdef MC_HAVE_BUMP
static MemoryContext
mc_got_BumpContextCreate(MemoryContext parent, const char *name, Size minContextSize,
						 Size initBlockSize, Size maxBlockSize)
{
	MemoryContext ctx = BumpContextCreate(parent, name, minContextSize,
										  initBlockSize, maxBlockSize);

	mc_note_created(ctx, __builtin_return_address(0));
	return ctx;
}
#endif

#if PG_VERSION_NUM >= 140000
#define MC_HASHCTL const HASHCTL
#else
#define MC_HASHCTL HASHCTL
#endif

/* a hash table brings its own context, created under TopMemoryContext or hcxt */
static HTAB *
mc_got_hash_create(const char *tabname, long nelem, MC_HASHCTL *info, int flags)
{
	MemoryContext parent = NULL;
	MemoryContext before = NULL;
	HTAB	   *htab;

	if (!(flags & HASH_SHARED_MEM))
		parent = (flags & HASH_CONTEXT) ? info->hcxt : TopMemoryContext;
	if (parent != NULL)
		before = parent->firstchild;
	{
		MC_DIRECT_BEGIN();
		htab = hash_create(tabname, nelem, info, flags);
		MC_DIRECT_END();
	}
	if (parent != NULL && parent->firstchild != before && parent->firstchild != NULL &&
		strcmp(parent->firstchild->name, "dynahash") == 0)
		mc_note_created(parent->firstchild, __builtin_return_address(0));
	return htab;
}

/* the library's own cleanup: what it releases there is not judged as left behind */
#define MC_CLEANUP(call) \
	do { \
		int16		mc_saved_cleaner_ = mc_cleanup_lib; \
		mc_cleanup_lib = (int16) mc_lib_of_address(__builtin_return_address(0)); \
		mc_explicit_cleanup++; \
		call; \
		mc_explicit_cleanup--; \
		mc_cleanup_lib = mc_saved_cleaner_; \
	} while (0)

static void
mc_got_hash_destroy(HTAB *hashp)
{
	MC_CLEANUP(hash_destroy(hashp));
}

static void
mc_got_MemoryContextDelete(MemoryContext context)
{
	MC_CLEANUP(MemoryContextDelete(context));
}

static void
mc_got_MemoryContextReset(MemoryContext context)
{
	MC_CLEANUP(MemoryContextReset(context));
}

static void
mc_got_MemoryContextDeleteChildren(MemoryContext context)
{
	MC_CLEANUP(MemoryContextDeleteChildren(context));
}

static void
mc_got_MemoryContextResetChildren(MemoryContext context)
{
	MC_CLEANUP(MemoryContextResetChildren(context));
}

/* a context moved under another parent is freed with that one */
static void
mc_got_MemoryContextSetParent(MemoryContext context, MemoryContext new_parent)
{
	MemoryContextSetParent(context, new_parent);
	if (mc_active && context != NULL && mc_track_has_contexts())
		mc_track_context_moved(context);
}

/* ---------- malloc: memory outside every context ---------- */

static void
mc_note_malloc(void *p, void *ret)
{
	int			lib;
	McWho		who;

	if (p == NULL || !mc_direct_wanted())
		return;
	lib = mc_lib_of_address(ret);
	if (lib == MC_NO_LIB)
		return;
	mc_seg_who(lib, &who);
	mc_track_alloc(MC_MALLOC_HEAP, p, malloc_usable_size(p), lib, (uintptr_t) ret, &who);
}

static void *
mc_got_malloc(size_t size)
{
	void	   *p = malloc(size);

	mc_note_malloc(p, __builtin_return_address(0));
	return p;
}

static void *
mc_got_calloc(size_t n, size_t size)
{
	void	   *p = calloc(n, size);

	mc_note_malloc(p, __builtin_return_address(0));
	return p;
}

static void *
mc_got_realloc(void *old, size_t size)
{
	void	   *p;

	if (old != NULL && mc_track_maybe_tracked(old))
		mc_track_free(old);
	p = realloc(old, size);
	mc_note_malloc(p, __builtin_return_address(0));
	return p;
}

static void
mc_got_free(void *p)
{
	if (p != NULL && mc_track_maybe_tracked(p))
		mc_track_free(p);
	free(p);
}

static char *
mc_got_strdup(const char *s)
{
	char	   *p = strdup(s);

	mc_note_malloc(p, __builtin_return_address(0));
	return p;
}

static char *
mc_got_strndup(const char *s, size_t n)
{
	char	   *p = strndup(s, n);

	mc_note_malloc(p, __builtin_return_address(0));
	return p;
}

static int
mc_got_posix_memalign(void **memptr, size_t alignment, size_t size)
{
	int			rc = posix_memalign(memptr, alignment, size);

	if (rc == 0)
		mc_note_malloc(*memptr, __builtin_return_address(0));
	return rc;
}

/* ---------- the target list and patching ---------- */

#define MC_TARGET(fn) {#fn, (void *) mc_got_##fn, NULL}

/*
 * The hot targets: every allocator and cleanup call, run again and again by
 * a library's code.  They point at our wrappers only while measuring is on
 * in this process (mc_gotwrap_set_hot); with it off the library calls
 * PostgreSQL and libc directly and pays nothing.  hot_originals[] puts the
 * real functions back, slot for slot.
 */
#define MC_ORIGINAL(fn) {#fn, (void *) fn, NULL}

static const McGotTarget hot_wrappers[] = {
	MC_TARGET(palloc),
	MC_TARGET(palloc0),
	MC_TARGET(palloc_extended),
	MC_TARGET(MemoryContextAlloc),
	MC_TARGET(MemoryContextAllocZero),
#ifdef MC_HAVE_ALLOC_ZERO_ALIGNED
	MC_TARGET(MemoryContextAllocZeroAligned),
#endif
	MC_TARGET(MemoryContextAllocExtended),
	MC_TARGET(MemoryContextAllocHuge),
#ifdef MC_HAVE_ALIGNED_ALLOC
	MC_TARGET(palloc_aligned),
	MC_TARGET(MemoryContextAllocAligned),
#endif
	MC_TARGET(pstrdup),
	MC_TARGET(pnstrdup),
	MC_TARGET(MemoryContextStrdup),
	MC_TARGET(pchomp),
	MC_TARGET(psprintf),
	MC_TARGET(AllocSetContextCreateInternal),
	MC_TARGET(GenerationContextCreate),
	MC_TARGET(SlabContextCreate),
#ifdef MC_HAVE_BUMP
	MC_TARGET(BumpContextCreate),
#endif
	MC_TARGET(hash_create),
	MC_TARGET(hash_destroy),
	MC_TARGET(MemoryContextDelete),
	MC_TARGET(MemoryContextReset),
	MC_TARGET(MemoryContextDeleteChildren),
	MC_TARGET(MemoryContextResetChildren),
	MC_TARGET(MemoryContextSetParent),
	MC_TARGET(malloc),
	MC_TARGET(calloc),
	MC_TARGET(realloc),
	MC_TARGET(free),
	MC_TARGET(strdup),
	MC_TARGET(strndup),
	MC_TARGET(posix_memalign),
};

static const McGotTarget hot_originals[] = {
	MC_ORIGINAL(palloc),
	MC_ORIGINAL(palloc0),
	MC_ORIGINAL(palloc_extended),
	MC_ORIGINAL(MemoryContextAlloc),
	MC_ORIGINAL(MemoryContextAllocZero),
#ifdef MC_HAVE_ALLOC_ZERO_ALIGNED
	MC_ORIGINAL(MemoryContextAllocZeroAligned),
#endif
	MC_ORIGINAL(MemoryContextAllocExtended),
	MC_ORIGINAL(MemoryContextAllocHuge),
#ifdef MC_HAVE_ALIGNED_ALLOC
	MC_ORIGINAL(palloc_aligned),
	MC_ORIGINAL(MemoryContextAllocAligned),
#endif
	MC_ORIGINAL(pstrdup),
	MC_ORIGINAL(pnstrdup),
	MC_ORIGINAL(MemoryContextStrdup),
	MC_ORIGINAL(pchomp),
	MC_ORIGINAL(psprintf),
	MC_ORIGINAL(AllocSetContextCreateInternal),
	MC_ORIGINAL(GenerationContextCreate),
	MC_ORIGINAL(SlabContextCreate),
#ifdef MC_HAVE_BUMP
	MC_ORIGINAL(BumpContextCreate),
#endif
	MC_ORIGINAL(hash_create),
	MC_ORIGINAL(hash_destroy),
	MC_ORIGINAL(MemoryContextDelete),
	MC_ORIGINAL(MemoryContextReset),
	MC_ORIGINAL(MemoryContextDeleteChildren),
	MC_ORIGINAL(MemoryContextResetChildren),
	MC_ORIGINAL(MemoryContextSetParent),
	MC_ORIGINAL(malloc),
	MC_ORIGINAL(calloc),
	MC_ORIGINAL(realloc),
	MC_ORIGINAL(free),
	MC_ORIGINAL(strdup),
	MC_ORIGINAL(strndup),
	MC_ORIGINAL(posix_memalign),
};

#define MC_MAX_EXTRA_TARGETS 64

static McGotTarget extra_targets[MC_MAX_EXTRA_TARGETS];
static int	nextra = 0;
static bool patching_started = false;
static bool lib_done[MC_MAX_LIBS];
static bool core_done = false;
static bool hot = false;		/* the hot targets are patched in */

/*
 * PostgreSQL itself frees what an extension malloc'd (GUC check hooks' extra
 * data before 16, for one): its own calls to free and realloc go through
 * this too, so such memory is not mistaken for a leak.
 */
static void
mc_core_free(void *p)
{
	if (p != NULL && mc_track_maybe_tracked(p))
		mc_track_free(p);
	free(p);
}

static void *
mc_core_realloc(void *old, size_t size)
{
	if (old != NULL && mc_track_maybe_tracked(old))
		mc_track_free(old);
	return realloc(old, size);
}

/*
 * A library PostgreSQL loads (LOAD, CREATE EXTENSION, the first call of a
 * function, a library listed after us in shared_preload_libraries) is
 * followed the moment dlopen() returns, before PostgreSQL runs its
 * _PG_init: what it registers there (transaction callbacks, background
 * workers) and allocates there goes through our wrappers too.
 */
static void *
mc_core_dlopen(const char *file, int mode)
{
	void	   *handle = dlopen(file, mode);

	if (handle != NULL && mc_foreign_scan() > 0)
		mc_gotwrap_patch_all();
	return handle;
}

#define MC_MAX_CORE_TARGETS 8

/* the first MC_CORE_HOT are hot (patched in only while measuring) */
#define MC_CORE_HOT 2
static McGotTarget core_targets[MC_MAX_CORE_TARGETS] = {
	{"free", (void *) mc_core_free, NULL},
	{"realloc", (void *) mc_core_realloc, NULL},
	{"dlopen", (void *) mc_core_dlopen, NULL},
};
static const McGotTarget core_originals[MC_CORE_HOT] = {
	{"free", (void *) free, NULL},
	{"realloc", (void *) realloc, NULL},
};
static int	ncore_targets = 3;

/* a higher layer's wrapper for one of PostgreSQL's own calls (entry/: dlsym), at start-up */
void
mc_gotwrap_add_core_target(const McGotTarget *target)
{
	if (core_done || ncore_targets >= MC_MAX_CORE_TARGETS)
		elog(ERROR, "pg_ext_memcheck: core GOT target %s added too late or too many", target->symbol);
	core_targets[ncore_targets++] = *target;
}

/*
 * PostgreSQL's own calls (at _PG_init, once every layer added its
 * targets): free and realloc, dlopen, and the higher layers' (dlsym).
 */
void
mc_gotwrap_patch_core(void)
{
	char		why[128];

	patching_started = true;
	if (core_done || !mc_core_known())
		return;
	core_done = true;
	/* free and realloc are hot: patched in only while measuring (mc_gotwrap_set_hot) */
	if (mc_got_patch_object(mc_core_base(), true, core_targets + MC_CORE_HOT, ncore_targets - MC_CORE_HOT,
							why, sizeof(why)) < 0 ||
		(hot && mc_got_patch_object(mc_core_base(), true, core_targets, MC_CORE_HOT, why, sizeof(why)) < 0))
		mc_record_gap(NULL, "PostgreSQL's own calls",
					  "PostgreSQL's own free() and dlopen() calls cannot be followed: memory an extension malloc'd and PostgreSQL freed may be reported as a leak, and what a library registers in its _PG_init is not bracketed");
}

/*
 * A higher layer's wrappers (entry/: the standard functions' brackets and
 * callback registration; checks/: shared memory and DSM), added at
 * start-up, before anything is patched.
 */
void
mc_gotwrap_add_targets(const McGotTarget *add, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (patching_started || nextra >= (int) MC_MAX_EXTRA_TARGETS)
			elog(ERROR, "pg_ext_memcheck: GOT target %s added too late or too many", add[i].symbol);
		extra_targets[nextra++] = add[i];
	}
}

static void
mc_patch_lib_gap(int i, const char *why)
{
	char		detail[256];

	snprintf(detail, sizeof(detail),
			 "the calls %s makes to PostgreSQL and libc cannot be followed because %s; only its hook code is measured",
			 mc_lib_name(i), why);
	mc_record_gap(mc_lib_name(i), "direct calls", detail);
}

/* Patch every foreign library not patched yet (after loading, once). */
void
mc_gotwrap_patch_all(void)
{
	int			i;

	patching_started = true;
	for (i = 0; i < mc_lib_count(); i++)
	{
		char		why[128];

		if (lib_done[i])
			continue;
		lib_done[i] = true;
		if (mc_got_patch_object(mc_lib_base(i), false, extra_targets, nextra, why, sizeof(why)) < 0 ||
			(hot && mc_got_patch_object(mc_lib_base(i), false, hot_wrappers, lengthof(hot_wrappers),
										why, sizeof(why)) < 0))
			mc_patch_lib_gap(i, why);
	}
}

/*
 * Measuring switched on or off in this process: the libraries' allocator
 * and cleanup slots (and PostgreSQL's free and realloc) point at our
 * wrappers, or at the real functions again.  Only pointer stores, under
 * mprotect: safe from an assign hook.
 */
void
mc_gotwrap_set_hot(bool on)
{
	int			i;
	char		why[128];

	if (on == hot)
		return;
	hot = on;
	for (i = 0; i < mc_lib_count(); i++)
		if (lib_done[i])
			(void) mc_got_patch_object(mc_lib_base(i), false, on ? hot_wrappers : hot_originals,
									   on ? lengthof(hot_wrappers) : lengthof(hot_originals),
									   why, sizeof(why));
	if (core_done)
		(void) mc_got_patch_object(mc_core_base(), true, on ? core_targets : core_originals,
								   MC_CORE_HOT, why, sizeof(why));
}
