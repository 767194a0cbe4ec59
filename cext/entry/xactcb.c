/*-------------------------------------------------------------------------
 *
 * xactcb.c
 *		Transaction callbacks: ours, which mark the quiet points and clean
 *		up after errors, and trampolines that bracket foreign ones.
 *
 * A foreign library that registers a transaction or subtransaction
 * callback through its (patched) GOT gets a trampoline registered in its
 * place: the callback then runs as a foreign segment, so what PostgreSQL
 * allocates on its behalf is seen too.  Callbacks registered before the
 * library's GOT was patched (in a _PG_init that ran before pg_ext_
 * memcheck's shmem startup) run unbracketed; their direct allocations are
 * still seen through the GOT.
 *
 * Our own callbacks: the end of a transaction is a quiet point (what
 * survived it outlives the transaction: track.c judges it at the next safe
 * point); a subtransaction abort returns the segment stack, the direct-call
 * state and the executor nesting to what they were when it started.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "storage/ipc.h"
#include "utils/memutils.h"

#include "entry/hooks.h"

#define MC_MAX_XACT_CALLBACKS 64
#define MC_MAX_SUBXACT_DEPTH 64

typedef struct McXactSlot
{
	bool		used;
	bool		sub;
	void	   *fn;
	void	   *arg;
	int			lib;
} McXactSlot;

static McXactSlot slots[MC_MAX_XACT_CALLBACKS];

typedef struct McSubxactState
{
	SubTransactionId subid;
	int			seg_depth;
	int			direct_depth;
	int			explicit_cleanup;
	int			exec_nesting;
} McSubxactState;

static McSubxactState substack[MC_MAX_SUBXACT_DEPTH];
static int	nsub = 0;
static bool registered = false;

static void
mc_xact_trampoline(XactEvent event, void *arg)
{
	McXactSlot *s = (McXactSlot *) arg;
	int			depth = mc_seg_depth();	/* the library's segment goes on top: no pause */

	if (mc_active)
		mc_seg_open(s->lib, MC_ENTRY_XACT_CALLBACK, 0, MC_PHASE_CALLBACK);
	((XactCallback) s->fn) (event, s->arg);
	mc_seg_unwind(depth);
}

static void
mc_subxact_trampoline(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	McXactSlot *s = (McXactSlot *) arg;
	int			depth = mc_seg_depth();	/* the library's segment goes on top: no pause */

	if (mc_active)
		mc_seg_open_unit(s->lib, MC_ENTRY_SUBXACT_CALLBACK, 0, MC_PHASE_CALLBACK,
						 MC_UNIT_SUBTRANSACTION, mc_seg_subxact_unit(mySubid));
	((SubXactCallback) s->fn) (event, mySubid, parentSubid, s->arg);
	mc_seg_unwind(depth);
}

/* a foreign library registers fn(arg): register our trampoline instead */
/* a trampoline's slot for fn(arg) of lib, or NULL (and a coverage gap) when none is left */
static McXactSlot *
mc_xact_slot(bool sub, void *fn, void *arg, int lib)
{
	int			i;

	for (i = 0; i < MC_MAX_XACT_CALLBACKS; i++)
		if (!slots[i].used)
			break;
	if (i == MC_MAX_XACT_CALLBACKS)
	{
		mc_record_gap(mc_lib_name(lib), "transaction callbacks",
					  "more transaction callbacks were registered than pg_ext_memcheck brackets; the rest run unbracketed");
		return NULL;
	}
	slots[i].used = true;
	slots[i].sub = sub;
	slots[i].fn = fn;
	slots[i].arg = arg;
	slots[i].lib = lib;
	return &slots[i];
}

