/*-------------------------------------------------------------------------
 *
 * track.c
 *		The allocations foreign code made, and the judgments on them.
 *
 * Every allocation made by foreign code (directly through its GOT, or by
 * PostgreSQL inside a foreign segment) is kept as a "chunk" record until it
 * is freed, reallocated or its context is reset or deleted.  Chunks are
 * grouped three ways:
 *
 *	bucket	(context, library, call site): what the reports list as sites;
 *	group	(context, library, kind): what is judged; kind is plain memory,
 *			or child contexts the library created (a context created by
 *			foreign code is a "pseudo-chunk" of its parent, sized by its
 *			blocks);
 *	ctx		the context: its groups, where it sits, whether foreign code
 *			created it.
 *
 * Two judgments turn records into findings (findings.c):
 *
 *	- at a context's reset or delete (mcxtwrap.c), memory that piled up in
 *	  it over several calls of the library and is only now released: its
 *	  lifetime is the statement or the transaction, its rate bytes per call;
 *	  child contexts the library created and left for PostgreSQL to free
 *	  are reported there too;
 *	- after every transaction (lazily, at the next event) and at every
 *	  run_scenario iteration, memory still held in long-lived contexts:
 *	  growth that repeats is a leak (backend lifetime), growth that happened
 *	  once is a cache (never above INFO).
 *
 * Records live in malloc'd pools: nothing here touches palloc, takes a
 * lock or reports an error, because it runs inside the allocator.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "observe/observe.h"


typedef enum McChunkKind
{
	MC_CHUNK_MEMORY,			/* a palloc'd chunk, or malloc'd block */
	MC_CHUNK_CONTEXT			/* a child context (pseudo-chunk) */
} McChunkKind;

typedef struct McChunk
{
	uintptr_t	ptr;			/* chunk address, or the child context */
	uint32		size;			/* its footprint (capped) */
	uint32		req;			/* bytes asked for (capped): what may be poisoned */
	uint32		hnext;
	uint32		bprev;
	uint32		bnext;
	uint32		bucket;
	uint32		unit_id;		/* the unit of work that allocated it (segment.c) */
	uint32		xact;
	uint32		epoch;			/* the judgment interval it was allocated in */
	uint8		kind;
	bool		sampled;		/* stands for MC_SAMPLE_BYTES (or its size if more) */
} McChunk;

/*
 * Beyond pg_ext_memcheck.max_tracked_allocations live records, allocations
 * are sampled: one per MC_SAMPLE_BYTES allocated on average (a countdown
 * drawn anew after each sample, so that no allocation pattern aliases with
 * it), each sample standing for that many bytes.  A library holding
 * millions of small chunks (a big cache, an index build, an in-memory
 * graph) is followed at a fixed cost instead of a record per chunk:
 * what it holds is an unbiased estimate, and the finding says so.
 */
#define MC_SAMPLE_BYTES 4096

static inline int64
mc_chunk_weight(const McChunk *c)
{
	return c->sampled ? Max((int64) c->size, MC_SAMPLE_BYTES) : (int64) c->size;
}

typedef struct McBucket
{
	uintptr_t	site;			/* return address in the library, or 0 */
	uint32		group;
	uint32		gnext;			/* next bucket of the group */
	uint32		hnext;
	uint32		chunks;			/* list of live chunks */
	int64		live_bytes;
	int64		live_count;
	int64		units;			/* distinct units of work that allocated here */
	uint8		unit;			/* their kind: McUnit */
	int64		alloc_bytes;	/* allocated here (sampled or not), and this interval's */
	int64		alloc_bytes_epoch;
	int64		units_epoch;	/* distinct units that allocated here this interval */
	uint32		units_epoch_last;
	uint32		units_epoch_of;	/* the interval units_epoch counts */
	bool		sampled;		/* some of its memory is known by sample only */
	uint32		last_unit;
	/* child contexts deleted by PostgreSQL, waiting for the parent's judgment */
	int64		dead_bytes;
	int64		dead_count;
	int64		dead_units;
	uint32		dead_last_unit;
	const char *child_name;		/* for MC_CHUNK_CONTEXT buckets */
	bool		kept_alive;		/* ... contexts PostgreSQL kept because of this memory */
	uint8		phase;
	uint8		entry_kind;
	uint32		entry_id;
	bool		used;
} McBucket;

typedef struct McGroup
{
	uint32		ctx;			/* McCtx index */
	int16		lib;
	uint8		kind;
	uint32		buckets;
	uint32		hnext;
	uint32		cnext;			/* next group of the same context */
	uint32		anext;			/* list of all groups */
	uint32		aprev;
	int64		live_bytes;
	int64		live_count;
	uint32		oldest_xact;	/* transaction of the oldest live chunk (approx.) */
	/* what happened since the last judgment */
	int64		allocs_since;
	/* the backend-lifetime series */
	int64		judged_bytes;
	int32		intervals;
	int32		growths;
	int32		first_growth;
	int64		growth_bytes;
	int64		growth_units;
	int64		peak_bytes;		/* of those, the growing interval that kept most (a warm-up?) */
	int64		peak_units;
	int32		quiet;			/* intervals since growth in which the library ran and it did not grow */
	int64		ran_units;		/* units the library ran in, in the intervals it grew in */
	int64		quiet_units;	/* of those, units that did not keep memory here */
	uint8		interval_unit;
	bool		used;
	bool		sampled;		/* some of its memory is known by sample only */
	/* memory in a context the library created: carried by that context's record */
	int64		folded_bytes;	/* what of it the record carries */
	int64		fold_units;		/* units that grew its children this interval */
	int64		carried;		/* of live_bytes, the memory of contexts its records stand for */
} McGroup;

typedef struct McCtx
{
	MemoryContext ctx;
	const char *name;			/* identity: addresses are reused */
	uint32		hnext;
	uint32		groups;
	bool		foreign_created;
	int16		creator_lib;
	uint32		pseudo;			/* its pseudo-chunk in the parent, or 0 */
	int64		folded;			/* its creator's memory in it, carried by the pseudo-chunk */
	MemoryContext parent;		/* its parent when last seen alive (a dying context has none) */
	bool		placed;			/* depth and path are filled (mc_ctx_place) */
	uint8		life;			/* by where it sits, when first seen or last reset */
	/* churn mode: see mc_churn_note() */
	uint8		calm_resets;	/* resets in a row that released one unit's memory */
	bool		churn;
	uint32		churn_units;	/* units that allocated since the last reset */
	uint32		churn_last_unit;
	uint32		churn_next;		/* list of churning contexts */
	int16		depth;
	char		path[MC_PATH_LEN];
	bool		used;
} McCtx;

/* ---------- pools: index 0 is "none" ---------- */

#define MC_POOL(type, name) \
	static type *name = NULL; \
	static uint32 name##_cap = 0; \
	static uint32 name##_free = 0; \
	static uint32 name##_used = 0

MC_POOL(McChunk, chunks);
MC_POOL(McBucket, buckets);
MC_POOL(McGroup, groups);
MC_POOL(McCtx, ctxs);

/* hash heads, power-of-two sized */
static uint32 *chunk_hash = NULL;
static uint32 chunk_hash_mask = 0;
static uint32 *bucket_hash = NULL;
static uint32 *group_hash = NULL;
static uint32 *ctx_hash = NULL;
#define MC_SMALL_HASH 1024		/* buckets, groups, contexts */

/* one-byte presence counters: pfree asks "could this be ours?" cheaply (observe.h) */
uint8		mc_chunk_hint[1 << MC_HINT_BITS];
uint8		mc_ctx_hint[1 << MC_HINT_BITS];

static uint32 all_groups = 0;	/* list head of used groups */
static int64 untracked = 0;
static int64 live_exact = 0;	/* records that are not samples */
static int64 sample_countdown = MC_SAMPLE_BYTES;
static uint64 sample_rng = UINT64CONST(0x2545F4914F6CDD1D);
static int64 sampled_total = 0; /* samples taken */
static int64 live_chunks = 0;

/* the tracked chunk freed last: a corruption warning raised while freeing it names its site */
static uintptr_t last_freed_ptr = 0;
static int16 last_freed_lib = MC_NO_LIB;
static uintptr_t last_freed_site = 0;
static bool untracked_noted = false;
static uint32 xact_seq = 1;
static uint32 judge_epoch = 1;	/* counts judgments: chunks of this interval */
static bool judge_pending = false;

/* stack traces for allocations PostgreSQL made on foreign code's behalf */
#define MC_MAX_SUSPECTS 16
#define MC_BACKTRACES_PER_STATEMENT 32
static const char *suspects[MC_MAX_SUSPECTS];
static int	nsuspects = 0;
static int	backtrace_budget = MC_BACKTRACES_PER_STATEMENT;

/* the bucket the last allocation went to (cleared whenever a bucket is released) */
static uint32 last_bucket = 0;
static MemoryContext last_ctx = NULL;
static uintptr_t last_site = 0;
static int16 last_lib = MC_NO_LIB;
static uint8 last_kind = 0;
static uint64 budget_statement = 0;

int			mc_explicit_cleanup = 0;
int16		mc_cleanup_lib = MC_NO_LIB;

/* filled by checks/ at start-up; the flags are set while a probe or storm runs */
McTrackListeners mc_track_listeners;

static inline uint32
mc_hash_ptr(uintptr_t p, int bits)
{
	return (uint32) (((uint64) (p >> 3) * UINT64CONST(0x9E3779B97F4A7C15)) >> (64 - bits));
}

/* grow a pool so that at least one free slot exists; false when out of memory */
static bool
mc_pool_grow(void **pool, uint32 *cap, Size elem, uint32 limit)
{
	uint32		newcap = *cap == 0 ? 256 : *cap * 2;
	void	   *p;

	if (*cap >= limit)
		return false;
	if (newcap > limit)
		newcap = limit;
	p = realloc(*pool, (Size) newcap * elem);
	if (p == NULL)
		return false;
	memset((char *) p + (Size) *cap * elem, 0, (Size) (newcap - *cap) * elem);
	*pool = p;
	*cap = newcap;
	return true;
}

#define MC_POOL_ALLOC(name, limit, out) \
	do { \
		(out) = 0; \
		if (name##_free != 0) \
		{ \
			(out) = name##_free; \
			name##_free = name[(out)].hnext; \
		} \
		else \
		{ \
			if (name##_used + 1 >= name##_cap && \
				!mc_pool_grow((void **) &name, &name##_cap, sizeof(*name), (limit))) \
				break; \
			(out) = ++name##_used; \
		} \
		memset(&name[(out)], 0, sizeof(*name)); \
	} while (0)

#define MC_POOL_FREE(name, i) \
	do { \
		memset(&name[(i)], 0, sizeof(*name)); \
		name[(i)].hnext = name##_free; \
		name##_free = (i); \
	} while (0)

static bool
mc_tables_ready(void)
{
	if (chunk_hash != NULL)
		return true;
	chunk_hash_mask = (1u << 16) - 1;
	chunk_hash = calloc((Size) chunk_hash_mask + 1, sizeof(uint32));
	bucket_hash = calloc(MC_SMALL_HASH, sizeof(uint32));
	group_hash = calloc(MC_SMALL_HASH, sizeof(uint32));
	ctx_hash = calloc(MC_SMALL_HASH, sizeof(uint32));
	if (chunk_hash == NULL || bucket_hash == NULL || group_hash == NULL || ctx_hash == NULL)
	{
		free(chunk_hash);
		free(bucket_hash);
		free(group_hash);
		free(ctx_hash);
		chunk_hash = bucket_hash = group_hash = ctx_hash = NULL;
		return false;
	}
	return true;
}

/* keep the chunk hash at least as large as the pool */
static void
mc_chunk_hash_resize(void)
{
	uint32		newmask;
	uint32	   *h;
	uint32		i;

	if (chunks_cap <= chunk_hash_mask + 1)
		return;
	newmask = chunk_hash_mask;
	while (newmask + 1 < chunks_cap)
		newmask = newmask * 2 + 1;
	h = calloc((Size) newmask + 1, sizeof(uint32));
	if (h == NULL)
		return;
	for (i = 1; i <= chunks_used; i++)
	{
		McChunk    *c = &chunks[i];
		uint32		slot;

		if (c->bucket == 0)
			continue;
		slot = mc_hash_ptr(c->ptr, 32) & newmask;
		c->hnext = h[slot];
		h[slot] = i;
	}
	free(chunk_hash);
	chunk_hash = h;
	chunk_hash_mask = newmask;
}

/* ---------- contexts ---------- */

static uint32
mc_ctx_find(MemoryContext ctx)
{
	uint32		i;

	if (mc_ctx_hint[mc_hint_slot(ctx)] == 0 || ctx_hash == NULL)
		return 0;
	for (i = ctx_hash[mc_hash_ptr((uintptr_t) ctx, 10)]; i != 0; i = ctxs[i].hnext)
		if (ctxs[i].ctx == ctx)
			return i;
	return 0;
}

static uint32
mc_ctx_get(MemoryContext ctx)
{
	uint32		i = mc_ctx_find(ctx);
	uint32		slot;
	McCtx	   *r;

	if (i != 0)
	{
		/* an address reused by a new context: forget the old one's identity */
		if (ctx != MC_MALLOC_HEAP && ctxs[i].name != ctx->name)
		{
			ctxs[i].name = ctx->name;
			ctxs[i].parent = ctx->parent;
		}
		return i;
	}
	MC_POOL_ALLOC(ctxs, 65536, i);
	if (i == 0)
		return 0;
	r = &ctxs[i];
	r->used = true;
	r->ctx = ctx;
	r->name = ctx == MC_MALLOC_HEAP ? "malloc heap" : ctx->name;
	r->parent = ctx == MC_MALLOC_HEAP ? NULL : ctx->parent;
	r->life = (uint8) mc_context_lifetime(ctx);
	r->placed = false;
	r->creator_lib = MC_NO_LIB;
	slot = mc_hash_ptr((uintptr_t) ctx, 10);
	r->hnext = ctx_hash[slot];
	ctx_hash[slot] = i;
	if (mc_ctx_hint[mc_hint_slot(ctx)] < 255)
		mc_ctx_hint[mc_hint_slot(ctx)]++;
	return i;
}

/*
 * Where context record i sits: its depth and path, computed when a judgment
 * needs them (never on the allocation path: a per-row context is seen
 * thousands of times and judged rarely), and again once it moved.
 */
static McCtx *
mc_ctx_place(uint32 i)
{
	McCtx	   *r = &ctxs[i];

	if (!r->placed)
	{
		r->depth = (int16) mc_context_depth(r->ctx);
		mc_context_path(r->ctx, r->path, sizeof(r->path));
		r->placed = true;
	}
	return r;
}

static void mc_churn_stop(uint32 ri);

static void
mc_ctx_release(uint32 i)
{
	McCtx	   *r = &ctxs[i];
	uint32		slot = mc_hash_ptr((uintptr_t) r->ctx, 10);
	uint32	   *pp;
	uint8	   *hint = &mc_ctx_hint[mc_hint_slot(r->ctx)];

	if (r->churn)
		mc_churn_stop(i);

	for (pp = &ctx_hash[slot]; *pp != 0; pp = &ctxs[*pp].hnext)
		if (*pp == i)
		{
			*pp = r->hnext;
			break;
		}
	if (*hint > 0 && *hint < 255)
		(*hint)--;
	MC_POOL_FREE(ctxs, i);
}

/* ---------- groups and buckets ---------- */

static uint32
mc_group_get(uint32 ctxi, int lib, McChunkKind kind)
{
	uint32		slot = (mc_hash_ptr(ctxi * 64 + lib * 2 + kind, 32)) & (MC_SMALL_HASH - 1);
	uint32		i;
	McGroup    *g;

	for (i = group_hash[slot]; i != 0; i = groups[i].hnext)
		if (groups[i].ctx == ctxi && groups[i].lib == lib && groups[i].kind == kind)
			return i;
	MC_POOL_ALLOC(groups, 65536, i);
	if (i == 0)
		return 0;
	g = &groups[i];
	g->used = true;
	g->ctx = ctxi;
	g->lib = (int16) lib;
	g->kind = (uint8) kind;
	g->first_growth = -1;
	g->oldest_xact = xact_seq;
	g->interval_unit = MC_UNIT_STATEMENT;
	g->hnext = group_hash[slot];
	group_hash[slot] = i;
	g->cnext = ctxs[ctxi].groups;
	ctxs[ctxi].groups = i;
	g->anext = all_groups;
	if (all_groups != 0)
		groups[all_groups].aprev = i;
	all_groups = i;
	return i;
}

static void
mc_group_release(uint32 gi)
{
	McGroup    *g = &groups[gi];
	uint32		slot = (mc_hash_ptr(g->ctx * 64 + g->lib * 2 + g->kind, 32)) & (MC_SMALL_HASH - 1);
	uint32	   *pp;

	for (pp = &group_hash[slot]; *pp != 0; pp = &groups[*pp].hnext)
		if (*pp == gi)
		{
			*pp = g->hnext;
			break;
		}
	if (g->aprev != 0)
		groups[g->aprev].anext = g->anext;
	else
		all_groups = g->anext;
	if (g->anext != 0)
		groups[g->anext].aprev = g->aprev;
	MC_POOL_FREE(groups, gi);
}

static uint32
mc_bucket_get(uint32 gi, uintptr_t site, const McWho *who)
{
	uint32		slot = (mc_hash_ptr(site ^ ((uintptr_t) gi << 40), 32)) & (MC_SMALL_HASH - 1);
	uint32		i;
	McBucket   *b;

	for (i = bucket_hash[slot]; i != 0; i = buckets[i].hnext)
		if (buckets[i].group == gi && buckets[i].site == site)
			return i;
	MC_POOL_ALLOC(buckets, 1 << 20, i);
	if (i == 0)
		return 0;
	b = &buckets[i];
	b->used = true;
	b->group = gi;
	b->site = site;
	b->phase = who->phase;
	b->entry_kind = who->entry_kind;
	b->entry_id = who->entry_id;
	b->unit = who->unit;
	b->hnext = bucket_hash[slot];
	bucket_hash[slot] = i;
	b->gnext = groups[gi].buckets;
	groups[gi].buckets = i;
	return i;
}

static void
mc_bucket_release(uint32 bi)
{
	McBucket   *b = &buckets[bi];
	uint32		slot = (mc_hash_ptr(b->site ^ ((uintptr_t) b->group << 40), 32)) & (MC_SMALL_HASH - 1);
	uint32	   *pp;

	if (bi == last_bucket)
		last_bucket = 0;
	for (pp = &bucket_hash[slot]; *pp != 0; pp = &buckets[*pp].hnext)
		if (*pp == bi)
		{
			*pp = b->hnext;
			break;
		}
	MC_POOL_FREE(buckets, bi);
}

/* ---------- chunks ---------- */

static uint32
mc_chunk_find(uintptr_t p)
{
	uint32		i;

	if (chunk_hash == NULL)
		return 0;
	for (i = chunk_hash[mc_hash_ptr(p, 32) & chunk_hash_mask]; i != 0; i = chunks[i].hnext)
		if (chunks[i].ptr == p)
			return i;
	return 0;
}

static void
mc_chunk_unhash(uint32 ci)
{
	McChunk    *c = &chunks[ci];
	uint32	   *pp;
	uint8	   *hint = &mc_chunk_hint[mc_hint_slot((const void *) c->ptr)];

	for (pp = &chunk_hash[mc_hash_ptr(c->ptr, 32) & chunk_hash_mask]; *pp != 0; pp = &chunks[*pp].hnext)
		if (*pp == ci)
		{
			*pp = c->hnext;
			break;
		}
	if (*hint > 0 && *hint < 255)
		(*hint)--;
}

static void
mc_chunk_hash(uint32 ci)
{
	McChunk    *c = &chunks[ci];
	uint32		slot = mc_hash_ptr(c->ptr, 32) & chunk_hash_mask;
	uint8	   *hint = &mc_chunk_hint[mc_hint_slot((const void *) c->ptr)];

	c->hnext = chunk_hash[slot];
	chunk_hash[slot] = ci;
	if (*hint < 255)
		(*hint)++;
}

/* unlink a chunk from its bucket and free it; the bucket's counts drop */
static void
mc_chunk_remove(uint32 ci)
{
	McChunk    *c = &chunks[ci];
	McBucket   *b = &buckets[c->bucket];
	McGroup    *g = &groups[b->group];

	mc_chunk_unhash(ci);
	if (c->bprev != 0)
		chunks[c->bprev].bnext = c->bnext;
	else
		b->chunks = c->bnext;
	if (c->bnext != 0)
		chunks[c->bnext].bprev = c->bprev;
	b->live_bytes -= mc_chunk_weight(c);
	b->live_count--;
	g->live_bytes -= mc_chunk_weight(c);
	g->live_count--;
	if (!c->sampled && c->kind == MC_CHUNK_MEMORY)
		live_exact--;
	if (c->kind == MC_CHUNK_CONTEXT)
	{
		uint32		r = mc_ctx_find((MemoryContext) c->ptr);

		if (r != 0 && ctxs[r].pseudo == ci)
		{
			uint32		gi;

			b->live_bytes -= ctxs[r].folded;
			g->live_bytes -= ctxs[r].folded;
			g->carried -= ctxs[r].folded;
			ctxs[r].folded = 0;
			for (gi = ctxs[r].groups; gi != 0; gi = groups[gi].cnext)
				groups[gi].folded_bytes = 0;
			ctxs[r].pseudo = 0;
		}
	}
	MC_POOL_FREE(chunks, ci);
	live_chunks--;
}

bool
mc_track_has_contexts(void)
{
	return ctxs_used > 0;
}

static bool
mc_is_suspect(MemoryContext ctx)
{
	int			i;

	for (i = 0; i < nsuspects; i++)
		if (suspects[i] == ctx->name)
			return true;
	return false;
}

static void
mc_mark_suspect(const char *name)
{
	int			i;

	for (i = 0; i < nsuspects; i++)
		if (suspects[i] == name)
			return;
	if (nsuspects < MC_MAX_SUSPECTS)
		suspects[nsuspects++] = name;
}

/* the first frame of a stack trace that lies in a foreign library */
static uintptr_t
mc_site_from_stack(int *lib)
{
	if (budget_statement != mc_statement_seq())
	{
		budget_statement = mc_statement_seq();
		backtrace_budget = MC_BACKTRACES_PER_STATEMENT;
	}
	if (backtrace_budget <= 0)
		return 0;
	backtrace_budget--;
	return mc_foreign_frame(lib);
}

/* ---------- churn mode ---------- */

/*
 * A context that is reset after every unit of work (a per-row expression
 * context, a library's scratch context reset per call) holds, at each
 * reset, the memory of one unit: nothing there can pile up.  After
 * MC_CALM_RESETS such resets in a row, foreign allocations into it are no
 * longer recorded one by one; only the units that allocated since the last
 * reset are counted.  When a reset (or, for a context that outlives
 * transactions, a judgment) finds two or more units there, recording
 * resumes and the next period is judged as usual.  This keeps the tracker
 * off the common path of code that allocates and frees on every call.
 */
#define MC_CALM_RESETS 3

MemoryContext mc_churn_ctx = NULL;	/* the churning context counted inline (mc_churn_note) */
uint32		mc_churn_units = 0;
uint32		mc_churn_last_unit = 0;
static uint32 churn_ctxi = 0;	/* its record */
static uint32 churn_list = 0;	/* every churning context's record */

/* the inline counters belong to record ri's context from now on */
static void
mc_churn_load(uint32 ri)
{
	if (churn_ctxi != 0 && churn_ctxi != ri && ctxs[churn_ctxi].used)
	{
		ctxs[churn_ctxi].churn_units = mc_churn_units;
		ctxs[churn_ctxi].churn_last_unit = mc_churn_last_unit;
	}
	churn_ctxi = ri;
	mc_churn_ctx = ri ? ctxs[ri].ctx : NULL;
	mc_churn_units = ri ? ctxs[ri].churn_units : 0;
	mc_churn_last_unit = ri ? ctxs[ri].churn_last_unit : 0;
}

/* record ri's inline counters, if they are the ones counting */
static void
mc_churn_sync(uint32 ri)
{
	if (ri != 0 && ri == churn_ctxi)
	{
		ctxs[ri].churn_units = mc_churn_units;
		ctxs[ri].churn_last_unit = mc_churn_last_unit;
	}
}

static void
mc_churn_start(uint32 ri)
{
	McCtx	   *r = &ctxs[ri];

	/* context_reset_storm poisons chunk by chunk: it needs them all recorded */
	if (mc_track_listeners.poisoning)
		return;
	r->churn = true;
	r->churn_units = 0;
	r->churn_last_unit = 0;
	r->churn_next = churn_list;
	churn_list = ri;
	mc_churn_load(ri);
}

/* record ri's context goes back to recording allocations one by one */
static void
mc_churn_stop(uint32 ri)
{
	uint32	   *pp;

	ctxs[ri].churn = false;
	ctxs[ri].calm_resets = 0;
	for (pp = &churn_list; *pp != 0; pp = &ctxs[*pp].churn_next)
		if (*pp == ri)
		{
			*pp = ctxs[ri].churn_next;
			break;
		}
	if (churn_ctxi == ri)
	{
		churn_ctxi = 0;
		mc_churn_ctx = NULL;
	}
}

/* an allocation into a churning context other than the one counted inline */
static bool
mc_churn_other(MemoryContext ctx, uint32 unit_id)
{
	uint32		ri = mc_ctx_find(ctx);

	if (ri == 0 || !ctxs[ri].churn)
		return false;
	mc_churn_load(ri);
	mc_churn_note(unit_id);
	return true;
}

static void
mc_track_insert(MemoryContext ctx, uintptr_t p, Size size, Size req, int lib, uintptr_t site,
				const McWho *who, McChunkKind kind, const char *child_name, uint32 *chunk_out,
				bool note)
{
	uint32		ctxi;
	uint32		gi;
	uint32		bi;
	uint32		ci;
	McChunk    *c;
	McBucket   *b;
	McGroup    *g;
	bool		sampled;
	int64		weight;

	if (chunk_out)
		*chunk_out = 0;
	if (!mc_active || lib == MC_NO_LIB || !mc_tables_ready())
		return;
	if (site == 0 && kind == MC_CHUNK_MEMORY && ctx != MC_MALLOC_HEAP && mc_is_suspect(ctx))
		site = mc_site_from_stack(&lib);
	if (note && mc_track_listeners.watching && ctx != MC_MALLOC_HEAP)
		mc_track_listeners.alloc_note(ctx, lib, &site, size, child_name);
	/* a loop allocates at one site into one context: its bucket is remembered */
	if (last_bucket != 0 && last_ctx == ctx && last_site == site && last_lib == lib && last_kind == kind)
	{
		bi = last_bucket;
		gi = buckets[bi].group;
	}
	else
	{
		ctxi = mc_ctx_get(ctx);
		gi = ctxi ? mc_group_get(ctxi, lib, kind) : 0;
		bi = gi ? mc_bucket_get(gi, site, who) : 0;
		if (bi != 0)
		{
			last_bucket = bi;
			last_ctx = ctx;
			last_site = site;
			last_lib = (int16) lib;
			last_kind = (uint8) kind;
		}
	}
	if (bi == 0)
	{
		untracked++;
		return;
	}
	b = &buckets[bi];
	b->alloc_bytes += size;
	if (b->units_epoch_of != judge_epoch)
	{
		b->units_epoch_of = judge_epoch;
		b->units_epoch = 0;
		b->alloc_bytes_epoch = 0;
		b->units_epoch_last = 0;
	}
	b->alloc_bytes_epoch += size;
	if (b->units_epoch_last != who->unit_id)
	{
		b->units_epoch++;
		b->units_epoch_last = who->unit_id;
	}
	if (b->last_unit != who->unit_id)
	{
		b->units++;
		b->last_unit = who->unit_id;
	}
	/* beyond the records followed one by one, a sample */
	sampled = kind == MC_CHUNK_MEMORY && live_exact >= mc_max_tracked;
	if (sampled)
	{
		sample_countdown -= (int64) size;
		if (sample_countdown > 0)
			return;
		sample_rng = sample_rng * UINT64CONST(6364136223846793005) + UINT64CONST(1442695040888963407);
		sample_countdown = (int64) ((sample_rng >> 33) % (2 * MC_SAMPLE_BYTES)) + 1;
		sampled_total++;
		b->sampled = true;
		groups[gi].sampled = true;
	}
	MC_POOL_ALLOC(chunks, PG_UINT32_MAX / 2, ci);
	if (ci == 0)
	{
		/* out of memory for records: counted, and said once */
		untracked++;
		if (!untracked_noted)
		{
			untracked_noted = true;
			mc_record_gap(NULL, "allocations",
						  "pg_ext_memcheck could not get memory for its records; later allocations were counted but not followed");
		}
		return;
	}
	mc_chunk_hash_resize();
	c = &chunks[ci];
	b = &buckets[bi];
	g = &groups[gi];
	c->ptr = p;
	c->size = (uint32) Min(size, (Size) PG_UINT32_MAX);
	c->req = (uint32) Min(req, (Size) PG_UINT32_MAX);
	c->bucket = bi;
	c->unit_id = who->unit_id;
	c->xact = xact_seq;
	c->epoch = judge_epoch;
	c->kind = (uint8) kind;
	c->sampled = sampled;
	c->bnext = b->chunks;
	if (b->chunks != 0)
		chunks[b->chunks].bprev = ci;
	b->chunks = ci;
	mc_chunk_hash(ci);
	live_chunks++;
	if (!sampled && kind == MC_CHUNK_MEMORY)
		live_exact++;
	if (child_name != NULL && b->child_name == NULL)
		b->child_name = child_name;
	weight = mc_chunk_weight(c);
	b->live_bytes += weight;
	b->live_count++;
	if (g->live_count == 0)
		g->oldest_xact = xact_seq;
	g->live_bytes += weight;
	g->live_count++;
	g->allocs_since++;
	if (chunk_out)
		*chunk_out = ci;
	mc_mcxt_set_free_wrapped(true);
}

void
mc_track_alloc(MemoryContext ctx, void *p, Size size, int lib, uintptr_t site, const McWho *who)
{
	Size		space;

	if (churn_list != 0 && ctx != MC_MALLOC_HEAP && mc_churn_other(ctx, who->unit_id))
		return;
	space = ctx == MC_MALLOC_HEAP ? size : mc_chunk_space(p);

	mc_track_insert(ctx, (uintptr_t) p, space, size, lib, site, who, MC_CHUNK_MEMORY, NULL, NULL,
					true);
}

void
mc_track_free(void *p)
{
	uint32		ci = mc_chunk_find((uintptr_t) p);

	if (ci != 0 && chunks[ci].kind == MC_CHUNK_MEMORY)
	{
		McBucket   *b = &buckets[chunks[ci].bucket];

		last_freed_ptr = (uintptr_t) p;
		last_freed_lib = groups[b->group].lib;
		last_freed_site = b->site;
		mc_chunk_remove(ci);
	}
}

/*
 * Was the chunk at (or a chunk header just before) `near` the tracked chunk
 * freed last?  Then its library and allocation site.
 */
bool
mc_track_last_freed(const void *near, int *lib, uintptr_t *site)
{
	uintptr_t	a = (uintptr_t) near;

	if (last_freed_ptr == 0 || a > last_freed_ptr || last_freed_ptr - a > 64)
		return false;
	*lib = last_freed_lib;
	*site = last_freed_site;
	return true;
}

void
mc_track_realloc(void *oldp, void *newp, Size newsize)
{
	uint32		ci = mc_chunk_find((uintptr_t) oldp);
	McChunk    *c;
	McBucket   *b;
	McGroup    *g;
	Size		space;

	if (ci == 0 || chunks[ci].kind != MC_CHUNK_MEMORY)
		return;
	c = &chunks[ci];
	b = &buckets[c->bucket];
	g = &groups[b->group];
	space = ctxs[g->ctx].ctx == MC_MALLOC_HEAP ? newsize : mc_chunk_space(newp);
	b->live_bytes -= mc_chunk_weight(c);
	g->live_bytes -= mc_chunk_weight(c);
	if (space > c->size)
		g->allocs_since++;
	c->size = (uint32) Min(space, (Size) PG_UINT32_MAX);
	b->live_bytes += mc_chunk_weight(c);
	g->live_bytes += mc_chunk_weight(c);
	c->req = (uint32) Min(newsize, (Size) PG_UINT32_MAX);
	if (newp != oldp)
	{
		mc_chunk_unhash(ci);
		c->ptr = (uintptr_t) newp;
		mc_chunk_hash(ci);
	}
}

/* foreign code created ctx (gotwrap.c): a pseudo-chunk of its parent */
void
mc_track_context_created(MemoryContext ctx, int lib, uintptr_t site)
{
	uint32		ctxi;
	uint32		ci;
	McWho		who;

	if (!mc_active || lib == MC_NO_LIB || ctx == NULL || ctx->parent == NULL ||
		!mc_tables_ready())
		return;
	mc_seg_who(lib, &who);
	ctxi = mc_ctx_get(ctx);
	if (ctxi == 0)
		return;
	ctxs[ctxi].foreign_created = true;
	ctxs[ctxi].creator_lib = (int16) lib;
	mc_track_insert(ctx->parent, (uintptr_t) ctx, ctx->mem_allocated, 0, lib, site, &who,
					MC_CHUNK_CONTEXT, ctx->name, &ci, true);
	ctxs[ctxi].pseudo = ci;
}

/*
 * A context foreign code created now sits under another parent (the
 * library moved it with MemoryContextSetParent, or PostgreSQL did on its
 * behalf): it will be freed with the new parent, so it belongs to that
 * parent's group from now on.
 */
static void
mc_pseudo_rehome(uint32 ri, MemoryContext parent)
{
	McCtx	   *r = &ctxs[ri];
	McChunk    *c;
	McBucket   *b;
	McGroup    *g;
	uint32		ci;
	uintptr_t	site;
	int			lib;
	McWho		who;
	uint32		xact;
	uint32		epoch;
	Size		size;
	const char *child_name;

	if (r->pseudo == 0 || parent == NULL)
		return;
	c = &chunks[r->pseudo];
	b = &buckets[c->bucket];
	g = &groups[b->group];
	if (ctxs[g->ctx].ctx == parent)
		return;
	site = b->site;
	lib = g->lib;
	who.unit_id = c->unit_id;
	who.unit = b->unit;
	who.phase = b->phase;
	who.entry_kind = b->entry_kind;
	who.entry_id = b->entry_id;
	xact = c->xact;
	epoch = c->epoch;
	size = c->size;
	child_name = b->child_name;
	mc_chunk_remove(r->pseudo);
	mc_track_insert(parent, (uintptr_t) r->ctx, size, 0, lib, site, &who, MC_CHUNK_CONTEXT,
					child_name, &ci, false);
	if (ci != 0)
	{
		chunks[ci].xact = xact;
		chunks[ci].epoch = epoch;
	}
	r = &ctxs[ri];				/* the pools may have moved */
	r->pseudo = ci;
	r->parent = parent;
	r->life = (uint8) mc_context_lifetime(r->ctx);
	r->placed = false;
}

/* MemoryContextSetParent(ctx, ...) was called by foreign code (gotwrap.c) */
void
mc_track_context_moved(MemoryContext ctx)
{
	uint32		ri = mc_ctx_find(ctx);

	if (ri != 0 && ctxs[ri].pseudo != 0)
		mc_pseudo_rehome(ri, ctx->parent);
}

/* ---------- error cleanup ---------- */

/*
 * PostgreSQL frees on error: abort processing deletes the contexts of the
 * failed statement, transaction or subtransaction, and memory freed there
 * is released by design, never a leak.  Abort processing runs in
 * TransactionAbortContext (AtAbort_Memory, AtSubAbort_Memory: a static of
 * xact.c, found once by name among TopMemoryContext's children); only the
 * last steps do not: the failed transaction's TopTransactionContext (or the
 * subtransaction's CurTransactionContext) deleted after it, and
 * MessageContext reset before the next command (entry/xactcb.c tells us
 * at XACT_EVENT_ABORT and SUBXACT_EVENT_ABORT_SUB which ones).
 */
static MemoryContext abort_cxt = NULL;
static MemoryContext aborted_top = NULL;
static MemoryContext aborted_sub = NULL;
static bool aborted_message = false;

void
mc_track_abort(bool sub)
{
	if (sub)
		aborted_sub = CurTransactionContext;
	else
	{
		aborted_top = TopTransactionContext;
		aborted_message = true;
	}
}

/* the next statement starts: cleanup of the last error is over */
void
mc_track_abort_over(void)
{
	aborted_top = aborted_sub = NULL;
	aborted_message = false;
}

static bool
mc_error_cleanup(MemoryContext ctx)
{
	MemoryContext c;

	if (abort_cxt == NULL && TopMemoryContext != NULL)
		for (c = TopMemoryContext->firstchild; c != NULL; c = c->nextchild)
			if (strcmp(c->name, "TransactionAbortContext") == 0)
			{
				abort_cxt = c;
				break;
			}
	if (abort_cxt != NULL && CurrentMemoryContext == abort_cxt)
		return true;
	for (c = ctx; c != NULL; c = c->parent)
		if ((aborted_top != NULL && c == aborted_top) || (aborted_sub != NULL && c == aborted_sub) ||
			(aborted_message && c == MessageContext))
			return true;
	return false;
}

/*
 * A subtransaction's CurTransactionContext: PostgreSQL deletes it when the
 * subtransaction commits if it is empty, and keeps it (until the top
 * transaction ends) if not.  (The top transaction's is TopTransactionContext.)
 */
static McBucket *mc_group_main_bucket(uint32 gi, bool dead);

static bool
mc_is_subxact_context(MemoryContext ctx)
{
	/* the top level's CurTransactionContext is TopTransactionContext */
	return ctx != MC_MALLOC_HEAP && strcmp(ctx->name, "CurTransactionContext") == 0;
}

/*
 * ctx, a subtransaction's context, dies holding group gi's memory: that
 * memory kept the whole context (its blocks) alive until now.  Counted at
 * the parent like a child context the library left behind, one per
 * subtransaction, and judged with the parent.
 */
static void
mc_note_kept_alive(MemoryContext ctx, MemoryContext parent, uint32 gi)
{
	McBucket   *main = mc_group_main_bucket(gi, false);
	int			lib = groups[gi].lib;
	uint32		unit_id = main != NULL && main->chunks != 0 ? chunks[main->chunks].unit_id : 0;
	McWho		who;
	uintptr_t	site;
	uint32		pctx;
	uint32		pg;
	uint32		pb;
	McBucket   *b;

	if (main == NULL || parent == NULL)
		return;
	who.unit_id = unit_id;
	who.unit = main->unit;
	who.phase = main->phase;
	who.entry_kind = main->entry_kind;
	who.entry_id = main->entry_id;
	site = main->site;
	pctx = mc_ctx_get(parent);
	pg = pctx ? mc_group_get(pctx, lib, MC_CHUNK_CONTEXT) : 0;
	pb = pg ? mc_bucket_get(pg, site, &who) : 0;
	if (pb == 0)
		return;
	b = &buckets[pb];
	b->child_name = ctx->name;
	b->kept_alive = true;
	b->dead_bytes += ctx->mem_allocated;
	b->dead_count++;
	if (b->dead_last_unit != unit_id || unit_id == 0)
	{
		b->dead_units++;
		b->dead_last_unit = unit_id;
	}
	judge_pending = true;
}

/* the library whose own call resets or deletes a context now, or MC_NO_LIB */
static int
mc_cleaner_lib(void)
{
	if (mc_explicit_cleanup > 0)
		return mc_cleanup_lib;
	return mc_seg != NULL ? mc_seg->lib : MC_NO_LIB;
}

/* ---------- findings from groups ---------- */

/* the top sites of a group, by live or released bytes */
static void
mc_group_sites(uint32 gi, McViolation *v, bool dead)
{
	uint32		bi;

	v->nsites = 0;
	for (bi = groups[gi].buckets; bi != 0; bi = buckets[bi].gnext)
	{
		McBucket   *b = &buckets[bi];
		int64		bytes = dead ? b->dead_bytes + b->live_bytes : b->live_bytes;
		int64		count = dead ? b->dead_count + b->live_count : b->live_count;

		if (bytes > 0)
			mc_finding_add_site(v, b->site, groups[gi].lib, bytes, count);
	}
}

/* the bucket that allocated most: its entry point names the finding's */
static McBucket *
mc_group_main_bucket(uint32 gi, bool dead)
{
	uint32		bi;
	McBucket   *best = NULL;
	int64		best_bytes = -1;

	for (bi = groups[gi].buckets; bi != 0; bi = buckets[bi].gnext)
	{
		int64		bytes = buckets[bi].live_bytes + (dead ? buckets[bi].dead_bytes : 0);

		if (bytes > best_bytes)
		{
			best = &buckets[bi];
			best_bytes = bytes;
		}
	}
	return best;
}

static void
mc_fill_common(McViolation *v, uint32 gi, bool dead)
{
	McGroup    *g = &groups[gi];
	McCtx	   *r = mc_ctx_place(g->ctx);
	McBucket   *main = mc_group_main_bucket(gi, dead);

	mc_strlcpy(v->source_lib, mc_lib_name(g->lib), MC_LIB_LEN);
	v->depth = r->depth;
	if (main != NULL)
	{
		v->phase = main->phase;
		mc_entry_describe(main->entry_kind, main->entry_id, v->entry, MC_ENTRY_LEN);
	}
	mc_group_sites(gi, v, dead);
}

/* context name and path of a finding about a group (child contexts: the child) */
static void
mc_group_where(uint32 gi, bool dead, char *name, char *path)
{
	McGroup    *g = &groups[gi];
	McCtx	   *r = mc_ctx_place(g->ctx);
	McBucket   *main = mc_group_main_bucket(gi, dead);

	if (g->kind == MC_CHUNK_CONTEXT && main != NULL && main->child_name != NULL)
	{
		mc_strlcpy(name, main->child_name, MC_NAME_LEN);
		snprintf(path, MC_PATH_LEN, "%s/%s", r->path, main->child_name);
	}
	else
	{
		mc_strlcpy(name, r->ctx == MC_MALLOC_HEAP ? "malloc heap" : r->name, MC_NAME_LEN);
		mc_strlcpy(path, r->path, MC_PATH_LEN);
	}
}

/*
 * The units of work whose allocations in group gi are live (all of them, or
 * only this judgment interval's): a bucket's list is newest first, so one
 * unit's allocations are a run.
 */
/*
 * A set of unit ids, for counting distinct units across a group's buckets
 * (one statement run allocates at two sites: one unit).  malloc'd once and
 * grown as needed, cleared by a generation stamp; judging only, never on an
 * allocation path.  When it cannot grow, counting falls back to runs.
 */
static uint32 *uset_ids = NULL;
static uint32 *uset_gen = NULL;
static uint32 uset_mask = 0;
static uint32 uset_now = 0;
static int64 uset_count = 0;

static bool
mc_uset_reset(int64 expected)
{
	uint32		cap = uset_mask + 1;

	if (uset_ids == NULL || (int64) cap < expected * 2)
	{
		uint32		want = 1024;
		uint32	   *ids;
		uint32	   *gen;

		while ((int64) want < expected * 2 && want < (1U << 30))
			want <<= 1;
		ids = malloc(sizeof(uint32) * want);
		gen = calloc(want, sizeof(uint32));
		if (ids == NULL || gen == NULL)
		{
			free(ids);
			free(gen);
			return uset_ids != NULL && (int64) cap >= expected * 2;
		}
		free(uset_ids);
		free(uset_gen);
		uset_ids = ids;
		uset_gen = gen;
		uset_mask = want - 1;
		uset_now = 0;
	}
	if (++uset_now == 0)
	{
		memset(uset_gen, 0, sizeof(uint32) * (uset_mask + 1));
		uset_now = 1;
	}
	uset_count = 0;
	return true;
}

static void
mc_uset_add(uint32 id)
{
	uint32		slot = mc_hash_ptr(id, 32) & uset_mask;

	while (uset_gen[slot] == uset_now)
	{
		if (uset_ids[slot] == id)
			return;
		slot = (slot + 1) & uset_mask;
	}
	uset_gen[slot] = uset_now;
	uset_ids[slot] = id;
	uset_count++;
}

/*
 * The units of work whose allocations in group gi are live (all of them, or
 * only this judgment interval's): distinct unit ids over all its buckets
 * (a bucket's list is newest first, so this interval's chunks come first).
 * Counting stops at stop_at (0: never), for callers that only ask "more
 * than one?".
 */
static int64
mc_group_live_units(uint32 gi, bool this_interval, int64 stop_at)
{
	uint32		bi;
	int64		estimated = 0;
	int64		runs = 0;
	int			pass;

	/*
	 * First the runs of one unit in each bucket's list (an upper bound),
	 * then, when there are several, the distinct ids among them, in a set
	 * no larger than the runs.
	 */
	for (pass = 0; pass < 2; pass++)
	{
		for (bi = groups[gi].buckets; bi != 0; bi = buckets[bi].gnext)
		{
			McBucket   *b = &buckets[bi];
			uint32		ci;
			uint32		last = 0;
			int64		kept = 0;

			if (b->sampled)
			{
				/*
				 * Known by sample: the units that allocated here, in the
				 * share of what they allocated that is still here.
				 */
				int64		alloc = this_interval ?
					(b->units_epoch_of == judge_epoch ? b->alloc_bytes_epoch : 0) : b->alloc_bytes;
				int64		allocating = this_interval ?
					(b->units_epoch_of == judge_epoch ? b->units_epoch : 0) : b->units;

				if (pass == 1 || alloc <= 0)
					continue;
				for (ci = b->chunks; ci != 0; ci = chunks[ci].bnext)
				{
					if (this_interval && chunks[ci].epoch != judge_epoch)
						break;
					kept += mc_chunk_weight(&chunks[ci]);
				}
				estimated += (int64) ((double) allocating * Min(1.0, (double) kept / (double) alloc) + 0.5);
				continue;
			}
			for (ci = b->chunks; ci != 0; ci = chunks[ci].bnext)
			{
				if (this_interval && chunks[ci].epoch != judge_epoch)
					break;
				if (chunks[ci].unit_id != last)
				{
					if (pass == 0)
						runs++;
					else
						mc_uset_add(chunks[ci].unit_id);
				}
				last = chunks[ci].unit_id;
			}
		}
		if (pass == 0 && (runs <= 1 || (stop_at > 0 && runs < stop_at) ||
						  !mc_uset_reset(runs)))
			return runs + estimated;
	}
	return Min(uset_count, runs) + estimated;
}

/* are group gi's dead child contexts ones PostgreSQL kept because of the library's memory? */
static bool
mc_group_kept_alive(uint32 gi)
{
	uint32		bi;

	for (bi = groups[gi].buckets; bi != 0; bi = buckets[bi].gnext)
		if (buckets[bi].kept_alive && buckets[bi].dead_count > 0)
			return true;
	return false;
}

/*
 * A finding on group gi that rests on samples (its memory beyond the
 * records followed one by one) says that its bytes are an estimate.
 */
static void
mc_note_sampled(McViolation *v, uint32 gi)
{
	size_t		len = strlen(v->detail);

	if (groups[gi].sampled)
		snprintf(v->detail + len, MC_DETAIL_LEN - len,
				 " (estimated: more than %d allocations were live, so the rest were sampled, one per %d bytes allocated)",
				 mc_max_tracked, MC_SAMPLE_BYTES);
}

/* "call", "statement" ...: the unit of the bucket that allocated most */
static McUnit
mc_group_unit(uint32 gi, bool dead)
{
	McBucket   *best = mc_group_main_bucket(gi, dead);

	return best != NULL && best->unit != MC_UNIT_NONE ? (McUnit) best->unit : MC_UNIT_CALL;
}

/*
 * Memory of group gi piled up over several units of work and is released
 * now (its context is reset or deleted), or child contexts the library left
 * behind were deleted by PostgreSQL.  Report it if it is worth reporting.
 */
static void
mc_judge_release(uint32 gi, McLifetime life)
{
	McGroup    *g = &groups[gi];
	uint32		bi;
	int64		bytes = 0;
	int64		count = 0;
	int64		units = 0;
	int64		dead_count = 0;
	McUnit		unit = mc_group_unit(gi, true);
	const char *uname = mc_unit_name(unit);
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];
	McFindingKey key;
	McViolation *v;
	bool		created;
	double		rate;

	for (bi = g->buckets; bi != 0; bi = buckets[bi].gnext)
	{
		McBucket   *b = &buckets[bi];

		if (g->kind == MC_CHUNK_CONTEXT)
		{
			/* contexts still alive here were reparented: not left behind */
			bytes += b->dead_bytes;
			count += b->dead_count;
			units += b->dead_units;
			dead_count += b->dead_count;
		}
		else
		{
			bytes += b->live_bytes;
			count += b->live_count;
		}
	}
	if (g->kind == MC_CHUNK_MEMORY)
		units = mc_group_live_units(gi, false, 0);
	if (bytes < mc_min_leak_bytes || count == 0)
		return;
	/* what one unit of work keeps until its context goes is what the context is for */
	if (g->kind == MC_CHUNK_MEMORY && (count < 2 || units < 2))
		return;
	if (units < 1)
		units = 1;

	mc_group_where(gi, true, name, path);
	key.check = MC_CHECK_CONTEXT_LEAK;
	key.lifetime = (uint8) life;
	key.lib = g->lib;
	key.path = path;
	v = mc_finding_get(&key, &created);
	if (v == NULL)
		return;
	rate = (double) bytes / (double) units;
	mc_strlcpy(v->context_name, name, MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	mc_fill_common(v, gi, true);
	v->occurrences++;
	/* the worst occurrence stands for the finding */
	if (bytes >= v->used_delta)
	{
		v->used_before = 0;
		v->used_after = bytes;
		v->used_delta = bytes;
		v->alloc_delta = g->kind == MC_CHUNK_CONTEXT ? bytes : 0;
		v->calls = units;
		v->rate_bytes = rate;
		v->unit = (uint8) unit;
		v->iterations = units;
		v->bytes_per_iter = rate;
		v->verdict = units >= 2 ? MC_VERDICT_LEAK : MC_VERDICT_NONE;
		v->severity = units >= 2 ? mc_severity_for(bytes) : MC_SEV_INFO;
		if (g->kind == MC_CHUNK_CONTEXT && mc_group_kept_alive(gi))
			snprintf(v->detail, MC_DETAIL_LEN,
					 "%lld %s context%s kept alive by memory %s (%s) left in them, until the end of the %s: %lld bytes, %.0f bytes per %s over %lld %s%s (PostgreSQL frees a subtransaction's context when it commits only if it is empty)",
					 (long long) dead_count, name, dead_count == 1 ? "" : "s",
					 v->source_lib, v->entry, mc_lifetime_name(life),
					 (long long) bytes, rate, uname, (long long) units, uname, units == 1 ? "" : "s");
		else if (g->kind == MC_CHUNK_CONTEXT)
			snprintf(v->detail, MC_DETAIL_LEN,
					 "%lld child context%s '%s' created by %s (%s) and never deleted, freed only at the end of the %s: %lld bytes, %.0f bytes per %s over %lld %s%s",
					 (long long) dead_count, dead_count == 1 ? "" : "s", name,
					 v->source_lib, v->entry, mc_lifetime_name(life),
					 (long long) bytes, rate, uname, (long long) units, uname, units == 1 ? "" : "s");
		else
			snprintf(v->detail, MC_DETAIL_LEN,
					 "context '%s' (depth %d): %lld bytes in %lld allocations by %s (%s) piled up over %lld %ss and lived until the end of the %s: %.0f bytes per %s",
					 name, v->depth, (long long) bytes, (long long) count, v->source_lib,
					 v->entry, (long long) units, uname, mc_lifetime_name(life), rate, uname);
	}
	mc_note_sampled(v, gi);
	mc_finding_changed(v);
	mc_mark_suspect(ctxs[g->ctx].name);
}

/* a group's memory outlived a transaction: leak (repeats) or cache (once) */
static void
mc_report_backend(uint32 gi)
{
	McGroup    *g = &groups[gi];
	McCtx	   *r = &ctxs[g->ctx];
	int32		span = g->intervals - g->first_growth + 1;
	bool		steady = g->growths * 2 >= span;

	/*
	 * Growth that repeats is a leak: in at least 3 quiet-point intervals, or
	 * within fewer, by at least 3 separate calls that each kept memory (a
	 * statement calling the library 1000 times).  Either way it must keep
	 * growing in at least half the intervals since it started: growth that
	 * stopped is a cache that filled.
	 */
	bool		leak = steady && (g->growths >= 3 || g->growth_units >= 3);
	/*
	 * The rate is the steady one: once the growth has repeated (3 intervals
	 * or more), the interval that kept most is left out of it when it kept
	 * more than twice the others' rate per unit.  It holds what one call, or
	 * a worker's start-up, kept once besides the leak (a cache filled
	 * lazily, statistics arrays): 24 kB kept by a worker's start-up are not
	 * 24 bytes of each of its next thousand loops.
	 */
	int64		rest_bytes = g->growth_bytes - g->peak_bytes;
	int64		rest_units = g->growth_units - g->peak_units;
	bool		warmup = g->growths >= 3 && rest_units >= 2 && rest_bytes > 0 &&
		(double) g->peak_bytes / Max(g->peak_units, 1) > 2.0 * rest_bytes / rest_units;
	int64		steady_bytes = warmup ? rest_bytes : g->growth_bytes;
	int64		steady_units = warmup ? rest_units : g->growth_units;
	double		per_unit = steady_units > 0 ? (double) steady_bytes / steady_units : -1;
	double		per_interval = (double) steady_bytes / Max(warmup ? span - 1 : span, 1);
	McUnit		kept_unit = mc_group_unit(gi, false);
	bool		undecided;
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];
	McFindingKey key;
	McViolation *v;
	bool		created;
	bool		global = r->ctx != MC_MALLOC_HEAP && mc_is_global_context(r->ctx);
	const char *unit = mc_unit_name(g->interval_unit);

	if (g->growth_bytes < mc_min_leak_bytes)
		return;
	mc_group_where(gi, false, name, path);
	key.check = r->ctx == MC_MALLOC_HEAP ? MC_CHECK_MALLOC_LEAK : MC_CHECK_CONTEXT_LEAK;
	key.lifetime = MC_LIFE_BACKEND;
	key.lib = g->lib;
	key.path = path;
	v = mc_finding_get(&key, &created);
	if (v == NULL)
		return;
	mc_strlcpy(v->context_name, name, MC_NAME_LEN);
	mc_strlcpy(v->context_path, path, MC_PATH_LEN);
	mc_fill_common(v, gi, false);
	/*
	 * Growth in every interval so far, too few of them, and the library did
	 * not run without keeping more (in a later interval, or in at least 3
	 * other units of the same ones): too early to tell.
	 */
	undecided = !leak && g->quiet == 0 && g->quiet_units < 3;
	v->verdict = leak ? MC_VERDICT_LEAK : undecided ? MC_VERDICT_NONE : MC_VERDICT_CACHE;
	v->severity = leak ? mc_severity_for(g->growth_bytes) : MC_SEV_INFO;
	v->used_before = g->judged_bytes - g->growth_bytes;
	v->used_after = g->judged_bytes;
	v->used_delta = g->growth_bytes;
	v->alloc_delta = 0;
	v->iterations = span;
	v->bytes_per_iter = per_interval;
	v->calls = g->growth_units;
	v->occurrences = g->growths;
	if (per_unit > 0)
	{
		v->rate_bytes = per_unit;
		v->unit = (uint8) kept_unit;
	}
	else
	{
		v->rate_bytes = per_interval;
		v->unit = g->interval_unit;
	}
	if (leak && per_unit > 0 && kept_unit != g->interval_unit)
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %lld bytes allocated by %s (%s) outlived their transaction and grew in %d of %d %ss: %.0f bytes per %s over %lld %ss, %.0f per %s; it lives until the backend exits",
				 name, v->depth, (long long) g->growth_bytes, v->source_lib, v->entry,
				 g->growths, span, unit, per_unit, mc_unit_name(kept_unit),
				 (long long) g->growth_units, mc_unit_name(kept_unit), per_interval, unit);
	else if (leak)
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %lld bytes allocated by %s (%s) outlived their transaction and grew in %d of %d %ss: %.0f bytes per %s; it lives until the backend exits",
				 name, v->depth, (long long) g->growth_bytes, v->source_lib, v->entry,
				 g->growths, span, unit, v->rate_bytes, mc_unit_name(v->unit));
	else if (undecided && span <= 1)
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %lld bytes allocated by %s (%s) outlived the %s that allocated them; one %s cannot tell a leak from a cache: run it again (a leak grows every time, a cache once)",
				 name, v->depth, (long long) g->growth_bytes, v->source_lib, v->entry,
				 unit, unit);
	else if (undecided)
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %lld bytes allocated by %s (%s) outlived their transaction and grew in each of %d %ss: too few to tell a leak from a cache: run it more often (a leak grows every time, a cache stops)",
				 name, v->depth, (long long) g->growth_bytes, v->source_lib, v->entry,
				 span, unit);
	else if (g->quiet == 0)
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %lld bytes allocated by %s (%s) and kept by %lld of the library's %lld runs meanwhile (statements, calls, callbacks): a cache, not a leak (the others did not add to it)",
				 name, v->depth, (long long) g->growth_bytes, v->source_lib, v->entry,
				 (long long) g->growth_units, (long long) g->ran_units);
	else
		snprintf(v->detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %lld bytes allocated by %s (%s) once and kept: a cache, not a leak (it did not grow again in %d later %ss in which the library ran)",
				 name, v->depth, (long long) g->growth_bytes, v->source_lib, v->entry,
				 g->quiet, unit);
	if (leak && warmup)
	{
		size_t		n = strlen(v->detail);

		snprintf(v->detail + n, MC_DETAIL_LEN - n,
				 " (one %s kept %lld bytes at once: a warm-up, left out of the rate)",
				 unit, (long long) g->peak_bytes);
	}
	mc_note_sampled(v, gi);
	mc_finding_changed(v);

	if (global)
	{
		McViolation *w;

		key.check = MC_CHECK_WRONG_CTX_ALLOC;
		w = mc_finding_get(&key, &created);
		if (w == NULL)
			return;
		{
			/* the same facts, but a finding of its own: its id stays */
			int32		id = w->finding_id;

			*w = *v;
			w->finding_id = id;
		}
		w->check = MC_CHECK_WRONG_CTX_ALLOC;
		w->severity = leak ? MC_SEV_WARNING : MC_SEV_INFO;
		snprintf(w->detail, MC_DETAIL_LEN,
				 "context '%s' (depth %d): %s allocated %lld bytes in a known global context (%s)%s; memory there lives until the backend exits",
				 name, v->depth, v->source_lib, (long long) g->growth_bytes, v->entry,
				 leak ? ", again and again" : undecided ? " and kept them" : " once");
		mc_finding_changed(w);
	}
	if (leak)
		mc_mark_suspect(r->name);
}