static void
mc_xact_register(bool sub, void *fn, void *arg, int lib)
{
	McXactSlot *slot = mc_xact_slot(sub, fn, arg, lib);

	if (slot == NULL)
	{
		if (sub)
			RegisterSubXactCallback((SubXactCallback) fn, arg);
		else
			RegisterXactCallback((XactCallback) fn, arg);
	}
	else if (sub)
		RegisterSubXactCallback(mc_subxact_trampoline, slot);
	else
		RegisterXactCallback(mc_xact_trampoline, slot);
}

/* false when fn(arg) was not registered through us */
static bool
mc_xact_unregister(bool sub, void *fn, void *arg)
{
	int			i;

	for (i = 0; i < MC_MAX_XACT_CALLBACKS; i++)
		if (slots[i].used && slots[i].sub == sub && slots[i].fn == fn && slots[i].arg == arg)
		{
			if (sub)
				UnregisterSubXactCallback(mc_subxact_trampoline, &slots[i]);
			else
				UnregisterXactCallback(mc_xact_trampoline, &slots[i]);
			slots[i].used = false;
			return true;
		}
	return false;
}

/* ---------- a foreign library's registrations reach these (its GOT) ---------- */

static void
mc_got_RegisterXactCallback(XactCallback callback, void *arg)
{
	int			lib = mc_lib_of_address(__builtin_return_address(0));

	if (lib == MC_NO_LIB)
		RegisterXactCallback(callback, arg);
	else
		mc_xact_register(false, (void *) callback, arg, lib);
}

static void
mc_got_UnregisterXactCallback(XactCallback callback, void *arg)
{
	if (!mc_xact_unregister(false, (void *) callback, arg))
		UnregisterXactCallback(callback, arg);
}

static void
mc_got_RegisterSubXactCallback(SubXactCallback callback, void *arg)
{
	int			lib = mc_lib_of_address(__builtin_return_address(0));

	if (lib == MC_NO_LIB)
		RegisterSubXactCallback(callback, arg);
	else
		mc_xact_register(true, (void *) callback, arg, lib);
}

static void
mc_got_UnregisterSubXactCallback(SubXactCallback callback, void *arg)
{
	if (!mc_xact_unregister(true, (void *) callback, arg))
		UnregisterSubXactCallback(callback, arg);
}

static const McGotTarget xact_targets[] = {
	{"RegisterXactCallback", (void *) mc_got_RegisterXactCallback, NULL},
	{"UnregisterXactCallback", (void *) mc_got_UnregisterXactCallback, NULL},
	{"RegisterSubXactCallback", (void *) mc_got_RegisterSubXactCallback, NULL},
	{"UnregisterSubXactCallback", (void *) mc_got_UnregisterSubXactCallback, NULL},
};

/*
 * The shape of PostgreSQL's list items (xact.c: XactCallbackItem and
 * SubXactCallbackItem, the same in 13-19): next, callback, arg.
 */
typedef struct McCallbackItem
{
	struct McCallbackItem *next;
	void	   *callback;
	void	   *arg;
} McCallbackItem;

static void
mc_probe_xact_callback(XactEvent event, void *arg)
{
	(void) event;
	(void) arg;
}

static void
mc_probe_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	(void) event;
	(void) mySubid;
	(void) parentSubid;
	(void) arg;
}

/*
 * Callbacks registered by foreign libraries before we could see it: in
 * _PG_init of a library preloaded before us.  The lists are static in
 * xact.c; registering puts a new item at their head, allocated in
 * TopMemoryContext, whose next is the old head.  An AllocSet hands out the
 * chunk freed last of a size class first, so the item of a registration
 * made right after freeing a chunk of that size is that chunk: we register
 * a probe that way, check the item we find there is the probe's, and
 * replace the foreign callbacks after it by trampolines.  When the check
 * fails nothing is changed and a coverage gap says so.
 */