/* ---------- a library's own contexts ---------- */

/*
 * Memory a library allocates in a context it created itself (a cache it
 * fills, an arena it keeps) is that context's memory: the finding about
 * the context (its record in the parent, sized by its blocks when created)
 * must say what it holds now, not what it held when created.  The
 * context's record carries it: folded in at every judgment and when a
 * scenario looks, walking the groups, never a context.  The pseudo-chunk
 * of a group's context, or 0 when the group speaks for itself.
 */
static uint32
mc_fold_target(uint32 gi)
{
	McGroup    *g = &groups[gi];
	McCtx	   *r = &ctxs[g->ctx];

	if (g->kind != MC_CHUNK_MEMORY || !r->foreign_created || r->pseudo == 0 ||
		r->creator_lib != g->lib)
		return 0;
	return r->pseudo;
}

/* move delta bytes of group gi's memory into (or out of) its context's record */
static void
mc_fold_move(uint32 gi, uint32 ci, int64 delta)
{
	McBucket   *b = &buckets[chunks[ci].bucket];
	McGroup    *pg = &groups[b->group];

	b->live_bytes += delta;
	pg->live_bytes += delta;
	pg->carried += delta;
	ctxs[groups[gi].ctx].folded += delta;
	groups[gi].folded_bytes += delta;
	if (delta > 0)
		pg->allocs_since++;
	if (groups[gi].sampled)
		pg->sampled = true;
}