static void
mc_adopt_list(bool sub)
{
	static int	marker;
	McCallbackItem *probe;
	McCallbackItem *item;
	void	   *probe_fn = sub ? (void *) mc_probe_subxact_callback : (void *) mc_probe_xact_callback;

	probe = MemoryContextAlloc(TopMemoryContext, sizeof(McCallbackItem));
	pfree(probe);
	if (sub)
		RegisterSubXactCallback(mc_probe_subxact_callback, &marker);
	else
		RegisterXactCallback(mc_probe_xact_callback, &marker);
	if (probe->callback != probe_fn || probe->arg != &marker)
	{
		mc_record_gap(NULL, sub ? "subtransaction callbacks" : "transaction callbacks",
					  "callbacks registered before pg_ext_memcheck was loaded cannot be reached: list pg_ext_memcheck first in shared_preload_libraries to measure them");
		return;
	}
	for (item = probe->next; item != NULL; item = item->next)
	{
		int			lib = mc_lib_of_address(item->callback);
		McXactSlot *slot;

		if (lib == MC_NO_LIB || (slot = mc_xact_slot(sub, item->callback, item->arg, lib)) == NULL)
			continue;
		item->callback = sub ? (void *) mc_subxact_trampoline : (void *) mc_xact_trampoline;
		item->arg = slot;
	}
}

/* at _PG_init, while libraries are preloaded */
void
mc_xact_adopt_registered(void)
{
	mc_adopt_list(false);
	mc_adopt_list(true);
}

/* at start-up: foreign registrations of callbacks come to us */
void
mc_xact_init(void)
{
	mc_gotwrap_add_targets(xact_targets, lengthof(xact_targets));
}

/* ---------- our own callbacks ---------- */

static void
mc_own_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* the error unwound every C frame: direct calls are over */
			mc_direct_depth = 0;
			mc_direct_site = 0;
			mc_explicit_cleanup = 0;
			mc_cleanup_lib = MC_NO_LIB;
			mc_track_abort(false);
			mc_exec_nesting = 0;
			nsub = 0;
			mc_track_transaction_end(false);
			mc_seg_transaction_end();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			nsub = 0;
			mc_track_transaction_end(true);
			mc_seg_transaction_end();
			break;
		default:
			break;
	}
}

static void
mc_own_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			i;

	(void) parentSubid;
	(void) arg;
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (nsub < MC_MAX_SUBXACT_DEPTH)
			{
				substack[nsub].subid = mySubid;
				substack[nsub].seg_depth = mc_seg_depth();
				substack[nsub].direct_depth = mc_direct_depth;
				substack[nsub].explicit_cleanup = mc_explicit_cleanup;
				substack[nsub].exec_nesting = mc_exec_nesting;
				nsub++;
			}
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			mc_track_abort(true);
			for (i = nsub - 1; i >= 0; i--)
				if (substack[i].subid == mySubid)
				{
					mc_seg_unwind(substack[i].seg_depth);
					if (mc_direct_depth > substack[i].direct_depth)
						mc_direct_depth = substack[i].direct_depth;
					mc_direct_site = 0;	/* the error left the wrapper that set it */
					if (mc_explicit_cleanup > substack[i].explicit_cleanup)
						mc_explicit_cleanup = substack[i].explicit_cleanup;
					mc_exec_nesting = substack[i].exec_nesting;
					nsub = i;
					break;
				}
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			for (i = nsub - 1; i >= 0; i--)
				if (substack[i].subid == mySubid)
				{
					nsub = i;
					break;
				}
			break;
		default:
			break;
	}
}

/* the backend exits: what it found must not be lost */
static void
mc_before_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (!mc_active)
		return;
	mc_track_judge_if_pending();
	mc_findings_publish(true);
}

/* once per backend, at the first safe point where measuring is on */
void
mc_xact_callbacks_register(void)
{
	if (registered)
		return;
	RegisterXactCallback(mc_own_xact_callback, NULL);
	RegisterSubXactCallback(mc_own_subxact_callback, NULL);
	before_shmem_exit(mc_before_exit, (Datum) 0);
	registered = true;
}