/* bring every context record up to date with what its creator holds in it */
static void
mc_fold_all(void)
{
	uint32		gi;

	for (gi = all_groups; gi != 0; gi = groups[gi].anext)
	{
		uint32		ci = mc_fold_target(gi);
		int64		delta;

		if (ci == 0)
			continue;
		delta = groups[gi].live_bytes - groups[gi].folded_bytes;
		if (delta != 0)
			mc_fold_move(gi, ci, delta);
	}
}

/* group gi is going away (its context reset or deleted): its record lets go of it */
static void
mc_unfold(uint32 gi)
{
	uint32		ci = mc_fold_target(gi);

	if (ci != 0 && groups[gi].folded_bytes != 0)
		mc_fold_move(gi, ci, -groups[gi].folded_bytes);
}

/* ---------- context reset and delete ---------- */

static void
mc_release_group_chunks(uint32 gi)
{
	uint32		bi = groups[gi].buckets;

	while (bi != 0)
	{
		uint32		next = buckets[bi].gnext;

		while (buckets[bi].chunks != 0)
			mc_chunk_remove(buckets[bi].chunks);
		mc_bucket_release(bi);
		bi = next;
	}
	groups[gi].buckets = 0;
}

/*
 * Poison the memory foreign code allocated in context ri, which is reset
 * or deleted while context_reset_storm runs (resetstorm.c), and tell it
 * which; true when the context should be kept from reuse (quarantined).
 */
static bool
mc_track_poison(uint32 ri, bool deleting)
{
	uint32		gi;
	bool		any = false;

	for (gi = ctxs[ri].groups; gi != 0; gi = groups[gi].cnext)
	{
		uint32		bi;

		if (groups[gi].kind != MC_CHUNK_MEMORY)
			continue;
		for (bi = groups[gi].buckets; bi != 0; bi = buckets[bi].gnext)
		{
			uint32		ci;
			int64		bytes = 0;
			int64		count = 0;

			for (ci = buckets[bi].chunks; ci != 0; ci = chunks[ci].bnext)
			{
				mc_track_listeners.poison((void *) chunks[ci].ptr, chunks[ci].req);
				bytes += chunks[ci].req;
				count++;
			}
			if (count > 0)
			{
				mc_ctx_place(ri);
				mc_track_listeners.poisoned(ctxs[ri].ctx, ctxs[ri].path, (McLifetime) ctxs[ri].life,
								  groups[gi].lib, buckets[bi].site, bytes, count, deleting);
				any = true;
			}
		}
	}
	return any && deleting;
}

/*
 * A context with tracked memory is reset or deleted (mcxtwrap.c).  Returns
 * true when a deleted context must not be freed (context_reset_storm's
 * quarantine: resetstorm.c takes it).
 */
bool
mc_track_context_dying(MemoryContext ctx, bool deleting)
{
	uint32		ri = mc_ctx_find(ctx);
	McCtx	   *r;
	uint32		gi;
	int			cleaner = mc_cleaner_lib();
	bool		error_cleanup;
	bool		calm;
	bool		folded;
	McLifetime	life;
	bool		keep = false;

	if (ri == 0)
		return false;
	r = &ctxs[ri];
	if (r->name != ctx->name)
	{
		/* a new context at a reused address, seen for the first time */
		r->name = ctx->name;
	}
	if (r->churn)
	{
		mc_churn_sync(ri);
		if (deleting)
		{
			mc_churn_stop(ri);
			if (r->groups == 0 && r->pseudo == 0)
			{
				mc_ctx_release(ri);
				return false;
			}
		}
		else if (r->churn_units >= 2)
			mc_churn_stop(ri);	/* memory of several units met here: record it again */
		else
		{
			r->churn_units = 0;
			r->churn_last_unit = 0;
			if (churn_ctxi == ri)
				mc_churn_units = mc_churn_last_unit = 0;
			return false;
		}
	}
	if (r->groups == 0 && r->pseudo == 0)
	{
		/* nothing of foreign code's here any more (a per-row context reset again) */
		if (deleting)
			mc_ctx_release(ri);
		return false;
	}
	/* while alive (a reset), where it sits now is the truth */
	if (!deleting)
	{
		r->parent = ctx->parent;
		r->life = (uint8) mc_context_lifetime(ctx);
		r->placed = false;
	}
	error_cleanup = mc_error_cleanup(ctx);
	if (ctx == aborted_top)
		aborted_top = NULL;
	if (ctx == aborted_sub)
		aborted_sub = NULL;

	/* context_reset_storm: what foreign code allocated here must not be read any more */
	if (mc_track_listeners.poisoning)
		keep = mc_track_poison(ri, deleting);

	/*
	 * A child context the library left for PostgreSQL to free with its
	 * parent: reported at the parent (by where it sits now: it may have
	 * been moved).  One the library deletes itself has done its job.
	 */
	folded = deleting && r->foreign_created && cleaner != r->creator_lib;
	if (folded && r->pseudo != 0 && ctx->parent != NULL)
		mc_pseudo_rehome(ri, ctx->parent);
	r = &ctxs[ri];

	/*
	 * A subtransaction's context that foreign memory kept alive: counted at
	 * the parent.  MemoryContextDelete() unlinks a context from its parent
	 * before deleting it, and the parent (the upper level's
	 * CurTransactionContext) is still alive: its children go first, and
	 * PostgreSQL never moves these contexts.
	 */
	if (deleting && !r->foreign_created && !error_cleanup && mc_is_subxact_context(ctx))
	{
		MemoryContext parent = ctx->parent != NULL ? ctx->parent : r->parent;

		for (gi = r->groups; gi != 0; gi = groups[gi].cnext)
			if (groups[gi].kind == MC_CHUNK_MEMORY && groups[gi].live_count > 0 &&
				groups[gi].lib != cleaner)
			{
				mc_note_kept_alive(ctx, parent, gi);
				folded = true;
			}
		r = &ctxs[ri];
	}

	calm = true;
	for (gi = r->groups; gi != 0 && calm; gi = groups[gi].cnext)
		if (groups[gi].kind != MC_CHUNK_MEMORY || (groups[gi].live_count > 1 && mc_group_live_units(gi, false, 2) > 1))
			calm = false;

	gi = r->groups;
	while (gi != 0)
	{
		uint32		next = groups[gi].cnext;

		/*
		 * Judged: memory the library did not release itself, nor PostgreSQL's
		 * error cleanup.
		 */
		if (!folded && !error_cleanup && groups[gi].lib != cleaner)
		{
			McLifetime	glife;

			life = ctxs[ri].life == MC_LIFE_TRANSACTION ? MC_LIFE_TRANSACTION : MC_LIFE_STATEMENT;
			glife = life;

			/* memory that already outlived a transaction is not statement memory */
			if (glife == MC_LIFE_STATEMENT && groups[gi].live_count > 0 &&
				groups[gi].oldest_xact < xact_seq)
				glife = MC_LIFE_BACKEND;
			mc_judge_release(gi, glife);
		}
		mc_unfold(gi);
		mc_release_group_chunks(gi);
		mc_group_release(gi);
		gi = next;
	}
	r->groups = 0;

	/* a reset that released one unit's memory: after a few in a row, churn mode */
	if (!deleting && !r->foreign_created && !error_cleanup)
	{
		if (calm && ++r->calm_resets >= MC_CALM_RESETS)
			mc_churn_start(ri);
		else if (!calm)
			r->calm_resets = 0;
	}

	if (deleting)
	{
		if (r->pseudo != 0)
		{
			McChunk    *c = &chunks[r->pseudo];
			McBucket   *pb = &buckets[c->bucket];

			if (folded && !error_cleanup)
			{
				pb->dead_bytes += ctx->mem_allocated;
				pb->dead_count++;
				if (pb->dead_last_unit != c->unit_id)
				{
					pb->dead_units++;
					pb->dead_last_unit = c->unit_id;
				}
				judge_pending = true;
			}
			mc_chunk_remove(r->pseudo);
		}
		mc_ctx_release(ri);
	}
	/* a reset context keeps its record: it is used again (a per-row context) */
	return keep;
}

/* ---------- judging after transactions and iterations ---------- */

void
mc_track_transaction_end(bool commit)
{
	(void) commit;
	xact_seq++;
	judge_pending = true;
}

/*
 * Judge every group.  Child contexts deleted by PostgreSQL outside their
 * parent's cleanup are released findings; memory in long-lived contexts is
 * measured against the last judgment.  Memory of the transaction or the
 * statement in progress is not judged here: its context's cleanup will be.
 * at_iteration: called between run_scenario iterations (unit "iteration").
 */
void
mc_track_judge(bool at_iteration)
{
	mc_track_judge_unit(at_iteration ? MC_UNIT_ITERATION : MC_UNIT_STATEMENT);
}

/* the same, the interval being one interval_unit (a worker's loop) */
void
mc_track_judge_unit(McUnit interval_unit)
{
	uint32		gi;
	uint32		ran = mc_libs_ran();

	judge_pending = false;
	if (!mc_active || groups == NULL)
	{
		mc_libs_ran_reset();
		return;
	}
	/* a churning context that outlives transactions and gathered several units' memory */
	{
		uint32		ri = churn_list;

		while (ri != 0)
		{
			uint32		next = ctxs[ri].churn_next;

			mc_churn_sync(ri);
			if (ctxs[ri].churn_units >= 2 && mc_context_lifetime(ctxs[ri].ctx) == MC_LIFE_BACKEND)
				mc_churn_stop(ri);
			ri = next;
		}
	}
	/* a library's own contexts: what it added there is their growth, in its units */
	mc_fold_all();
	for (gi = all_groups; gi != 0; gi = groups[gi].anext)
	{
		uint32		ci = mc_fold_target(gi);

		if (ci != 0 && groups[gi].live_bytes > groups[gi].judged_bytes)
			groups[buckets[chunks[ci].bucket].group].fold_units += mc_group_live_units(gi, true, 0);
	}
	for (gi = all_groups; gi != 0; gi = groups[gi].anext)
	{
		McGroup    *g = &groups[gi];
		McCtx	   *r = &ctxs[g->ctx];
		McLifetime	life;
		int64		delta;
		uint32		bi;
		bool		dead = false;
		int64		fold_units = g->fold_units;

		g->fold_units = 0;
		if (mc_fold_target(gi) != 0)
		{
			/* judged as its context's record */
			g->judged_bytes = g->live_bytes;
			g->allocs_since = 0;
			continue;
		}

		for (bi = g->buckets; bi != 0; bi = buckets[bi].gnext)
			if (buckets[bi].dead_count > 0)
				dead = true;
		if (dead)
		{
			mc_judge_release(gi, r->life == MC_LIFE_TRANSACTION ?
							 MC_LIFE_TRANSACTION : MC_LIFE_STATEMENT);
			for (bi = g->buckets; bi != 0; bi = buckets[bi].gnext)
			{
				buckets[bi].dead_bytes = buckets[bi].dead_count = buckets[bi].dead_units = 0;
				buckets[bi].dead_last_unit = 0;
			}
		}

		life = r->ctx == MC_MALLOC_HEAP ? MC_LIFE_BACKEND : mc_context_lifetime(r->ctx);
		if (life != MC_LIFE_BACKEND)
			continue;
		if (g->allocs_since == 0 && g->live_bytes == g->judged_bytes)
		{
			/* the library ran and this did not grow: evidence of a cache that filled */
			if (g->growths > 0 && g->lib >= 0 && g->lib < 32 && (ran & ((uint32) 1 << g->lib)) &&
				g->quiet++ == 0)
				mc_report_backend(gi);
			continue;
		}
		g->intervals++;
		g->interval_unit = (uint8) interval_unit;
		delta = g->live_bytes - g->judged_bytes;
		if (delta > 0)
		{
			/* a context's record and its content were made by the same calls: the larger count */
			int64		units = Max(mc_group_live_units(gi, true, 0), fold_units);
			int64		ran = Max(mc_lib_units_ran(g->lib), units);

			g->growths++;
			if (g->first_growth < 0)
				g->first_growth = g->intervals;
			if (delta > g->peak_bytes)
			{
				g->peak_bytes = delta;
				g->peak_units = units;
			}
			g->growth_bytes += delta;
			g->growth_units += units;
			/* the library ran again in this interval without keeping more: evidence of a cache */
			g->ran_units += ran;
			g->quiet_units += ran - units;
		}
		else if (g->growths > 0)
			g->quiet++;
		g->judged_bytes = g->live_bytes;
		g->allocs_since = 0;
		if (g->growths > 0)
			mc_report_backend(gi);
	}
	judge_epoch++;
	/* what ran is counted afresh for the next interval (mc_lib_units_ran above) */
	mc_libs_ran_reset();
}

void
mc_track_judge_if_pending(void)
{
	if (judge_pending)
		mc_track_judge(false);
}

/* measuring stopped: forget everything tracked (findings stay) */
void
mc_track_reset_all(void)
{
	mc_mcxt_set_free_wrapped(false);
	free(chunks);
	free(buckets);
	free(groups);
	free(ctxs);
	free(chunk_hash);
	free(bucket_hash);
	free(group_hash);
	free(ctx_hash);
	chunks = NULL;
	buckets = NULL;
	groups = NULL;
	ctxs = NULL;
	chunk_hash = bucket_hash = group_hash = ctx_hash = NULL;
	chunks_cap = chunks_free = chunks_used = 0;
	live_exact = 0;
	buckets_cap = buckets_free = buckets_used = 0;
	groups_cap = groups_free = groups_used = 0;
	ctxs_cap = ctxs_free = ctxs_used = 0;
	all_groups = 0;
	live_chunks = 0;
	last_bucket = 0;
	churn_list = churn_ctxi = 0;
	mc_churn_ctx = NULL;
	memset(mc_chunk_hint, 0, sizeof(mc_chunk_hint));
	memset(mc_ctx_hint, 0, sizeof(mc_ctx_hint));
	judge_pending = false;
}

int64
mc_track_chunks(void)
{
	return live_chunks;
}

int64
mc_track_untracked(void)
{
	return untracked;
}

/*
 * What foreign code holds now, per place a finding would name: a scenario's
 * samples at its checkpoints.  Walks the tracked groups, never a context.
 */
void
mc_track_foreach_held(void (*cb) (const char *path, int64 bytes, void *arg), void *arg)
{
	uint32		gi;
	char		name[MC_NAME_LEN];
	char		path[MC_PATH_LEN];

	if (groups == NULL)
		return;
	for (gi = all_groups; gi != 0; gi = groups[gi].anext)
	{
		/* where the memory is: a context's record without what it carries */
		mc_group_where(gi, false, name, path);
		cb(path, groups[gi].live_bytes - groups[gi].carried, arg);
	}
}

/* begin() or a scenario starts: growth is measured from here */
void
mc_track_series_reset(void)
{
	uint32		gi;
	uint32		bi;

	if (groups == NULL)
		return;
	mc_fold_all();
	for (gi = all_groups; gi != 0; gi = groups[gi].anext)
	{
		McGroup    *g = &groups[gi];

		g->judged_bytes = g->live_bytes;
		g->intervals = g->growths = 0;
		g->first_growth = -1;
		g->growth_bytes = g->growth_units = 0;
		g->peak_bytes = g->peak_units = 0;
		g->quiet = 0;
		g->ran_units = g->quiet_units = 0;
		g->allocs_since = 0;
		for (bi = g->buckets; bi != 0; bi = buckets[bi].gnext)
		{
			buckets[bi].dead_bytes = buckets[bi].dead_count = buckets[bi].dead_units = 0;
			buckets[bi].dead_last_unit = 0;
		}
	}
}

/*
 * Visit every group of tracked memory (scenario checkpoints and probes,
 * never a per-query path): its context, library, live bytes and lifetime.
 */
void
mc_track_visit_groups(McGroupVisitor visit, void *arg)
{
	uint32		gi;

	if (groups == NULL)
		return;
	for (gi = all_groups; gi != 0; gi = groups[gi].anext)
	{
		McGroup    *g = &groups[gi];
		McCtx	   *r = &ctxs[g->ctx];
		McGroupInfo info;

		info.group = gi;
		info.ctx = r->ctx;
		info.lib = g->lib;
		info.child_contexts = g->kind == MC_CHUNK_CONTEXT;
		info.live_bytes = g->live_bytes - g->carried;	/* where it is, not what it stands for */
		info.live_count = g->live_count;
		info.lifetime = r->ctx == MC_MALLOC_HEAP ? MC_LIFE_BACKEND : mc_context_lifetime(r->ctx);
		mc_group_where(gi, false, info.name, info.path);
		visit(&info, arg);
	}
}

/* a visited group's allocation sites and entry point, for a finding */
void
mc_track_group_fill(uint32 group, McViolation *v)
{
	if (groups == NULL || group == 0 || group > groups_used || !groups[group].used)
		return;
	mc_fill_common(v, group, false);
}

/*
 * What lib's allocations at site still hold in ctx (wrong_context_probe:
 * kept or given back).  A lookup, no allocation: safe inside the allocator.
 */
int64
mc_track_live_at(MemoryContext ctx, int lib, uintptr_t site)
{
	uint32		ri = mc_ctx_find(ctx);
	uint32		gi;
	int64		bytes = 0;

	if (ri == 0)
		return 0;
	for (gi = ctxs[ri].groups; gi != 0; gi = groups[gi].cnext)
	{
		uint32		bi;

		if (groups[gi].lib != lib)
			continue;
		for (bi = groups[gi].buckets; bi != 0; bi = buckets[bi].gnext)
			if (buckets[bi].site == site)
				bytes += buckets[bi].live_bytes;
	}
	return bytes;
}
